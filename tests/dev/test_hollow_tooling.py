"""Hollow node groups in fleet files, kubemark's arguments and processes, KWOK's stages.

Pure tests: no cluster. The process tests run a stand-in "kubemark" (a script that
sleeps under that name) to check that the fleet's processes are found, restarted
and all stopped.
"""

from __future__ import annotations

import copy
import re
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet.dev import hollow
from gpufleet.dev.kwokconfig import KWOK_NODE_ANNOTATION, STAGES_FROM_KWOK, kwokctl_config
from gpufleet.dev.nodes import DEFAULT_FLEET, HOLLOW_FLEET, iter_node_manifests, node_labels
from gpufleet.dev.tools import Toolset
from gpufleet.fleetfile import HOLLOW_CPU, HOLLOW_MEMORY, FleetFileError, load_fleet, parse_fleet

ROOT = Path(__file__).resolve().parents[2]


def _fleet(**group: Any) -> dict[str, Any]:
    return {
        "name": "h",
        "clusters": [
            {
                "name": "c",
                "hub": True,
                "site": {"name": "s", "type": "OnPrem", "jurisdiction": "DE"},
                "nodeGroups": [
                    {
                        "name": "g",
                        "count": 2,
                        "acceleratorClass": "nvidia-h100",
                        "acceleratorsPerNode": 8,
                        **group,
                    }
                ],
            }
        ],
    }


def test_a_hollow_group_has_the_shape_its_kubelet_reports() -> None:
    group = parse_fleet(_fleet(kubelet="hollow")).clusters[0].node_groups[0]
    assert (group.cpu, group.memory) == (HOLLOW_CPU, HOLLOW_MEMORY)
    # The same shape written another way is accepted.
    parse_fleet(_fleet(kubelet="hollow", cpu="1000m", memory="3840Mi"))
    # KWOK groups keep the defaults.
    assert parse_fleet(_fleet()).clusters[0].node_groups[0].kubelet == "kwok"


@pytest.mark.parametrize("shape", [{"cpu": "96"}, {"memory": "1Ti"}, {"cpu": "2", "memory": "8Gi"}])
def test_a_hollow_group_that_asks_for_another_shape_is_refused(shape: dict[str, str]) -> None:
    with pytest.raises(FleetFileError) as err:
        parse_fleet(_fleet(kubelet="hollow", **shape))
    message = str(err.value)
    assert "clusters[0].nodeGroups[0]" in message
    assert "fake cAdvisor" in message


def test_an_unknown_kubelet_is_refused_naming_the_field() -> None:
    with pytest.raises(FleetFileError, match=r"clusters\[0\]\.nodeGroups\[0\]\.kubelet"):
        parse_fleet(_fleet(kubelet="real"))


def test_hollow_groups_get_no_node_objects_from_the_tooling() -> None:
    fleet = load_fleet(HOLLOW_FLEET)
    hub = fleet.cluster("onprem-fra")
    names = [m["metadata"]["name"] for m in iter_node_manifests(hub)]  # type: ignore[index]
    # Only the KWOK group: hollow kubelets register their nodes themselves.
    assert names == ["fra-h100-kwok-00000", "fra-h100-kwok-00001"]


def test_the_hollow_fleet_is_the_dev_fleets_three_sites_with_a_few_hollow_gpu_nodes() -> None:
    dev, small = load_fleet(DEFAULT_FLEET), load_fleet(HOLLOW_FLEET)
    assert [(c.name, c.hub, c.site) for c in small.clusters] == [
        (c.name, c.hub, c.site) for c in dev.clusters
    ]
    for cluster in small.clusters:
        groups = [g for g in cluster.node_groups if g.kubelet == "hollow"]
        assert 2 <= sum(g.count for g in groups) <= 3, cluster.name
        assert {(g.resource_name, g.accelerators_per_node) for g in groups} == {
            ("nvidia.com/gpu", 8)
        }


