"""Prometheus metrics of the operator: fleet state at scrape time, events as they happen.

Two halves, both registered on a `CollectorRegistry` the caller owns (no module-level
metric objects, so tests and several operators in one process never share counters):

- `FleetCollector(view)` reads a `FleetView` (the summary of the last scheduling cycle)
  on every scrape, so gauges can never drift from the state they describe.
- `OperatorMetrics(registry)` holds what only exists as events: cycle durations,
  admission waits, preemptions and evictions, the last cycle's timestamp.

`serve()` exposes `/metrics`, `/healthz` and `/readyz` on one port.

Wiring, as in `gpufleet.control.operator.Operator.start`::

    registry, events = create_registry(view)  # view: the loop's SummaryView
    server = serve(registry, "127.0.0.1", 8080, health=operator.healthy, ready=operator.ready)

`CATALOGUE` is the contract: every metric family the operator exports, with its type
and labels. The dashboard and the alerts may only use names listed there (tested).
"""

from __future__ import annotations

import enum
import platform
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

import gpufleet

# --- vocabulary: every label value comes from a closed set or a cluster-scoped name ---


class SiteConnection(enum.StrEnum):
    CONNECTED = "Connected"
    # Cut off, within the fence time: its pods may still run, nothing is re-placed yet.
    DISCONNECTED = "Disconnected"
    # Cut off past fence + grace: its workloads may be re-placed elsewhere.
    FENCED = "Fenced"
    UNKNOWN = "Unknown"


class WorkloadPhase(enum.StrEnum):
    PENDING = "Pending"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PREEMPTED = "Preempted"


class PreemptionReason(enum.StrEnum):
    # A queue below its deserved share takes back from queues above their fair share.
    RECLAIM = "Reclaim"
    # Higher priority displaces lower priority within one queue.
    PRIORITY_IN_QUEUE = "PriorityInQueue"


class EvictionReason(enum.StrEnum):
    PREEMPTED = "Preempted"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    # The site's fence passed: its pods are stopped there and the workload re-placed.
    SITE_FENCED = "SiteFenced"
    # Pods of an older dispatch epoch found after a site reconnected.
    STALE_EPOCH = "StaleEpoch"


class WriteKind(enum.StrEnum):
    """What a write request to an API server is for (gpufleet_api_writes_total)."""

    WORKLOAD_STATUS = "WorkloadStatus"
    # Site, GpuPool and Queue statuses.
    FLEET_STATUS = "FleetStatus"
    POD_CREATE = "PodCreate"
    POD_DELETE = "PodDelete"
    EVENT_CREATE = "EventCreate"
    # A repeated Event folded into an existing one (count + 1).
    EVENT_PATCH = "EventPatch"


# --- the read-only view of the operator's state that the collector needs ---

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# Kubernetes object names: bounded, never empty.
Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


class SiteState(BaseModel):
    model_config = _FROZEN

    name: Name
    connection: SiteConnection
    power_in_use_watts: float = Field(ge=0)
    # None: the site has no power budget (nothing is exported for it).
    power_budget_watts: float | None = Field(default=None, ge=0)


class PoolState(BaseModel):
    model_config = _FROZEN

    name: Name
    site: Name
    accelerator_class: Name
    capacity: int = Field(ge=0)
    allocated: int = Field(ge=0)
    # Not always capacity - allocated: accelerators on unready or cordoned nodes are neither.
    free: int = Field(ge=0)


class QueueShare(BaseModel):
    """One queue's standing for one accelerator class, in accelerators."""

    model_config = _FROZEN

    queue: Name
    accelerator_class: Name
    deserved: float = Field(ge=0)
    # Water-filling yields fractions.
    fair_share: float = Field(ge=0)
    allocated: float = Field(ge=0)
    pending: float = Field(ge=0)


class WorkloadGroup(BaseModel):
    """How many workloads of one queue are in one phase."""

    model_config = _FROZEN

    queue: Name
    phase: WorkloadPhase
    count: int = Field(ge=0)
    # Unix time at which the group's longest-waiting workload entered the phase.
    oldest_since: float | None = Field(default=None, ge=0)


class FleetView(Protocol):
    """What the collector reads at scrape time; implemented by the loop's `SummaryView`.

    Each call must return a consistent, point-in-time answer and must not block on I/O:
    it runs on the scrape's thread.
    """

    def sites(self) -> Iterable[SiteState]: ...

    def pools(self) -> Iterable[PoolState]: ...

    def queue_shares(self) -> Iterable[QueueShare]: ...

    def workload_groups(self) -> Iterable[WorkloadGroup]: ...


