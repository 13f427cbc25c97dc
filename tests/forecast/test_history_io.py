"""The hourly history: CSV round trip, bad rows, daily means, the hierarchy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpufleet.forecast.history import History, HistoryError, Key, read_csv, write_csv
from gpufleet.forecast.series import daily, hierarchy

KEYS = (
    Key("fra", "nvidia-h100", "a"),
    Key("fra", "nvidia-h100", "b"),
    Key("osl", "nvidia-h200", "a"),
)


def make(hours: int, start: str = "2025-01-06T00:00:00") -> History:
    rng = np.random.default_rng(0)
    alloc = rng.uniform(0, 10, (3, hours)).round(2)
    pend = rng.uniform(0, 2, (3, hours)).round(2)
    cap = np.full((3, hours), 16.0)
    wait = np.where(rng.uniform(size=(3, hours)) < 0.5, np.nan, 30.0)
    return History(np.datetime64(start, "s"), KEYS, alloc, pend, cap, wait, alloc + pend)


def test_csv_round_trip_keeps_every_value_and_missing_cell(tmp_path: Path) -> None:
    hist = make(50)
    write_csv(hist, tmp_path / "h.csv")
    back = read_csv(tmp_path / "h.csv")
    assert back.keys == KEYS
    assert back.start == hist.start
    np.testing.assert_allclose(back.allocated, hist.allocated)
    np.testing.assert_allclose(back.pending, hist.pending)
    np.testing.assert_array_equal(np.isnan(back.admission_wait), np.isnan(hist.admission_wait))
    assert back.demand_true is not None
    np.testing.assert_allclose(back.demand_true, hist.demand_true)  # type: ignore[arg-type]


def test_csv_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,site,accelerator_class,queue,allocated,pending,capacity,admission_wait_seconds\n"
        "2025-01-06T00:00:00Z,fra,h100,a,1,0,8,\n"
        "2025-01-06T00:30:00Z,fra,h100,a,1,0,8,\n"
        "2025-01-06T02:00:00Z,fra,h100,a,x,0,8,\n"
    )
    with pytest.raises(HistoryError) as err:
        read_csv(path)
    assert f"{path}:3: timestamp: not on the hour" in str(err.value)
    assert f"{path}:4: allocated: not a number ('x')" in str(err.value)
    path.write_text("timestamp,site,queue\n")
    with pytest.raises(HistoryError, match="missing column"):
        read_csv(path)


def test_daily_means_drop_ragged_ends_and_fill_gaps() -> None:
    # Starts at 12:00: the first day has only 12 hours and still counts (MIN_HOURS = 12);
    # ends at 05:00 on day 4, a day of 6 hours, which is dropped.
    hours = 12 + 24 * 3 + 6
    hist = make(hours, "2025-01-06T12:00:00")
    alloc = hist.allocated.copy()
    alloc[:, 12:36] = np.nan  # the whole second day (Jan 7) is missing
    hist = History(hist.start, KEYS, alloc, hist.pending, hist.capacity, hist.admission_wait)
    d = daily(hist)
    assert d.days[0] == np.datetime64("2025-01-06")
    assert d.days.size == 4  # 06, 07 (missing, interpolated), 08, 09
    demand = alloc + hist.pending
    np.testing.assert_allclose(d.values[:, 0], demand[:, :12].mean(axis=1))
    np.testing.assert_allclose(d.values[:, 2], demand[:, 36:60].mean(axis=1))
    np.testing.assert_allclose(d.values[:, 1], (d.values[:, 0] + d.values[:, 2]) / 2)
    np.testing.assert_array_equal(d.capacity, 16.0)


def test_daily_allocated_and_true_targets() -> None:
    hist = make(48)
    np.testing.assert_allclose(
        daily(hist, "allocated").values[:, 0], hist.allocated[:, :24].mean(1)
    )
    np.testing.assert_allclose(daily(hist, "true").values, daily(hist, "demand").values)
    no_truth = History(
        hist.start, KEYS, hist.allocated, hist.pending, hist.capacity, hist.admission_wait
    )
    with pytest.raises(ValueError, match="demand_true"):
        daily(no_truth, "true")


def test_hierarchy_sums_queues_to_site_classes_to_sites_to_fleet() -> None:
    h = hierarchy(KEYS)
    assert h.names == (
        "fleet", "fra", "osl", "fra/nvidia-h100", "osl/nvidia-h200",
        "fra/nvidia-h100/a", "fra/nvidia-h100/b", "osl/nvidia-h200/a",
    )  # fmt: skip
    bottom = np.array([[1.0], [2.0], [4.0]])
    np.testing.assert_allclose(h.aggregate(bottom)[:, 0], [7, 3, 4, 3, 4, 1, 2, 4])
    assert list(h.level_index("site_class")) == [3, 4]
