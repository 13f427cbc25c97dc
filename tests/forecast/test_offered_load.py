"""The offered-load estimate of demand from allocated, pending and admitted accelerators."""

from __future__ import annotations

import numpy as np

from gpufleet.forecast.history import History, Key
from gpufleet.forecast.series import daily, offered_load


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


def test_the_hold_time_trails_a_change_in_admissions() -> None:
    # 64 accelerators served a day; admissions fall from 128 to 64 a day on day 4: the
    # hold time goes from half a day to one day, over the window's two days.
    allocated = np.full((1, 8), 64.0)
    pending = 10.0 * np.arange(8)[None, :]
    admitted = np.array([[128.0] * 4 + [64.0] * 4])
    got = offered_load(allocated, pending, admitted, [("s", "c")], window=2)
    r = (got[0] - 64) / 10
    np.testing.assert_allclose(r[1:], [0.5, 0.5, 0.5, 128 / 192, 1.0, 1.0, 1.0])


def test_a_group_that_admitted_nothing_borrows_its_class_then_the_fleet() -> None:
    allocated = np.array([[30.0] * 3, [0.0] * 3, [8.0] * 3])
    pending = np.array([[0.0] * 3, [0.0, 2.0, 4.0], [0.0, 1.0, 2.0]])
    admitted = np.array([[60.0] * 3, [0.0] * 3, [0.0] * 3])
    groups = [("a", "h100"), ("b", "h100"), ("c", "trn2")]
    got = offered_load(allocated, pending, admitted, groups, window=3)
    # A new site of a class its queue waits for: the class's hold time (half a day).
    np.testing.assert_allclose(got[1], [0.0, 1.0, 1.0])
    # Nothing of its class admitted either: the fleet's (30 + 0 + 8 served by 60 admitted).
    np.testing.assert_allclose(got[2], [8.0, 8 + 38 / 60, 8 + 38 / 60])


def test_days_before_the_counter_take_allocated_plus_pending() -> None:
    allocated = np.full((1, 6), 64.0)
    pending = np.array([[0.0, 8.0, 16.0, 24.0, 32.0, 40.0]])
    admitted = np.array([[np.nan, np.nan, np.nan, 128.0, 128.0, 128.0]])
    got = offered_load(allocated, pending, admitted, [("s", "c")], window=28)
    np.testing.assert_allclose(got[0, :3], [64.0, 72.0, 80.0])  # unknown: the backlog
    # From the counter on, the hold time over the days it counted only (half a day).
    np.testing.assert_allclose(got[0, 3:], 64 + 0.5 * 8)


def hourly_history(admitted: np.ndarray) -> History:
    days = admitted.shape[1] // 24
    hours = days * 24
    key = (Key("fra", "nvidia-h100", "q"),)
    allocated = np.full((1, hours), 64.0)
    pending = np.repeat(8.0 * np.arange(days), 24)[None, :].astype(float)
    return History(
        np.datetime64("2025-01-06T00:00:00"),
        key,
        allocated,
        pending,
        np.full((1, hours), 64.0),
        np.full((1, hours), np.nan),
        admitted=admitted,
    )


def test_daily_counts_admissions_per_day_over_the_hours_counted() -> None:
    # 5.333 accelerators admitted an hour = 128 a day, held half a day: demand 64 + 4.
    admitted = np.full((1, 4 * 24), 128 / 24)
    admitted[0, 24:36] = np.nan  # a 12-hour scrape gap: the day still admitted 128
    series = daily(hourly_history(admitted))
    assert series.target == "demand"
    np.testing.assert_allclose(series.values[0, 1:], 68.0)


def test_daily_without_any_admission_count_is_the_backlog() -> None:
    series = daily(hourly_history(np.full((1, 3 * 24), np.nan)))
    assert series.target == "backlog"
    np.testing.assert_allclose(series.values[0], [64.0, 72.0, 80.0])
