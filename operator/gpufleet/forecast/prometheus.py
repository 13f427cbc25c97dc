"""The history from a Prometheus: range queries over gpufleet's own metrics.

Hourly means (`avg_over_time(...[1h])` at a one-hour step) of:

- `gpufleet_queue_allocated_accelerators` and `gpufleet_queue_pending_accelerators`
  by queue and accelerator class;
- `gpufleet_pool_allocated_accelerators` and `gpufleet_pool_capacity_accelerators` by
  site and accelerator class;
- the mean admission wait per queue from `gpufleet_admission_wait_duration_seconds`;
- accelerators admitted per hour (`increase(...[1h])`) of
  `gpufleet_queue_admitted_accelerators_total` by queue, site and class: what the
  offered-load estimate of demand needs (`series.offered_load`). An operator too old to
  export it gives a history without it, and demand falls back to allocated + pending.

The operator exports queue series without a site (a pending workload has none yet), so
a queue's accelerators of a class are attributed to the sites that have the class: its
allocation in proportion to the pools' allocation there, its pending demand in
proportion to their capacity. Where a class lives at one site this is exact.

A range selector `[1h]` evaluated at time T covers (T - 1h, T]: the value Prometheus
returns at T is the mean of the hour that *ends* at T. The history files an hour under
its start, so the hour starting at H is read from the evaluation at H + 1h.

Prometheus answers at most 11,000 points per series and query, so long ranges are
fetched in chunks. Only the standard HTTP API is used (`/api/v1/query_range`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from gpufleet.forecast.history import History, HistoryError, Key
from gpufleet.metrics import (
    ADMISSION_WAIT,
    POOL_ALLOCATED,
    POOL_CAPACITY,
    QUEUE_ADMITTED,
    QUEUE_ALLOCATED,
    QUEUE_PENDING,
)

MAX_POINTS = 11_000
STEP = 3600

QUERIES = {
    "queue_allocated": (
        f"sum by (queue, accelerator_class) (avg_over_time({QUEUE_ALLOCATED.name}[1h]))"
    ),
    "queue_pending": (
        f"sum by (queue, accelerator_class) (avg_over_time({QUEUE_PENDING.name}[1h]))"
    ),
    "pool_allocated": (
        f"sum by (site, accelerator_class) (avg_over_time({POOL_ALLOCATED.name}[1h]))"
    ),
    "pool_capacity": (
        f"sum by (site, accelerator_class) (avg_over_time({POOL_CAPACITY.name}[1h]))"
    ),
    "admission_wait": (
        f"sum by (queue) (increase({ADMISSION_WAIT.name}_sum[1h]))"
        f" / sum by (queue) (increase({ADMISSION_WAIT.name}_count[1h]))"
    ),
    "admitted": (f"sum by (queue, site, accelerator_class) (increase({QUEUE_ADMITTED.name}[1h]))"),
}

Fetch = Callable[[str], Any]


def http_fetch(timeout: float = 60.0) -> Fetch:
    def fetch(url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:500]
            raise HistoryError(f"Prometheus answered {exc.code} for {url}: {body}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise HistoryError(f"Prometheus at {url} is unreachable: {exc}") from exc

    return fetch


def query_range(
    base: str, query: str, start: int, end: int, fetch: Fetch
) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
    """Series (labels -> {unix second: value}) of one query, fetched in chunks."""
    out: dict[tuple[tuple[str, str], ...], dict[int, float]] = {}
    chunk = (MAX_POINTS - 1) * STEP
    t = start
    while t <= end:
        stop = min(end, t + chunk)
        params = urllib.parse.urlencode(
            {"query": query, "start": t, "end": stop, "step": f"{STEP}s"}
        )
        payload = fetch(f"{base.rstrip('/')}/api/v1/query_range?{params}")
        if payload.get("status") != "success":
            raise HistoryError(f"Prometheus query failed: {payload.get('error', payload)}")
        data = payload.get("data", {})
        if data.get("resultType") != "matrix":
            raise HistoryError(f"Prometheus: expected a matrix, got {data.get('resultType')}")
        for series in data.get("result", []):
            labels = tuple(sorted(series.get("metric", {}).items()))
            points = out.setdefault(labels, {})
            for stamp, value in series.get("values", []):
                number = float(value)
                if np.isfinite(number):
                    points[int(float(stamp))] = number
        t = stop + STEP
    return out


def read_prometheus(base: str, start: int, end: int, fetch: Fetch | None = None) -> History:
    """Hourly history of the hours starting from `start` to `end` (Unix seconds, rounded
    down to whole hours), both included.

    Each hour's means are evaluated at the hour's end (a `[1h]` window at T covers
    (T - 1h, T]), so the hour starting at H holds what happened from H to H + 1h."""
    get = fetch or http_fetch()
    start, end = start - start % STEP, end - end % STEP
    if end <= start:
        raise HistoryError("Prometheus: the range is empty")
    raw = {name: query_range(base, q, start + STEP, end + STEP, get) for name, q in QUERIES.items()}
    hours = (end - start) // STEP + 1

    def grid(series: dict[int, float]) -> np.ndarray[Any, np.dtype[np.float64]]:
        row = np.full(hours, np.nan)
        for stamp, value in series.items():
            i = (stamp - STEP - start) // STEP  # evaluated at its hour's end
            if 0 <= i < hours:
                row[i] = value
        return row

    def by(name: str, *labels: str) -> dict[tuple[str, ...], np.ndarray[Any, np.dtype[np.float64]]]:
        out = {}
        for key, series in raw[name].items():
            d = dict(key)
            if all(lb in d for lb in labels):
                out[tuple(d[lb] for lb in labels)] = grid(series)
        return out

    q_alloc = by("queue_allocated", "queue", "accelerator_class")
    q_pend = by("queue_pending", "queue", "accelerator_class")
    p_alloc = by("pool_allocated", "site", "accelerator_class")
    p_cap = by("pool_capacity", "site", "accelerator_class")
    waits = by("admission_wait", "queue")
    admitted = by("admitted", "queue", "site", "accelerator_class")
    # Hours the operator exported the counter at all: a series absent then admitted
    # nothing; before (an operator too old to export it) nothing is known.
    exported = np.zeros(hours, dtype=bool)
    for counts in admitted.values():
        exported |= ~np.isnan(counts)
    none_admitted = np.where(exported, 0.0, np.nan)
    if not p_cap:
        raise HistoryError(f"Prometheus: no {POOL_CAPACITY.name} series in the range")
    sites_of: dict[str, list[str]] = {}
    for site, cls in sorted(p_cap):
        sites_of.setdefault(cls, []).append(site)
    keys: list[Key] = []
    rows: dict[str, list[np.ndarray[Any, np.dtype[np.float64]]]] = {
        "allocated": [], "pending": [], "capacity": [], "wait": [], "admitted": []
    }  # fmt: skip
    for queue, cls in sorted(set(q_alloc) | set(q_pend)):
        sites = sites_of.get(cls, [])
        if not sites:
            continue  # a class no pool has: nothing to attribute it to
        cap_total = np.nansum([p_cap[(s, cls)] for s in sites], axis=0)
        alloc_total = np.nansum([p_alloc.get((s, cls), np.zeros(hours)) for s in sites], axis=0)
        for site in sites:
            cap_share = _share(p_cap[(site, cls)], cap_total)
            alloc_share = _share(p_alloc.get((site, cls), np.zeros(hours)), alloc_total)
            # With nothing allocated anywhere, the queue's allocation is 0: any share will do.
            alloc_share = np.where(alloc_total > 0, alloc_share, cap_share)
            keys.append(Key(site, cls, queue))
            rows["allocated"].append(
                q_alloc.get((queue, cls), np.full(hours, np.nan)) * alloc_share
            )
            rows["pending"].append(q_pend.get((queue, cls), np.full(hours, np.nan)) * cap_share)
            rows["capacity"].append(p_cap[(site, cls)])
            rows["wait"].append(waits.get((queue,), np.full(hours, np.nan)))
            counted = admitted.get((queue, site, cls))
            rows["admitted"].append(
                none_admitted
                if counted is None
                else np.where(exported, np.nan_to_num(counted), np.nan)
            )
    if not keys:
        raise HistoryError("Prometheus: no queue series of a class that a pool has")
    order = sorted(range(len(keys)), key=lambda i: keys[i])  # the CSV reader's order
    return History(
        np.datetime64(start, "s"),
        tuple(keys[i] for i in order),
        np.array(rows["allocated"])[order],
        np.array(rows["pending"])[order],
        np.array(rows["capacity"])[order],
        np.array(rows["wait"])[order],
        admitted=np.array(rows["admitted"])[order] if admitted else None,
    )


def _share(
    part: np.ndarray[Any, np.dtype[np.float64]], total: np.ndarray[Any, np.dtype[np.float64]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nan_to_num(part) / total, 0.0)