def test_kubemark_gets_the_groups_labels_and_accelerators_and_ports_of_its_own() -> None:
    fleet = load_fleet(HOLLOW_FLEET)
    spec = fleet.cluster("factory-osl")
    nodes = list(hollow.hollow_nodes_of("f", spec, Path("/s/f/factory-osl.kubeconfig")))
    assert [n.name for _, n in nodes] == ["osl-h200-00000", "osl-h200-00001", "osl-h200-00002"]
    group, node = nodes[1]
    argv = node.argv(Path("/bin/kubemark"), 40001)
    flags = dict(a.split("=", 1) for a in argv[1:])
    assert flags["--morph"] == "kubelet"
    assert flags["--name"] == "osl-h200-00001"
    assert flags["--kubeconfig"] == "/s/f/factory-osl.kubeconfig"
    assert flags["--extended-resources"] == "nvidia.com/gpu=8"
    assert flags["--use-host-image-service"] == "false"
    assert flags["--kubelet-port"] == "40001"
    assert flags["--kubelet-read-only-port"] == "0"
    labels = dict(kv.split("=", 1) for kv in flags["--node-labels"].split(","))
    assert labels == node_labels(spec, group, 1)
    assert labels["type"] == "hollow"


def test_kwok_manages_only_its_annotated_nodes_with_its_stages_and_a_graceful_pod_delete() -> None:
    docs = list(yaml.safe_load_all(kwokctl_config()))
    kwokctl, stages = docs[0], docs[1:]
    assert kwokctl["kind"] == "KwokctlConfiguration"
    patches = {p["name"]: p for p in kwokctl["componentsPatches"]}
    patch = patches["kwok-controller"]
    # One controller-manager and one scheduler per cluster: no leader election, so a paused
    # API server does not make them exit (appended, as kwokctl does not set the flag).
    for component in ("kube-controller-manager", "kube-scheduler"):
        assert patches[component]["extraArgs"] == [{"key": "leader-elect", "value": "false"}]
    args = {a["key"]: a for a in patch["extraArgs"]}
    # kwokctl passes --manage-all-nodes=true for the binary runtime: overridden, not added.
    assert args["manage-all-nodes"] == {
        "key": "manage-all-nodes",
        "value": "false",
        "override": True,
    }
    assert args["manage-nodes-with-annotation-selector"]["value"] == KWOK_NODE_ANNOTATION
    # ...the annotation the tooling puts on the Nodes it makes for KWOK.
    manifest = next(iter_node_manifests(load_fleet(HOLLOW_FLEET).cluster("onprem-fra")))
    key, value = KWOK_NODE_ANNOTATION.split("=")
    assert manifest["metadata"]["annotations"][key] == value  # type: ignore[index]

    assert [d["kind"] for d in stages] == ["Stage"] * 5
    assert [d["metadata"]["name"] for d in stages] == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
    ]
    delete = stages[-1]["spec"]
    assert delete["delay"]["durationFrom"] == {"expressionFrom": ".metadata.deletionTimestamp"}
    assert delete["next"] == {"delete": True}
    # Copied from this KWOK release; build-tools.sh builds the same one.
    script = (ROOT / "hack" / "build-tools.sh").read_text()
    match = re.search(r'KWOK_VERSION="\$\{KWOK_VERSION:-(v[0-9.]+)\}"', script)
    assert match is not None
    assert match[1] == STAGES_FROM_KWOK


def test_the_termination_policy_adds_a_sleep_only_where_there_is_no_prestop() -> None:
    policy = copy.deepcopy(hollow.GRACEFUL_TERMINATION_POLICY)
    kinds = [m["kind"] for m in policy]
    assert kinds == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    spec = policy[0]["spec"]
    expression = spec["mutations"][0]["applyConfiguration"]["expression"]
    assert "!has(c.lifecycle) || !has(c.lifecycle.preStop)" in expression
    assert "seconds: object.spec.terminationGracePeriodSeconds" in expression
    assert policy[1]["spec"]["policyName"] == policy[0]["metadata"]["name"]