# --- the contract ---

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


_POOL = ("site", "pool", "accelerator_class")
_QUEUE = ("queue", "accelerator_class")

SITE_CONNECTION_STATE = MetricSpec(
    "gpufleet_site_connection_state",
    "gauge",
    ("site", "state"),
    "1 for the site's current connection state, 0 for the others.",
)
SITE_POWER_IN_USE = MetricSpec(
    "gpufleet_site_power_in_use_watts", "gauge", ("site",), "Power drawn by placed accelerators."
)
SITE_POWER_BUDGET = MetricSpec(
    "gpufleet_site_power_budget_watts", "gauge", ("site",), "Power budget of the site."
)
POOL_CAPACITY = MetricSpec(
    "gpufleet_pool_capacity_accelerators", "gauge", _POOL, "Accelerators in the pool."
)
POOL_ALLOCATED = MetricSpec(
    "gpufleet_pool_allocated_accelerators", "gauge", _POOL, "Accelerators held by placed pods."
)
POOL_FREE = MetricSpec(
    "gpufleet_pool_free_accelerators", "gauge", _POOL, "Accelerators available for placement."
)
QUEUE_DESERVED = MetricSpec(
    "gpufleet_queue_deserved_accelerators", "gauge", _QUEUE, "Guaranteed share of the queue."
)
QUEUE_FAIR_SHARE = MetricSpec(
    "gpufleet_queue_fair_share_accelerators",
    "gauge",
    _QUEUE,
    "Fair share computed by the last cycle.",
)
QUEUE_ALLOCATED = MetricSpec(
    "gpufleet_queue_allocated_accelerators", "gauge", _QUEUE, "Accelerators the queue holds."
)
QUEUE_PENDING = MetricSpec(
    "gpufleet_queue_pending_accelerators",
    "gauge",
    _QUEUE,
    "Accelerators asked for by the queue's pending workloads.",
)
WORKLOADS = MetricSpec(
    "gpufleet_workloads", "gauge", ("queue", "phase"), "Workloads by queue and phase."
)
QUEUE_OLDEST_PENDING = MetricSpec(
    "gpufleet_queue_oldest_pending_timestamp_seconds",
    "gauge",
    ("queue",),
    "Unix time since which the queue's longest-waiting workload is pending.",
)
CYCLE_DURATION = MetricSpec(
    "gpufleet_scheduling_cycle_duration_seconds",
    "histogram",
    (),
    "Duration of one scheduling cycle, snapshot to decisions.",
)
STEP_DURATION = MetricSpec(
    "gpufleet_scheduling_step_duration_seconds",
    "histogram",
    ("step",),
    "Duration of one step of a scheduling cycle: view, translate, snapshot, schedule, "
    "apply (lifecycle, evictions, admissions, verdicts) or statuses.",
)
API_WRITES = MetricSpec(
    "gpufleet_api_writes_total",
    "counter",
    ("kind",),
    "Write requests sent to API servers, by kind: WorkloadStatus, FleetStatus, PodCreate, "
    "PodDelete, EventCreate, EventPatch.",
)
LEADER = MetricSpec(
    "gpufleet_leader",
    "gauge",
    ("identity",),
    "1 while this replica leads (holds the leader Lease within its renew deadline), else 0.",
)
CYCLES = MetricSpec(
    "gpufleet_scheduling_cycles_total", "counter", (), "Scheduling cycles completed."
)
LAST_CYCLE = MetricSpec(
    "gpufleet_scheduling_last_cycle_timestamp_seconds",
    "gauge",
    (),
    "Unix time at which the last scheduling cycle completed.",
)
ADMISSION_WAIT = MetricSpec(
    "gpufleet_admission_wait_duration_seconds",
    "histogram",
    ("queue",),
    "Time from a workload's submission (or requeue) to its admission.",
)
QUEUE_ADMITTED = MetricSpec(
    "gpufleet_queue_admitted_accelerators_total",
    "counter",
    ("queue", "site", "accelerator_class"),
    "Accelerators of the queue's workloads admitted, by the site and class placed on.",
)
PREEMPTIONS = MetricSpec(
    "gpufleet_preemptions_total", "counter", ("reason",), "Workloads preempted."
)
EVICTIONS = MetricSpec(
    "gpufleet_evictions_total", "counter", ("reason",), "Workloads whose pods were evicted."
)
BUILD_INFO = MetricSpec(
    "gpufleet_build_info",
    "gauge",
    ("version", "python_version"),
    "Always 1; labels name the running build.",
)

