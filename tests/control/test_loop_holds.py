"""An eviction that was not recorded holds the admissions that may have counted on it."""

from __future__ import annotations

from typing import Any

from gpufleet import core
from gpufleet.control.holds import held_by_unrecorded, queue_root
from gpufleet.control.loop import SchedulingLoop
from gpufleet.control.writer import ConflictError
from gpufleet.observed.cache import HUB
from gpufleet.observed.translate import core_node_name

from .builders import World
from .test_loop_appliers import Writer, pods, scheduling_loop
from .test_loop_leadership import Gate, loops

__all__ = ["loops", "pods"]  # fixtures, used by name


def _world() -> World:
    """`low` runs on fra-0 (queue q); `high` and `x` (q) and `y` (queue r) wait."""
    world = World(nodes=3).queue("q", ["ns"]).queue("r", ["ns"])
    world.placed("ns", "low", "q", "fra", "h100", ["fra-0"], priority=0)
    world.pod(HUB, "ns", "low", 0, "fra-0")
    world.workload("ns", "high", "q", priority=100)
    world.workload("ns", "x", "q")
    world.workload("ns", "y", "r")
    return world


def _decided(inputs: Any) -> core.CycleResult:
    """What a core would decide: evict `low` for `high`; admit `high`, `x` (q, at fra, on
    room `low`'s eviction frees) and `y` (queue r, at ams)."""
    return core.CycleResult(
        admissions=[
            core.Admission("ns/high", "fra", "h100", (core_node_name(HUB, "fra-0"),)),
            core.Admission("ns/x", "fra", "h100", (core_node_name(HUB, "fra-1"),)),
            core.Admission("ns/y", "ams", "h200", (core_node_name("ams", "ams-0"),)),
        ],
        evictions=[core.Eviction("ns/low", "Preempted", "ns/high")],
        verdicts={},
        fair_shares={},
        queue_order=[],
        positions={},
    )


def _deciding_loop(writer: Writer, loops: list[SchedulingLoop]) -> SchedulingLoop:
    """A loop over `_world()` whose core decides as `_decided` says."""
    loop = scheduling_loop(_world(), writer)
    loops.append(loop)
    loop._schedule = lambda view, inputs, busy, now, steps: (inputs, _decided(inputs))  # type: ignore[method-assign]
    return loop


