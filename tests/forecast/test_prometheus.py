"""The Prometheus reader against a local HTTP server serving canned range queries."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from gpufleet.forecast import prometheus
from gpufleet.forecast.history import HistoryError, Key
from gpufleet.forecast.prometheus import http_fetch
from gpufleet.forecast.series import daily

START = 1_736_121_600  # 2025-01-06T00:00:00Z
HOURS = 72


def _matrix(series: list[tuple[dict[str, str], float]], start: int, end: int) -> dict[str, Any]:
    """As Prometheus answers: the value at T is the mean over (T - 1h, T], the hour that
    starts at T - 1h; here `value` plus 0.01 for every hour that hour starts after START."""
    stamps = range(start, end + 1, 3600)
    result = [
        {
            "metric": labels,
            "values": [[t, str(value + (t - 3600 - START) / 3600 * 0.01)] for t in stamps],
        }
        for labels, value in series
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


# What the fleet reports: h200 at two sites (osl 3x the capacity of ams), h100 at one.
CANNED = {
    "gpufleet_queue_allocated_accelerators": [
        ({"queue": "research", "accelerator_class": "nvidia-h200"}, 40.0),
        ({"queue": "research", "accelerator_class": "nvidia-h100"}, 10.0),
    ],
    "gpufleet_queue_pending_accelerators": [
        ({"queue": "research", "accelerator_class": "nvidia-h200"}, 8.0),
        ({"queue": "research", "accelerator_class": "nvidia-h100"}, 2.0),
    ],
    "gpufleet_pool_allocated_accelerators": [
        ({"site": "osl", "accelerator_class": "nvidia-h200"}, 30.0),
        ({"site": "ams", "accelerator_class": "nvidia-h200"}, 10.0),
        ({"site": "fra", "accelerator_class": "nvidia-h100"}, 10.0),
    ],
    "gpufleet_pool_capacity_accelerators": [
        ({"site": "osl", "accelerator_class": "nvidia-h200"}, 48.0),
        ({"site": "ams", "accelerator_class": "nvidia-h200"}, 16.0),
        ({"site": "fra", "accelerator_class": "nvidia-h100"}, 16.0),
    ],
    "gpufleet_admission_wait_duration_seconds": [({"queue": "research"}, 120.0)],
    # Site-labelled: an admission knows where it went. None at ams in the range.
    "gpufleet_queue_admitted_accelerators_total": [
        ({"queue": "research", "site": "osl", "accelerator_class": "nvidia-h200"}, 5.0),
        ({"queue": "research", "site": "fra", "accelerator_class": "nvidia-h100"}, 2.0),
    ],
}


class Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                owner.requests.append({"path": url.path, **params})
                if owner.fail:
                    body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
                    self._send(400, body)
                    return
                metric = next(m for m in CANNED if m in params["query"])
                self._send(200, _matrix(CANNED[metric], int(params["start"]), int(params["end"])))

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


def test_reads_hourly_means_of_gpufleet_metrics_and_attributes_sites(server: Server) -> None:
    hist = prometheus.read_prometheus(server.url, START, START + (HOURS - 1) * 3600)
    queries = {r["query"] for r in server.requests}
    assert all(r["path"] == "/api/v1/query_range" and r["step"] == "3600s" for r in server.requests)
    assert (
        "sum by (queue, accelerator_class)"
        " (avg_over_time(gpufleet_queue_pending_accelerators[1h]))" in queries
    )
    assert any("increase(gpufleet_admission_wait_duration_seconds_count[1h])" in q for q in queries)
    assert hist.keys == (
        Key("ams", "nvidia-h200", "research"),
        Key("fra", "nvidia-h100", "research"),
        Key("osl", "nvidia-h200", "research"),
    )
    assert hist.start == np.datetime64("2025-01-06T00:00:00")
    assert hist.hours == HOURS
    drift = np.arange(HOURS) * 0.01
    q_alloc, q_pend = 40 + drift, 8 + drift
    ams_alloc, osl_alloc = 10 + drift, 30 + drift
    # Allocation split by where the class is allocated, pending by where it is installed.
    np.testing.assert_allclose(hist.allocated[0], q_alloc * ams_alloc / (ams_alloc + osl_alloc))
    np.testing.assert_allclose(hist.allocated[2], q_alloc * osl_alloc / (ams_alloc + osl_alloc))
    cap_share_ams = (16 + drift) / (64 + 2 * drift)
    np.testing.assert_allclose(hist.pending[0], q_pend * cap_share_ams)
    np.testing.assert_allclose(hist.allocated[1], 10 + drift)  # one site: exact
    np.testing.assert_allclose(hist.capacity[2], 48 + drift)
    np.testing.assert_allclose(hist.admission_wait[1], 120 + drift)
    # The fleet's backlog survives the attribution: sites add up to the queue's series.
    total = hist.backlog[0] + hist.backlog[2]
    np.testing.assert_allclose(total, q_alloc + q_pend)
    assert any("increase(gpufleet_queue_admitted_accelerators_total[1h])" in q for q in queries)
    assert hist.admitted is not None
    np.testing.assert_allclose(hist.admitted[2], 5 + drift)
    np.testing.assert_allclose(hist.admitted[0], 0.0)  # no series: nothing admitted there
    series = daily(hist)
    assert series.values.shape == (3, 3)
    assert series.target == "demand"


def test_without_the_admission_counter_demand_is_allocated_plus_pending(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator from before the counter: the query answers no series.
    monkeypatch.setitem(CANNED, "gpufleet_queue_admitted_accelerators_total", [])
    hist = prometheus.read_prometheus(server.url, START, START + (HOURS - 1) * 3600)
    assert hist.admitted is None
    series = daily(hist)
    assert series.target == "backlog"
    np.testing.assert_allclose(series.values, daily(hist, "backlog").values)


def test_long_ranges_are_fetched_in_chunks(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "MAX_POINTS", 25)
    hist = prometheus.read_prometheus(server.url, START, START + (HOURS - 1) * 3600)
    per_query = len(server.requests) // len(prometheus.QUERIES)
    assert per_query == 3  # 72 hours in chunks of 25 points
    starts = sorted({int(r["start"]) for r in server.requests})
    # Each hour is evaluated at its end: the first query starts an hour after START.
    assert starts == [START + 3600, START + 26 * 3600, START + 51 * 3600]
    assert not np.isnan(hist.allocated).any()
    np.testing.assert_allclose(hist.allocated[1], 10 + np.arange(HOURS) * 0.01)


def test_an_hour_is_read_from_the_evaluation_at_its_end(server: Server) -> None:
    # avg_over_time(x[1h]) at T covers (T - 1h, T]: the hour starting at START is the
    # evaluation at START + 1h, and the history's first hour is START's, not the hour before.
    hist = prometheus.read_prometheus(server.url, START, START + 2 * 3600)
    evaluated = sorted({int(r["start"]) for r in server.requests})
    assert evaluated == [START + 3600]
    assert {int(r["end"]) for r in server.requests} == {START + 3 * 3600}
    assert hist.start == np.datetime64("2025-01-06T00:00:00")
    np.testing.assert_allclose(hist.allocated[1], [10.0, 10.01, 10.02])
    np.testing.assert_allclose(hist.admission_wait[1], [120.0, 120.01, 120.02])


def test_errors_say_what_prometheus_answered(server: Server) -> None:
    server.fail = True
    with pytest.raises(HistoryError, match=r"answered 400.*parse error"):
        prometheus.read_prometheus(server.url, START, START + 3600 * 5)
    # A closed port on loopback: refused at once, reported as unreachable.
    with pytest.raises(HistoryError, match="unreachable"):
        prometheus.read_prometheus("http://127.0.0.1:9", START, START + 3600 * 5)


def test_admissions_before_the_counter_was_exported_are_unknown_not_zero(server: Server) -> None:
    # An operator upgraded 30 hours into the range: no admission series before then.
    upgraded = START + 31 * 3600  # the value at T covers the hour that starts at T - 1h
    real = http_fetch()

    def fetch(url: str) -> Any:
        payload = real(url)
        if "admitted_accelerators" in url:
            for series in payload["data"]["result"]:
                series["values"] = [v for v in series["values"] if v[0] >= upgraded]
        return payload

    hist = prometheus.read_prometheus(server.url, START, START + (HOURS - 1) * 3600, fetch)
    assert hist.admitted is not None
    assert np.isnan(hist.admitted[:, :30]).all()
    np.testing.assert_allclose(hist.admitted[0, 30:], 0.0)  # ams: exported, none there
    np.testing.assert_allclose(hist.admitted[2, 30:], 5 + np.arange(30, HOURS) * 0.01)