FLEET_METRICS: tuple[MetricSpec, ...] = (
    SITE_CONNECTION_STATE,
    SITE_POWER_IN_USE,
    SITE_POWER_BUDGET,
    POOL_CAPACITY,
    POOL_ALLOCATED,
    POOL_FREE,
    QUEUE_DESERVED,
    QUEUE_FAIR_SHARE,
    QUEUE_ALLOCATED,
    QUEUE_PENDING,
    WORKLOADS,
    QUEUE_OLDEST_PENDING,
)
EVENT_METRICS: tuple[MetricSpec, ...] = (
    CYCLE_DURATION,
    STEP_DURATION,
    API_WRITES,
    LEADER,
    CYCLES,
    LAST_CYCLE,
    ADMISSION_WAIT,
    QUEUE_ADMITTED,
    PREEMPTIONS,
    EVICTIONS,
    BUILD_INFO,
)
CATALOGUE: tuple[MetricSpec, ...] = FLEET_METRICS + EVENT_METRICS

# The steps of a cycle, as timed by the loop (a closed set: the label stays bounded).
STEPS = ("view", "translate", "snapshot", "schedule", "apply", "statuses")

# A cycle should stay well under a second; the tail buckets show when it does not.
CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Waits range from an idle fleet (seconds) to a saturated one (days).
ADMISSION_WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)