def test_admissions_that_may_count_on_an_unrecorded_eviction_wait_for_the_next_cycle(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    writer = Writer(refuse=frozenset({"low"}))  # the victim's write conflicts
    loop = _deciding_loop(writer, loops)
    loop.cycle()
    assert ("high", "Admitted") not in writer.written  # its preemptor: held as before
    assert ("x", "Admitted") not in writer.written, "x counted on q's quota and fra's room"
    assert ("y", "Admitted") in writer.written, "another queue at another site goes ahead"


def test_with_the_eviction_recorded_every_admission_goes_ahead(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    writer = Writer()
    loop = _deciding_loop(writer, loops)
    loop.cycle()
    assert {w for w, phase in writer.written if phase == "Admitted"} == {"high", "x", "y"}


def test_held_admissions_follow_the_victims_site_and_queue_tree(
    loops: list[SchedulingLoop],
) -> None:
    world = _world().queue("child", ["ns"], parent="r").queue("leaf", ["ns"], parent="child")
    world.placed("ns", "v", "leaf", "ams", "h200", ["ams-1"])
    world.workload("ns", "sibling", "r")
    loop = scheduling_loop(world, Writer())
    loops.append(loop)
    inputs = loop._translate(world.cache.view(), 0.0)
    assert queue_root("leaf", inputs) == "r"
    assert queue_root("q", inputs) == "q"
    admissions = [
        core.Admission("ns/sibling", "fra", "h100", ()),  # same tree (r), other site
        core.Admission("ns/x", "ams", "h200", ()),  # other tree, same site
        core.Admission("ns/high", "fra", "h100", ()),  # neither
    ]
    assert held_by_unrecorded(admissions, ["ns/v"], inputs) == {"ns/sibling", "ns/x"}
    assert held_by_unrecorded(admissions, [], inputs) == set()
    everything = {a.workload for a in admissions}
    assert held_by_unrecorded(admissions, ["ns/unknown"], inputs) == everything


def test_a_standby_that_takes_over_dispatches_in_its_first_cycle(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    """Its warm cycles screened the templates: the first leading cycle reuses them."""
    world = World(nodes=1).queue("q", ["ns"])
    world.workload("ns", "w", "q")
    world.cache.cluster(HUB).namespaces["ns"] = {"pod-security.kubernetes.io/enforce": "baseline"}
    loop = scheduling_loop(world, Writer())
    loops.append(loop)
    loop.gate = Gate(0)
    loop.turn()
    loop.gate = Gate(10**6)
    loop.turn()
    assert loop.translator.reused == "all", "the takeover reused the standby's inputs"
    assert pods["created"] == [(HUB, "ns/w-e1-0")], "the new leader dispatched nothing"


def test_a_victim_of_a_refused_preemptor_holds_what_counted_on_its_room(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    """The gate refuses `high`, so `low`'s eviction is never written; `x` counted on it."""
    writer = Writer()
    loop = _deciding_loop(writer, loops)
    loop.guard.refuse = lambda *args, **kwargs: {"ns/high"}  # type: ignore[method-assign]
    loop.cycle()
    assert ("low", "Preempted") not in writer.written
    assert ("x", "Admitted") not in writer.written, "x counted on low's room, never freed"
    assert ("y", "Admitted") in writer.written


class CasWriter(Writer):
    """As the API server: a status write on a stale resourceVersion conflicts."""

    def __init__(self) -> None:
        super().__init__()
        self.current: dict[str, str] = {}

    def patch_status(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], *, cas: bool = True
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (
            kind == "Workload"
            and self.current.get(name, body["metadata"]["resourceVersion"])
            != (body["metadata"]["resourceVersion"])
        ):
            raise ConflictError(f"{name} changed")
        out = super().patch_status(kind, body, status, cas=cas)
        if kind == "Workload":
            self.current[name] = out["metadata"]["resourceVersion"]
        return out


def _preempting(phase: str, pod_phase: str) -> World:
    """`high` waits and may preempt `low` (fra-0, in `phase`, its pod in `pod_phase`); the
    only other node holds `low2`, of a higher priority."""
    world = World(nodes=1).queue("q", ["ns"])
    world.placed("ns", "low", "q", "fra", "h100", ["fra-0"], priority=0, phase=phase)
    world.pod(HUB, "ns", "low", 0, "fra-0", phase=pod_phase)
    world.placed("ns", "low2", "q", "ams", "h200", ["ams-0"], priority=200)
    world.pod("ams", "ns", "low2", 0, "ams-0")
    world.workload("ns", "high", "q", priority=100)
    return world


def test_a_workload_that_just_finished_is_not_evicted_and_queued_again(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    """The lifecycle records `low` Succeeded; the core, on the cycle's view, still sees it
    running and evicts it for `high`. That eviction must fail (the recorded finish stands),
    not turn a finished workload into a Preempted one that runs again."""
    world = _preempting(phase="Running", pod_phase="Succeeded")
    writer = CasWriter()
    loop = scheduling_loop(world, writer)
    loops.append(loop)
    loop.cycle()
    assert ("low", "Succeeded") in writer.written
    assert ("low", "Preempted") not in writer.written
    assert world.cache.workloads["ns/low"]["status"]["phase"] == "Succeeded"


def test_a_workload_just_recorded_running_is_evicted_on_its_recorded_version(
    pods: dict[str, list[Any]], loops: list[SchedulingLoop]
) -> None:
    """Still running where it was placed: the eviction builds on the lifecycle's write."""
    writer = CasWriter()
    loop = scheduling_loop(_preempting(phase="Admitted", pod_phase="Running"), writer)
    loops.append(loop)
    loop.cycle()
    assert writer.written[:2] == [("low", "Running"), ("low", "Preempted")]
