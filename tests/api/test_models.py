"""The models: examples parse, every rule is mirrored, transitions are checked."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from api.builders import MODELS, first_example, gpufleet_examples, is_subset
from api.cases import CASES, Case, base
from gpufleet.api import regions
from gpufleet.api.quantity import QuantityError, parse_quantity, to_bytes, to_millicores
from gpufleet.api.v1alpha1 import (
    GpuPool,
    Site,
    TransitionError,
    Workload,
    WorkloadStatus,
    check_update,
)


@pytest.mark.parametrize(
    "example", gpufleet_examples(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}"
)
def test_every_example_parses_and_serialises_as_written(example: dict[str, Any]) -> None:
    model = MODELS[example["kind"]].model_validate(example)
    assert is_subset(example, model.to_manifest())


def test_examples_cover_the_fleet_the_dev_clusters_run() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in gpufleet_examples()}
    sites = {"onprem-fra", "localzone-ams", "factory-osl"}
    pools = {"fra-h100", "ams-h200", "osl-h200", "osl-trn2"}
    assert {n for k, n in names if k == "Site"} == sites
    assert {n for k, n in names if k == "GpuPool"} == pools
    jurisdictions = {o["spec"]["jurisdiction"] for o in gpufleet_examples() if o["kind"] == "Site"}
    assert len(jurisdictions) >= 2


def test_example_training_gang_is_16_by_8_and_eu_only() -> None:
    workloads = [Workload.model_validate(o) for o in gpufleet_examples() if o["kind"] == "Workload"]
    gang = next(w for w in workloads if w.spec.total_accelerators == 128)
    assert (gang.spec.replicas, gang.spec.accelerators_per_replica, gang.spec.gang_size) == (
        16,
        8,
        16,
    )
    assert gang.spec.residency is not None
    assert gang.spec.residency.regions == ["EU"]
    assert any(w.spec.accelerator_classes == ["aws-trainium2"] for w in workloads)
    assert any(w.spec.total_accelerators == 1 for w in workloads)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_models_reject_and_name_the_field(case: Case) -> None:
    obj = base(case.kind, "team-x")
    MODELS[case.kind].model_validate(obj)
    case.mutate(obj)

    with pytest.raises(ValidationError) as error:
        MODELS[case.kind].model_validate(obj)

    assert case.expected_in_python in str(error.value)


def test_wire_format_is_camel_case_and_python_is_snake_case() -> None:
    pool = GpuPool.model_validate(first_example("GpuPool"))
    assert pool.spec.accelerator_class == "nvidia-h100"
    assert "acceleratorClass" in pool.to_manifest()["spec"]


def test_models_do_not_coerce_strings_into_numbers() -> None:
    obj = first_example("Workload")
    obj["spec"]["replicas"] = "16"
    with pytest.raises(ValidationError, match=r"spec\.replicas"):
        Workload.model_validate(obj)


# --- transitions (oldSelf rules) ---------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _admitted(workload: Workload, phase: str = "Admitted") -> Workload:
    placed = copy.deepcopy(workload)
    placed.status = WorkloadStatus.model_validate(
        {
            "phase": phase,
            "epoch": 1,
            "placement": {
                "site": "onprem-fra",
                "pool": "fra-h100",
                "epoch": 1,
                "replicas": [{"index": 0, "node": "fra-h100-0"}],
                "admittedAt": NOW,
            },
        }
    )
    return placed


def test_site_jurisdiction_is_immutable() -> None:
    old = Site.model_validate(first_example("Site"))
    new = old.model_copy(deep=True)
    new.spec.jurisdiction = "FR"
    new.spec.regions = ["EU"]
    with pytest.raises(TransitionError, match=r"spec\.jurisdiction is immutable"):
        check_update(old, new)
    same = old.model_copy(deep=True)
    same.spec.power_budget_kw = 10
    check_update(old, same)


def test_pool_site_is_immutable() -> None:
    old = GpuPool.model_validate(first_example("GpuPool"))
    new = old.model_copy(deep=True)
    new.spec.site = "elsewhere"
    with pytest.raises(TransitionError, match=r"spec\.site is immutable"):
        check_update(old, new)


def test_queue_and_residency_change_freely_until_admitted() -> None:
    old = Workload.model_validate(first_example("Workload"))
    new = old.model_copy(deep=True)
    new.spec.queue = "other"
    new.spec.residency = None
    check_update(old, new)


@pytest.mark.parametrize("phase", ["Admitted", "Running", "Succeeded", "Failed", "Preempted"])
def test_queue_and_residency_are_immutable_once_admitted(phase: str) -> None:
    old = _admitted(Workload.model_validate(first_example("Workload")), phase)
    new_queue = old.model_copy(deep=True)
    new_queue.spec.queue = "other"
    with pytest.raises(TransitionError, match=r"spec\.queue is immutable"):
        check_update(old, new_queue)
    new_residency = old.model_copy(deep=True)
    assert new_residency.spec.residency is not None
    new_residency.spec.residency.regions = ["EEA"]
    with pytest.raises(TransitionError, match=r"spec\.residency is immutable"):
        check_update(old, new_residency)


def test_placement_may_be_cleared_but_not_changed() -> None:
    old = _admitted(Workload.model_validate(first_example("Workload")))
    moved = old.model_copy(deep=True)
    assert moved.status is not None
    assert moved.status.placement is not None
    moved.status.placement.site = "factory-osl"
    with pytest.raises(TransitionError, match=r"status\.placement is immutable"):
        check_update(old, moved)
    cleared = old.model_copy(deep=True)
    assert cleared.status is not None
    cleared.status.placement = None
    cleared.status.phase = "Pending"
    check_update(old, cleared)


def test_epoch_never_decreases() -> None:
    old = _admitted(Workload.model_validate(first_example("Workload")))
    new = old.model_copy(deep=True)
    assert new.status is not None
    new.status.epoch = 0
    with pytest.raises(TransitionError, match=r"status\.epoch must never decrease"):
        check_update(old, new)
    new.status.epoch = 2
    check_update(old, new)


# --- quantities and regions ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", Decimal(8)),
        (8, Decimal(8)),
        ("500m", Decimal("0.5")),
        ("512Gi", Decimal(512 * 1024**3)),
        ("1.5k", Decimal(1500)),
        ("1e3", Decimal(1000)),
        ("+2M", Decimal(2_000_000)),
        ("100n", Decimal("1E-7")),
    ],
)
def test_parse_quantity(text: int | str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["-1", -1, "1.5Xi", "", "Gi", "1 Gi", True, 1.5, "1e1.5"])
def test_parse_quantity_refuses(bad: Any) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)


def test_quantities_round_up_to_whole_units() -> None:
    assert to_millicores("7500m") == 7500
    assert to_millicores("0.0001") == 1
    assert to_millicores(8) == 8000
    assert to_bytes("1Ki") == 1024
    assert to_bytes("1500m") == 2


def test_workload_reads_cpu_and_memory_as_integers() -> None:
    spec = Workload.model_validate(first_example("Workload")).spec
    assert spec.cpu_millicores == 96_000
    assert spec.memory_bytes == 1024**4


def test_region_data() -> None:
    assert len(regions.JURISDICTIONS) == 249
    assert len(regions.members("EU")) == 27
    assert regions.members("EEA") == regions.members("EU") | {"IS", "LI", "NO"}
    assert "NO" not in regions.members("EU")
    assert regions.regions_of("NO") >= {"EEA", "EFTA", "NORDICS"}
    for name, codes in regions.REGIONS.items():
        assert codes <= set(regions.JURISDICTIONS), name
    with pytest.raises(KeyError, match="MARS"):
        regions.members("MARS")