def _gauge(spec: MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


class FleetCollector(Collector):
    """Gauges computed from a `FleetView` at scrape time."""

    def __init__(self, view: FleetView) -> None:
        self._view = view

    def describe(self) -> Iterable[Metric]:
        # Lets the registry reject duplicate names at registration without calling the view.
        return [_gauge(spec) for spec in FLEET_METRICS]

    def collect(self) -> Iterable[Metric]:
        yield from self._sites()
        yield from self._pools()
        yield from self._queues()

    def _sites(self) -> Iterator[Metric]:
        state = _gauge(SITE_CONNECTION_STATE)
        in_use = _gauge(SITE_POWER_IN_USE)
        budget = _gauge(SITE_POWER_BUDGET)
        for site in self._view.sites():
            # Every state is exported, so an alert on state="Connected" == 0 also fires
            # for states added later.
            for candidate in SiteConnection:
                state.add_metric([site.name, candidate.value], float(candidate is site.connection))
            in_use.add_metric([site.name], site.power_in_use_watts)
            if site.power_budget_watts is not None:
                budget.add_metric([site.name], site.power_budget_watts)
        yield from (state, in_use, budget)

    def _pools(self) -> Iterator[Metric]:
        capacity = _gauge(POOL_CAPACITY)
        allocated = _gauge(POOL_ALLOCATED)
        free = _gauge(POOL_FREE)
        for pool in self._view.pools():
            labels = [pool.site, pool.name, pool.accelerator_class]
            capacity.add_metric(labels, pool.capacity)
            allocated.add_metric(labels, pool.allocated)
            free.add_metric(labels, pool.free)
        yield from (capacity, allocated, free)

    def _queues(self) -> Iterator[Metric]:
        deserved = _gauge(QUEUE_DESERVED)
        fair_share = _gauge(QUEUE_FAIR_SHARE)
        allocated = _gauge(QUEUE_ALLOCATED)
        pending = _gauge(QUEUE_PENDING)
        queues: set[str] = set()
        for share in self._view.queue_shares():
            labels = [share.queue, share.accelerator_class]
            deserved.add_metric(labels, share.deserved)
            fair_share.add_metric(labels, share.fair_share)
            allocated.add_metric(labels, share.allocated)
            pending.add_metric(labels, share.pending)
            queues.add(share.queue)

        counts: dict[tuple[str, WorkloadPhase], int] = {}
        oldest_pending: dict[str, float] = {}
        for group in self._view.workload_groups():
            key = (group.queue, group.phase)
            counts[key] = counts.get(key, 0) + group.count
            queues.add(group.queue)
            if (
                group.phase is WorkloadPhase.PENDING
                and group.count
                and group.oldest_since is not None
            ):
                previous = oldest_pending.get(group.queue, group.oldest_since)
                oldest_pending[group.queue] = min(previous, group.oldest_since)

        workloads = _gauge(WORKLOADS)
        # Zeros for absent phases: a phase that empties must read 0, not vanish.
        for queue in sorted(queues):
            for phase in WorkloadPhase:
                workloads.add_metric([queue, phase.value], counts.get((queue, phase), 0))
        oldest = _gauge(QUEUE_OLDEST_PENDING)
        for queue, since in sorted(oldest_pending.items()):
            oldest.add_metric([queue], since)
        yield from (deserved, fair_share, allocated, pending, workloads, oldest)


class OperatorMetrics:
    """Event metrics of one operator, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry, *, version: str = gpufleet.__version__) -> None:
        self.cycle_duration = Histogram(
            CYCLE_DURATION.name,
            CYCLE_DURATION.help,
            CYCLE_DURATION.labels,
            registry=registry,
            buckets=CYCLE_BUCKETS,
        )
        self.step_duration = Histogram(
            STEP_DURATION.name,
            STEP_DURATION.help,
            STEP_DURATION.labels,
            registry=registry,
            buckets=CYCLE_BUCKETS,
        )
        self.api_writes = Counter(
            API_WRITES.name, API_WRITES.help, API_WRITES.labels, registry=registry
        )
        for write in WriteKind:
            self.api_writes.labels(kind=write.value)
        self.leader = Gauge(LEADER.name, LEADER.help, LEADER.labels, registry=registry)
        self.cycles = Counter(CYCLES.name, CYCLES.help, CYCLES.labels, registry=registry)
        self.last_cycle = Gauge(
            LAST_CYCLE.name, LAST_CYCLE.help, LAST_CYCLE.labels, registry=registry
        )
        self.admission_wait = Histogram(
            ADMISSION_WAIT.name,
            ADMISSION_WAIT.help,
            ADMISSION_WAIT.labels,
            registry=registry,
            buckets=ADMISSION_WAIT_BUCKETS,
        )
        self.admitted = Counter(
            QUEUE_ADMITTED.name, QUEUE_ADMITTED.help, QUEUE_ADMITTED.labels, registry=registry
        )
        self.preemptions = Counter(
            PREEMPTIONS.name, PREEMPTIONS.help, PREEMPTIONS.labels, registry=registry
        )
        self.evictions = Counter(
            EVICTIONS.name, EVICTIONS.help, EVICTIONS.labels, registry=registry
        )
        # Zero series for every reason, so rate() and alerts see them before the first event.
        for preemption in PreemptionReason:
            self.preemptions.labels(reason=preemption.value)
        for eviction in EvictionReason:
            self.evictions.labels(reason=eviction.value)
        build = Gauge(BUILD_INFO.name, BUILD_INFO.help, BUILD_INFO.labels, registry=registry)
        build.labels(version=version, python_version=platform.python_version()).set(1)
        # The queues that have an admission-wait series, so `retain_queues` knows what to drop.
        self._queues: set[str] = set()
        # Per queue, the (site, class) pairs of its admitted-accelerators series.
        self._admitted_labels: dict[str, set[tuple[str, str]]] = {}
        self._queues_lock = threading.Lock()

    def observe_cycle(self, duration_seconds: float, *, finished_at: float | None = None) -> None:
        if duration_seconds < 0:
            raise ValueError(f"duration_seconds must be >= 0, got {duration_seconds}")
        self.cycle_duration.observe(duration_seconds)
        self.cycles.inc()
        self.last_cycle.set(time.time() if finished_at is None else finished_at)

    def observe_step(self, step: str, duration_seconds: float) -> None:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; one of {', '.join(STEPS)}")
        self.step_duration.labels(step=step).observe(max(duration_seconds, 0.0))

    def count_write(self, kind: WriteKind, count: int = 1) -> None:
        self.api_writes.labels(kind=WriteKind(kind).value).inc(_positive(count))

    def set_leader(self, identity: str, leading: bool) -> None:
        self.leader.labels(identity=identity).set(1.0 if leading else 0.0)

    @contextmanager
    def time_cycle(self) -> Iterator[None]:
        """Times the block as one cycle; a cycle that raises is not counted as completed."""
        started = time.perf_counter()
        yield
        self.observe_cycle(time.perf_counter() - started)

    def observe_admission(
        self,
        queue: str,
        wait_seconds: float,
        *,
        accelerators: int = 0,
        site: str = "",
        accelerator_class: str = "",
    ) -> None:
        """An admission: its wait and, given where it went, its accelerators (the counter
        forecasting reads the offered load from, docs/forecast.md "The target")."""
        if not queue:
            raise ValueError("queue must be a non-empty queue name")
        if wait_seconds < 0:
            raise ValueError(f"wait_seconds must be >= 0, got {wait_seconds}")
        if accelerators < 0:
            raise ValueError(f"accelerators must be >= 0, got {accelerators}")
        with self._queues_lock:
            self._queues.add(queue)
            self.admission_wait.labels(queue=queue).observe(wait_seconds)
            if accelerators and site and accelerator_class:
                self._admitted_labels.setdefault(queue, set()).add((site, accelerator_class))
                self.admitted.labels(
                    queue=queue, site=site, accelerator_class=accelerator_class
                ).inc(accelerators)

    def count_preemption(self, reason: PreemptionReason, count: int = 1) -> None:
        # Converting rejects free-text reasons, which would make the label set unbounded.
        self.preemptions.labels(reason=PreemptionReason(reason).value).inc(_positive(count))

    def count_eviction(self, reason: EvictionReason, count: int = 1) -> None:
        self.evictions.labels(reason=EvictionReason(reason).value).inc(_positive(count))

    def forget_queue(self, queue: str) -> None:
        """Drops a deleted queue's admission series so they do not linger."""
        with self._queues_lock:
            self._queues.discard(queue)
            with suppress(KeyError):
                self.admission_wait.remove(queue)
            for site, cls in self._admitted_labels.pop(queue, set()):
                with suppress(KeyError):
                    self.admitted.remove(queue, site, cls)

    def retain_admitted(self, wanted: Collection[tuple[str, str, str]]) -> None:
        """The admitted-accelerators series, one per (queue, site, class) that can admit:
        each exported from 0 before its first admission (Prometheus' `increase` cannot see
        a series' first value), and dropped with its pool or site."""
        with self._queues_lock:
            have = {(q, s, c) for q, pairs in self._admitted_labels.items() for s, c in pairs}
            for queue, site, cls in sorted(set(wanted) - have):
                self.admitted.labels(queue=queue, site=site, accelerator_class=cls)
                self._admitted_labels.setdefault(queue, set()).add((site, cls))
                self._queues.add(queue)
            for queue, site, cls in sorted(have - set(wanted)):
                self._admitted_labels[queue].discard((site, cls))
                with suppress(KeyError):
                    self.admitted.remove(queue, site, cls)

    def retain_queues(self, present: Collection[str]) -> None:
        """Forgets every queue with a series that is not in `present` (the Queues that exist)."""
        with self._queues_lock:
            gone = self._queues - set(present)
        for queue in sorted(gone):
            self.forget_queue(queue)


def _positive(count: int) -> int:
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return count


def create_registry(view: FleetView) -> tuple[CollectorRegistry, OperatorMetrics]:
    """A registry with the fleet gauges, the event metrics and process/platform metrics."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, OperatorMetrics(registry)


# --- HTTP: /metrics, /healthz, /readyz ---

# A probe's answer: ok or not, optionally with a line saying why (e.g. who leads).
Check = Callable[[], bool | tuple[bool, str]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # A slow scrape must not hold up the kubelet's probes.
    daemon_threads = True


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    # Probes every few seconds would otherwise flood the operator's log.
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _probe(check: Check, start_response: StartResponse) -> list[bytes]:
    try:
        answer = check()
        ok, why = answer if isinstance(answer, tuple) else (answer, "")
        detail = ("ok" if ok else "not ok") + (f": {why}" if why else "")
    except Exception as exc:  # a probe must answer, never crash the server thread
        ok, detail = False, f"check raised {type(exc).__name__}: {exc}"
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [f"{detail}\n".encode()]


def make_app(
    registry: CollectorRegistry, health: Check, ready: Check | None = None
) -> WSGIApplication:
    """WSGI app routing `/metrics` to prometheus-client and the probe paths to the checks."""
    metrics: WSGIApplication = make_wsgi_app(registry)
    readiness = health if ready is None else ready

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path in ("/healthz", "/livez"):
            return _probe(health, start_response)
        if path == "/readyz":
            return _probe(readiness, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    return app


@dataclass
class MetricsServer:
    """A running metrics/probe server; `port` is the bound one (useful with port 0)."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    registry: CollectorRegistry,
    host: str,
    port: int,
    health: Check,
    ready: Check | None = None,
) -> MetricsServer:
    """Serves `/metrics`, `/healthz` (liveness: `health`) and `/readyz` (`ready`, or
    `health` if not given) from a daemon thread. Port 0 picks a free port."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
    server = make_server(
        host, port, make_app(registry, health, ready), server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="gpufleet-metrics", daemon=True)
    thread.start()
    return MetricsServer(host=host, port=server.server_port, _server=server, _thread=thread)
