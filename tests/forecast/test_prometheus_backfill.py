"""`gpufleet forecast --prometheus` against a real Prometheus holding weeks of history:
a generated history is backfilled into the dev Prometheus's TSDB with promtool
(`tsdb create-blocks-from openmetrics`), read back hour by hour, and forecast.
Needs the binaries from `make tools`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dev.test_prometheus import binary
from gpufleet.cli import app
from gpufleet.dev import prometheus
from gpufleet.forecast.history import FloatArray, History
from gpufleet.forecast.prometheus import read_prometheus

from .conftest import generated

HOUR = 3600
Series = dict[tuple[tuple[str, str], ...], FloatArray]  # labels -> hourly values
DAYS = 100  # six rolling origins a week apart before a 4-week horizon need 84


def openmetrics(history: History, start: int) -> str:
    """The operator's gauges for `history`, one sample per hour, as OpenMetrics text.

    Each hour's sample is stamped at its middle, as a scrape within the hour would be:
    `avg_over_time(x[1h])` at the hour's end (the window (T - 1h, T]) then reads it."""
    stamps = start + HOUR * np.arange(history.hours) + HOUR // 2
    labels = {"job": prometheus.JOB, "namespace": prometheus.NAMESPACE}

    def family(name: str, series: Series) -> list[str]:
        lines = [f"# TYPE {name} gauge"]
        for key, values in sorted(series.items()):
            text = ",".join(f'{k}="{v}"' for k, v in (*labels.items(), *key))
            lines += [f"{name}{{{text}}} {v:.6f} {t}" for t, v in zip(stamps, values, strict=True)]
        return lines

    queue: dict[str, Series] = {"alloc": {}, "pend": {}}
    pool: dict[str, Series] = {"alloc": {}, "cap": {}}
    for k, key in enumerate(history.keys):
        q = (("accelerator_class", key.accelerator_class), ("queue", key.queue))
        p = (
            ("accelerator_class", key.accelerator_class),
            ("pool", f"{key.site}-pool"),
            ("site", key.site),
        )
        queue["alloc"][q] = queue["alloc"].get(q, 0.0) + history.allocated[k]
        queue["pend"][q] = queue["pend"].get(q, 0.0) + history.pending[k]
        pool["alloc"][p] = pool["alloc"].get(p, 0.0) + history.allocated[k]
        pool["cap"][p] = history.capacity[k]
    lines = [
        *family("gpufleet_queue_allocated_accelerators", queue["alloc"]),
        *family("gpufleet_queue_pending_accelerators", queue["pend"]),
        *family("gpufleet_pool_allocated_accelerators", pool["alloc"]),
        *family("gpufleet_pool_capacity_accelerators", pool["cap"]),
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


def test_forecast_reads_weeks_of_history_backfilled_into_prometheus(tmp_path: Path) -> None:
    history = generated(days=DAYS, seed=3)
    now = int(time.time())
    start = (now - now % HOUR) - DAYS * 24 * HOUR  # the history ends at the current hour
    source = tmp_path / "history.om"
    source.write_text(openmetrics(history, start))
    done = subprocess.run(
        [
            str(binary("promtool")),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=240h",  # ten blocks, not promtool's default of one per 2 h
            str(source),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    running = prometheus.start(binary("prometheus"), tmp_path, [], ["127.0.0.1:9"])
    try:
        back = read_prometheus(running.url, start, start + (history.hours - 1) * HOUR)
        assert back.keys == history.keys
        # avg_over_time(x[1h]) at the end of hour T is the sample within T: the hours
        # line up one to one.
        assert np.allclose(back.allocated, history.allocated, atol=1e-5, equal_nan=True)
        assert np.allclose(back.pending, history.pending, atol=1e-5, equal_nan=True)
        result = CliRunner().invoke(
            app,
            [
                "forecast",
                "--prometheus",
                running.url,
                "--days-back",
                str(DAYS),
                "--json",
                "--horizon",
                "4w",
            ],
        )
        assert result.exit_code == 0, result.output
    finally:
        prometheus.stop(tmp_path)
