"""`gpufleet dev down NAME` removes NAME's clusters, left-over ones too, and no other fleet's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpufleet.dev import clusters, hollow, prometheus


def _cluster(fleet: str, name: str) -> clusters.Cluster:
    return clusters.Cluster(
        name=name,
        kwok_name=clusters.kwok_cluster_name(fleet, name),
        kubeconfig=Path(f"/s/{fleet}/{name}.kubeconfig"),
        server="https://127.0.0.1:6443",
        site=name,
        hub=name == "fra",
        nodes=1,
        kubectl_path=Path("/bin/kubectl"),
    )


@pytest.fixture
def dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """The fleets' state and KWOK's clusters under tmp_path; no tools, no processes."""
    state, kwok = tmp_path / "fleets", tmp_path / "kwok"
    monkeypatch.setattr(clusters, "state_dir", lambda: state)
    monkeypatch.setattr(clusters, "kwok_workdir", lambda: kwok)
    monkeypatch.setattr(clusters, "find_tools", lambda: (_ for _ in ()).throw(RuntimeError()))
    monkeypatch.setattr(clusters, "cluster_processes", lambda kwok_name: [])
    monkeypatch.setattr(hollow, "stop_fleet", lambda where, name: 0)
    monkeypatch.setattr(prometheus, "stop", lambda where: False)
    return state, kwok


def test_down_removes_its_own_and_left_over_clusters_but_not_a_fleet_sharing_its_prefix(
    dirs: tuple[Path, Path],
) -> None:
    state, kwok = dirs
    state.mkdir()
    for fleet in ("test", "test-op"):
        running = clusters.RunningFleet(
            name=fleet, source="f.yaml", clusters={"fra": _cluster(fleet, "fra")}
        )
        (state / f"{fleet}.json").write_text(json.dumps(running.to_json()))
    # test-hollow is still coming up: its state directory exists, its state file not yet.
    (state / "test-hollow").mkdir()
    for name in (
        "gpufleet-test-fra",
        "gpufleet-test-osl",
        "gpufleet-test-op-fra",
        "gpufleet-test-hollow-fra",
    ):
        (kwok / "clusters" / name).mkdir(parents=True)

    removed = clusters.down("test")

    # fra is recorded; osl is a left-over of a bring-up that never recorded it.
    assert sorted(removed) == ["gpufleet-test-fra", "gpufleet-test-osl"]
    assert sorted(p.name for p in (kwok / "clusters").iterdir()) == [
        "gpufleet-test-hollow-fra",
        "gpufleet-test-op-fra",
    ]
    assert clusters.running_fleets() == ["test-op"]


def test_down_of_a_longer_name_keeps_its_own_left_overs(
    dirs: tuple[Path, Path],
) -> None:
    state, kwok = dirs
    (state / "test").mkdir(parents=True)  # a shorter name is no reason to keep anything
    (kwok / "clusters" / "gpufleet-test-op-fra").mkdir(parents=True)
    assert clusters.down("test-op") == ["gpufleet-test-op-fra"]
