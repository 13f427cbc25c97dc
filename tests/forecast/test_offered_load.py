"""The offered-load estimate of demand from allocated, pending and admitted accelerators."""

from __future__ import annotations

import numpy as np

from gpufleet.forecast.series import offered_load


def test_without_a_backlog_demand_is_the_allocation() -> None:
    allocated = np.array([[10.0, 12.0, 11.0, 9.0]])
    pending = np.full((1, 4), 3.0)  # a steady queue: work waits, none piles up
    admitted = np.full((1, 4), 20.0)
    np.testing.assert_allclose(offered_load(allocated, pending, admitted, [("s", "c")]), allocated)


def test_a_growing_backlog_adds_its_work_not_its_size() -> None:
    # Capacity 64 kept full; 16 accelerators join the queue each day and each admitted
    # accelerator is held half a day (64 accelerator-days served by 128 admitted a day).
    days = 10
    allocated = np.full((1, days), 64.0)
    pending = 16.0 * np.arange(days)[None, :]
    admitted = np.full((1, days), 128.0)
    got = offered_load(allocated, pending, admitted, [("s", "c")])
    np.testing.assert_allclose(got[0, 1:], 64 + 0.5 * 16)  # work arrives at 72 a day
    assert got[0, 0] == 64  # the first day has no day before it
    # Allocated + pending would say 64 + 144 by the last day, and keep growing.


def test_the_hold_time_is_pooled_over_a_site_and_class_and_trails() -> None:
    allocated = np.array([[30.0] * 4, [10.0] * 4])
    pending = np.array([[0.0, 4.0, 8.0, 12.0], [0.0] * 4])
    admitted = np.array([[40.0] * 4, [0.0] * 4])  # the second queue admitted nothing
    got = offered_load(allocated, pending, admitted, [("s", "c"), ("s", "c")], window=2)
    # Pooled: 40 accelerator-days served a day by 40 admitted, held one day each.
    np.testing.assert_allclose(got[0], [30.0, 34.0, 34.0, 34.0])
    np.testing.assert_allclose(got[1], 10.0)
