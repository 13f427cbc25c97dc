"""The replay engine: event order, checks on policy decisions, residency, infeasible jobs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.sim.engine import PolicyError, Segment, replay
from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite
from gpufleet.sim.policies.base import ClusterState, Decision, PendingView
from gpufleet.sim.policies.registry import make
from gpufleet.sim.tenants import QueueSpec
from sim.builders import job, one_site, trace

ONE_QUEUE = (QueueSpec("q0", 1.0),)
ALL = ("gpufleet", "fifo-first-fit", "best-fit", "kueue-like")


class Greedy:
    """Admits every pending job onto node 0, whether it fits or not."""

    name = "greedy"

    def schedule(self, state: ClusterState, pending: PendingView) -> Decision:
        return Decision(admit=[(j, ((0, j.per_replica),)) for j in pending.jobs.values()])


def test_a_decision_over_node_capacity_is_refused() -> None:
    with pytest.raises(PolicyError, match="node over capacity"):
        replay(trace(job(0, 0, 5, 2), job(1, 0, 5, 2)), one_site(2, 2), ONE_QUEUE, Greedy())


def test_a_decision_over_node_cpu_is_refused() -> None:
    fleet = SimFleet(
        "cpu", (SimSite("s", "DE"),), (SimPool("p", 0, "c"),), (SimNode("n", 0, 8, 8000),)
    )
    jobs = trace(replace(job(0, 0, 5, 1), cpu_milli=6000), replace(job(1, 0, 5, 1), cpu_milli=6000))
    with pytest.raises(PolicyError, match="node over capacity"):
        replay(jobs, fleet, ONE_QUEUE, Greedy())


def cpu_bound_fleet() -> SimFleet:
    """Node a: 4 GPUs and 8 cores; node b: 4 GPUs and 64 cores."""
    nodes = (SimNode("a", 0, 4, 8000, 65536), SimNode("b", 0, 4, 64000, 65536))
    return SimFleet("cpu", (SimSite("s", "DE"),), (SimPool("p", 0, "nvidia-t4"),), nodes)


@pytest.mark.parametrize("policy", ALL)
def test_cpu_and_memory_per_replica_are_hard_limits_for_every_policy(policy: str) -> None:
    # Three 1-GPU jobs of 6 cores and 1 GiB: node a holds one, node b the other two; a
    # fourth job asking 64 GiB of memory waits although GPUs and cores are free.
    cpu = [replace(job(i, 0, 10, 1), cpu_milli=6000, memory_mib=1024) for i in range(3)]
    big = replace(job(3, 1, 10, 1), memory_mib=65536)
    jobs = trace(*cpu, big)
    result = replay(jobs, cpu_bound_fleet(), ONE_QUEUE, make([policy], jobs.jobs)[0])
    first = {o.job.id: o.first_start for o in result.outcomes}
    assert [first[i] for i in range(3)] == [0.0, 0.0, 0.0]
    assert first[3] == 10.0


def test_a_job_whose_cpu_no_node_has_is_unschedulable() -> None:
    jobs = trace(replace(job(0, 0, 10, 1), cpu_milli=65000), job(1, 0, 10, 1))
    result = replay(jobs, cpu_bound_fleet(), ONE_QUEUE, make(["best-fit"], jobs.jobs)[0])
    assert [j.id for j in result.unschedulable] == [0]


def test_a_node_that_does_not_say_its_cpu_is_not_limited_by_it() -> None:
    jobs = trace(replace(job(0, 0, 10, 2), cpu_milli=10**9, memory_mib=10**9))
    for policy in make(list(ALL), jobs.jobs):
        result = replay(jobs, one_site(2), ONE_QUEUE, policy)
        assert result.outcomes[0].first_start == 0.0, policy.name


def test_a_job_in_an_unknown_queue_is_refused_before_the_replay() -> None:
    with pytest.raises(ValueError, match="job 'j0': queue 'nope' is not one of the queues"):
        replay(trace(job(0, 0, 5, 1, queue="nope")), one_site(2), ONE_QUEUE, Greedy())


def two_sites() -> SimFleet:
    sites = (SimSite("fra", "DE", ("EU",)), SimSite("par", "FR", ("EU",)))
    pools = (SimPool("fra-h100", 0, "nvidia-h100"), SimPool("par-h100", 1, "nvidia-h100"))
    nodes = (SimNode("fra-0", 0, 4), SimNode("par-0", 1, 4))
    return SimFleet("two", sites, pools, nodes)


@pytest.mark.parametrize("policy", ALL)
def test_residency_is_a_hard_rule_for_every_policy(policy: str) -> None:
    # Both jobs may only run in France; the German node stays empty and the second waits.
    jobs = trace(job(0, 0, 10, 4, residency=["FR"]), job(1, 1, 10, 4, residency=["FR"]))
    result = replay(jobs, two_sites(), ONE_QUEUE, make([policy], jobs.jobs)[0])
    starts = sorted((o.first_start, o.end) for o in result.outcomes)
    assert starts == [(0.0, 10.0), (10.0, 20.0)]


@pytest.mark.parametrize("policy", ALL)
def test_a_job_no_site_could_ever_hold_is_unschedulable_and_blocks_nobody(policy: str) -> None:
    jobs = trace(job(0, 0, 10, 8), job(1, 1, 10, 2))
    result = replay(jobs, one_site(4, 4), ONE_QUEUE, make([policy], jobs.jobs)[0])
    assert [j.id for j in result.unschedulable] == [0]
    done = {o.job.id: o.first_start for o in result.outcomes if o.end is not None}
    assert done == {1: 1.0}


@pytest.mark.parametrize("policy", ALL)
def test_a_gang_lands_whole_on_one_site(policy: str) -> None:
    # 2 replicas x 4 GPUs: one site alone has room for both only in France.
    fleet = SimFleet(
        "gang",
        (SimSite("fra", "DE"), SimSite("par", "FR")),
        (SimPool("a", 0, "nvidia-h100"), SimPool("b", 1, "nvidia-h100")),
        (SimNode("fra-0", 0, 4), SimNode("par-0", 1, 4), SimNode("par-1", 1, 4)),
    )
    jobs = trace(job(0, 0, 10, 4, replicas=2))
    result = replay(jobs, fleet, ONE_QUEUE, make([policy], jobs.jobs)[0])
    assert result.outcomes[0].first_start == 0.0
    # The whole gang ran in Paris: the Frankfurt node was never allocated.
    assert result.timeline.allocated.max() == 8


def test_cycles_batch_decisions_onto_ticks() -> None:
    jobs = trace(job(0, 3, 10, 1), job(1, 12, 1, 1))
    result = replay(jobs, one_site(2), ONE_QUEUE, make(["fifo-first-fit"], jobs.jobs)[0], None, 10)
    starts = {o.job.id: (o.first_start, o.waited) for o in result.outcomes}
    assert starts == {0: (10.0, 7.0), 1: (20.0, 8.0)}


jobs_strategy = st.lists(
    st.tuples(
        st.integers(0, 50),  # arrival
        st.integers(1, 30),  # runtime
        st.sampled_from([1, 2, 4, 8]),  # GPUs per replica
        st.integers(1, 2),  # replicas
        st.sampled_from(["q0", "q1"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(specs=jobs_strategy, policy=st.sampled_from(ALL))
def test_every_feasible_job_finishes_and_capacity_is_never_exceeded(
    specs: list[tuple[int, int, int, int, str]], policy: str
) -> None:
    jobs = trace(*(job(i, a, r, g, q, n) for i, (a, r, g, n, q) in enumerate(specs)))
    fleet = one_site(8, 4, 2)
    queues = (QueueSpec("q0", 0.5), QueueSpec("q1", 0.5))
    result = replay(jobs, fleet, queues, make([policy], jobs.jobs)[0])
    assert not result.stalled
    finished = [o for o in result.outcomes if o.end is not None]
    assert len(finished) + len(result.unschedulable) == len(specs)
    for o in finished:
        assert o.end is not None
        assert o.first_start is not None
        assert o.first_start >= o.job.arrival
        # A job is pending, then runs; a preempted run is lost and counts as neither.
        if o.preempted == 0:
            assert o.end == pytest.approx(o.job.arrival + o.waited + o.job.runtime)
        else:
            assert o.end > o.job.arrival + o.waited + o.job.runtime
    assert np.all(result.timeline.allocated <= fleet.total_gpus)
    assert np.all(result.timeline.allocated >= 0)


@pytest.mark.parametrize("policy", ALL)
def test_an_accelerator_class_is_a_hard_rule_for_every_policy(policy: str) -> None:
    fleet = SimFleet(
        "classes",
        (SimSite("fra", "DE"),),
        (SimPool("h100", 0, "nvidia-h100"), SimPool("l4", 0, "nvidia-l4")),
        (SimNode("h100-0", 0, 8), SimNode("l4-0", 1, 4)),
    )
    # Two L4 jobs of 4 GPUs: the second waits for the first although 8 H100s are idle.
    jobs = trace(job(0, 0, 10, 4, classes=["nvidia-l4"]), job(1, 1, 10, 4, classes=["nvidia-l4"]))
    result = replay(jobs, fleet, ONE_QUEUE, make([policy], jobs.jobs)[0])
    assert sorted((o.first_start, o.end) for o in result.outcomes) == [(0.0, 10.0), (10.0, 20.0)]
    assert result.timeline.allocated.max() == 4


@pytest.mark.parametrize(
    ("policy", "big_starts"),
    [("fifo-first-fit", 0.0), ("kueue-like", 0.0), ("best-fit", 10.0), ("gpufleet", 10.0)],
)
def test_gpu_only_best_fit_takes_the_one_node_with_cores_for_a_big_pod(
    policy: str, big_starts: float
) -> None:
    # Node a: 4 GPUs, 4 cores; node b: 2 GPUs, 16 cores. A small pod (1 GPU, 2 cores)
    # comes first, then a big one (2 GPUs, 16 cores) only node b can hold. First-fit puts
    # the small pod on node a; best-fit by free GPUs (gpufleet's core too) picks node b,
    # which has fewer free GPUs, and the big pod waits until the small one ends.
    nodes = (SimNode("a", 0, 4, 4000), SimNode("b", 0, 2, 16000))
    fleet = SimFleet("cpu", (SimSite("s", "DE"),), (SimPool("p", 0, "nvidia-t4"),), nodes)
    small = replace(job(0, 0, 10, 1), cpu_milli=2000)
    big = replace(job(1, 0, 10, 2), cpu_milli=16000)
    jobs = trace(small, big)
    result = replay(jobs, fleet, ONE_QUEUE, make([policy], jobs.jobs)[0])
    first = {o.job.id: o.first_start for o in result.outcomes}
    assert first == {0: 0.0, 1: big_starts}


def _peak_cpu(result_segments: list[Segment], nodes: int) -> list[int]:
    """Most millicores held at once on each node, from the placements alone."""
    events: list[tuple[float, int, int, int]] = []
    for seg in result_segments:
        for node, _ in seg.run.alloc:
            events.append((seg.run.start, 1, node, seg.run.job.cpu_milli))
            events.append((seg.end, 0, node, -seg.run.job.cpu_milli))
    held, peak = [0] * nodes, [0] * nodes
    for _, _, node, delta in sorted(events):  # ends before starts at one instant
        held[node] += delta
        peak[node] = max(peak[node], held[node])
    return peak


@settings(max_examples=25, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.integers(0, 50),
            st.integers(1, 40),
            st.sampled_from([1, 2, 4]),
            st.integers(0, 24_000),
            st.sampled_from(["q0", "q1"]),
        ),
        min_size=1,
        max_size=20,
    ),
    policy=st.sampled_from(ALL),
)
def test_no_node_ever_holds_more_cpu_than_it_has(
    specs: list[tuple[int, int, int, int, str]], policy: str
) -> None:
    nodes = (SimNode("a", 0, 4, 8_000), SimNode("b", 0, 4, 32_000), SimNode("c", 0, 2, 24_000))
    fleet = SimFleet("cpu", (SimSite("s", "DE"),), (SimPool("p", 0, "nvidia-t4"),), nodes)
    jobs = trace(
        *(replace(job(i, a, r, g, q), cpu_milli=c) for i, (a, r, g, c, q) in enumerate(specs))
    )
    queues = (QueueSpec("q0", 0.5), QueueSpec("q1", 0.5))
    result = replay(jobs, fleet, queues, make([policy], jobs.jobs)[0])
    assert not result.stalled
    assert len(result.unschedulable) + sum(o.end is not None for o in result.outcomes) == len(specs)
    peak = _peak_cpu(result.segments, len(nodes))
    assert all(p <= n.cpu_milli for p, n in zip(peak, nodes, strict=True))
