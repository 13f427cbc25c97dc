"""Fair share: water-filling by weight, level by level, capped by limit and demand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpufleet.core.fairshare import INF, fair_shares, water_fill


def test_deserved_first_then_leftover_by_weight() -> None:
    assert water_fill(32, [8, 0], [INF, INF], [1, 3]) == [14, 18]


def test_saturated_queue_leftover_flows_to_others() -> None:
    # b can only use 4 more; the rest goes to a.
    assert water_fill(32, [0, 0], [100, 4], [1, 1]) == [28, 4]


def test_zero_weight_gets_no_extra() -> None:
    assert water_fill(32, [8, 0], [INF, INF], [0, 1]) == [8, 24]


def test_oversubscribed_deserved_scaled_in_proportion() -> None:
    assert water_fill(30, [30, 15], [INF, INF], [1, 1]) == pytest.approx([20, 10])


def test_idle_capacity_stays_idle_when_demand_is_met() -> None:
    assert water_fill(100, [0, 0], [10, 20], [1, 1]) == [10, 20]


def test_tree_is_filled_level_by_level() -> None:
    # dept0 (deserved 16) -> a (deserved 8), b; dept1 (deserved 16) -> c with demand 8.
    parents = [-1, -1, 0, 0, 1]
    deserved = [[16], [16], [8], [0], [0]]
    limit = [[INF]] * 5
    weight = [[1.0]] * 5
    demand = [[0], [0], [32], [32], [8]]
    shares = fair_shares(parents, deserved, limit, weight, demand, [32.0])
    assert [s[0] for s in shares] == [24, 8, 16, 8, 8]


def test_limit_of_a_parent_caps_its_subtree() -> None:
    parents = [-1, 0, 0, -1]
    shares = fair_shares(
        parents,
        deserved=[[0], [0], [0], [0]],
        limit=[[10], [INF], [INF], [INF]],
        weight=[[1.0]] * 4,
        demand=[[0], [50], [50], [50]],
        capacity=[40.0],
    )
    assert shares[0][0] == 10
    assert shares[1][0] + shares[2][0] == pytest.approx(10)
    assert shares[3][0] == 30


@given(
    available=st.integers(0, 500),
    queues=st.lists(
        st.tuples(st.integers(0, 64), st.integers(0, 200), st.sampled_from([0.0, 0.5, 1.0, 3.0])),
        min_size=1,
        max_size=8,
    ),
)
def test_water_fill_properties(available: int, queues: list[tuple[int, int, float]]) -> None:
    deserved = [float(d) for d, _, _ in queues]
    cap = [float(c) for _, c, _ in queues]
    weight = [w for _, _, w in queues]
    share = water_fill(float(available), deserved, cap, weight)
    guaranteed = [min(d, c) for d, c in zip(deserved, cap, strict=True)]
    assert sum(share) <= available + 1e-6
    if sum(guaranteed) <= available:
        for s, g, c in zip(share, guaranteed, cap, strict=True):
            assert g - 1e-9 <= s <= max(c, g) + 1e-6
        # Nothing left idle while someone with weight still wants more.
        wanting = [
            i
            for i, (s, c, w) in enumerate(zip(share, cap, weight, strict=True))
            if w > 0 and s < c - 1e-6
        ]
        if wanting:
            assert sum(share) == pytest.approx(available)
    else:
        assert sum(share) == pytest.approx(available)
