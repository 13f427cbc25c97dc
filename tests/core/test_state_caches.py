"""The cycle state's derived structures (free-accelerator buckets, histogram, the
numpy copy of the free-capacity lists and the per-shape pool fit cache) stay
equal to what the node arrays say, through any sequence of claims, releases and
their undo."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gpufleet.bench.synthetic import build_fleet
from gpufleet.core import Snapshot
from gpufleet.core.cyclestate import CycleState
from gpufleet.core.model import Workload

FLEET = build_fleet(2000, 20, 200, seed=5)
SNAP = Snapshot.build(FLEET.sites, FLEET.pools, FLEET.nodes, FLEET.queues, FLEET.workloads, 0.0)
# One pending workload per accelerator count, as single replicas.
SHAPES = list(
    {
        w.accelerators_per_replica: replace(w, replicas=1, min_replicas=1) for w in SNAP.pending
    }.values()
)


def _expected_buckets(state: CycleState, pool: int) -> list[list[int]]:
    lay = state.snap.layouts[pool]
    free = np.clip(state.acc[lay.start : lay.end], 0, state.max_acc)
    ready = state.ready[lay.start : lay.end]
    return [[]] + [
        [lay.start + i for i in np.flatnonzero(ready & (free == k)).tolist()]
        for k in range(1, state.max_acc + 1)
    ]


def _fresh_fit(state: CycleState, pool: int, w: Workload) -> tuple[list[int], list[list[int]]]:
    lay = state.snap.layouts[pool]
    f = state.fit(lay.start, lay.end, w)
    return f.tolist(), [np.add.reduceat(f, s).tolist() for s in lay.domain_starts]


def _check(state: CycleState) -> None:
    # The numpy copy, brought up to date on read, equals the lists claims update.
    assert state.res[:, :4].T.tolist() == [state.acc_l, state.cpu_l, state.mem_l, state.pods_l]
    for p, lay in enumerate(state.snap.layouts):
        assert state.buckets[p] == _expected_buckets(state, p)
        sl = slice(lay.start, lay.end)
        free = np.clip(state.acc[sl][state.ready[sl]], 0, state.max_acc)
        assert state.hist[p] == np.bincount(free, minlength=state.max_acc + 1).tolist()
        for w in SHAPES:
            fit = state.pool_fit(p, w)
            assert (fit.f, [lv.sums for lv in fit.levels]) == _fresh_fit(state, p, w)
            for lv in fit.levels:
                # The index by value says what the sums say.
                assert lv.keys == sorted(v * lv.n + d for d, v in enumerate(lv.sums))
                assert lv.max() == max(lv.sums, default=0)
                for count in range(1, lv.max() + 2):
                    room = [(v, d) for d, v in enumerate(lv.sums) if v >= count]
                    assert lv.tightest(count) == (min(room)[1] if room else -1)
                assert lv.total == sum(lv.sums)


@given(st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), min_size=1, max_size=25))
def test_buckets_histogram_and_fit_cache_follow_claims_and_releases(
    ops: list[tuple[int, bool]],
) -> None:
    state = CycleState(SNAP)
    for p in range(len(SNAP.pools)):  # fill the fit cache before anything moves
        for w in SHAPES:
            state.pool_fit(p, w)
    released: list[int] = []
    for pick, release in ops:
        if release and SNAP.running:
            r = pick % len(SNAP.running)
            if r not in released:
                state.release_running(r)
                released.append(r)
        else:
            w = SHAPES[pick % len(SHAPES)]
            pool = pick % len(SNAP.pools)
            lay = SNAP.layouts[pool]
            fit = state.fit(lay.start, lay.end, w)
            nodes = np.repeat(np.arange(lay.start, lay.end), np.minimum(fit, 2))[: 1 + pick % 12]
            if len(nodes):
                state.claim(w, SNAP.queue_index[w.queue], pool, nodes.tolist())
        if pick % 3 == 0:
            _check(state)
    for r in reversed(released):
        state.restore_running(r)
    _check(state)