@pytest.fixture
def fake_kubemark(tmp_path: Path) -> Path:
    # Like kubemark, makes its root directory in /tmp and logs where; then keeps argv[0]
    # (the name "kubemark") and every argument, and sleeps.
    script = tmp_path / "bin" / "kubemark"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/bash\n"
        "root=/tmp/hollow-kubelet.$$$RANDOM; mkdir $root\n"
        'echo "I0101 hollow_kubelet.go:153] Using $root as root dir for hollow-kubelet"\n'
        f'exec -a "$0" {sys.executable} -c \'import time; time.sleep(600)\' "$@"\n'
    )
    script.chmod(0o755)
    return script


def _tools(kubemark: Path) -> Toolset:
    x = Path("/nonexistent")
    return Toolset(
        etcd=x,
        kube_apiserver=x,
        kube_controller_manager=x,
        kube_scheduler=x,
        kwok=x,
        kwokctl=x,
        helm=x,
        kubectl=x,
        kubemark=kubemark,
    )


def _wait(what: str, check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_hollow_processes_are_found_restarted_and_all_stopped(
    tmp_path: Path, fake_kubemark: Path
) -> None:
    state = tmp_path / "fleets"
    spec = parse_fleet(_fleet(kubelet="hollow")).clusters[0]
    tools = _tools(fake_kubemark)
    nodes = [n for _, n in hollow.hollow_nodes_of("f", spec, state / "f" / "c.kubeconfig")]
    pids = {hollow.start(tools, state, n): n.name for n in nodes}
    # Another fleet's kubelet, whose name is a prefix of this one's: never touched.
    other = next(iter(hollow.hollow_nodes_of("f-x", spec, state / "f-x" / "c.kubeconfig")))[1]
    hollow.start(tools, state, other)
    try:
        _wait("both started", lambda: hollow.fleet_processes(state, "f") == pids)
        assert all(hollow.alive(state, "f", n) for n in ("g-00000", "g-00001"))
        for name in ("g-00000", "g-00001"):
            assert (state / "f" / "hollow" / f"{name}.log").exists()

        hollow.stop_fleet(state, "f")  # everything goes...
        assert hollow.fleet_processes(state, "f") == {}
        assert not hollow.alive(state, "f", "g-00001")
        restarted = hollow.restart_dead(tools, state, "f")  # ...and comes back
        assert sorted(n.name for n in restarted) == ["g-00000", "g-00001"]
        _wait(
            "restarted",
            lambda: sorted(hollow.fleet_processes(state, "f").values()) == ["g-00000", "g-00001"],
        )
        assert hollow.restart_dead(tools, state, "f") == []

        names = ["g-00000", "g-00001"]
        _wait(
            "each start logged its root dir", lambda: len(hollow.root_dirs(state, "f", names)) == 4
        )
        roots = hollow.root_dirs(state, "f", names)
        # The first starts' went with the first stop.
        assert sum(r.is_dir() for r in roots) == 2
        assert hollow.stop_fleet(state, "f") == 2
        assert hollow.fleet_processes(state, "f") == {}
        assert not any(r.exists() for r in roots)
        other_roots = hollow.root_dirs(state, "f-x", ["g-00000"])
        assert len(other_roots) == 1
        assert all(r.is_dir() for r in other_roots)
        assert list(hollow.fleet_processes(state, "f-x").values()) == ["g-00000"]
    finally:
        hollow.stop_fleet(state, "f")
        hollow.stop_fleet(state, "f-x")
    assert hollow.fleet_processes(state, "f-x") == {}
    assert not any(r.exists() for r in hollow.root_dirs(state, "f-x", ["g-00000"]))


def test_stale_fake_runtime_sockets_are_removed_live_ones_kept() -> None:
    stale = Path(f"/tmp/kubelet_remote_test{uuid.uuid4().int % 10**12}.sock")
    live = Path(f"/tmp/kubelet_remote_test{uuid.uuid4().int % 10**12}.sock")
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(stale))  # the file stays after its socket is closed, as kubemark's does
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(live))
        listener.listen()
        hollow.remove_stale_runtime_sockets()
        assert not stale.exists()
        assert live.exists()
    finally:
        listener.close()
        live.unlink(missing_ok=True)
        stale.unlink(missing_ok=True)
