"""The one scheduling loop of the operator.

A numbered recipe, run on every change (debounced) and at least every
`resync_seconds`:
 1. take a consistent view of the cache;
 2. translate API objects into the core's input (bad objects set aside);
 3. connect to the clusters of member Sites (their watches feed later cycles);
 4. carry placed workloads through their lifecycle from their pods' phases
    (create missing pods, remove stray ones, record Running/Succeeded/Failed);
 5. run the core on a snapshot: admissions, evictions, verdicts;
 6. evict: record Preempted (compare-and-swap), then delete the pods;
 7. admit: record the placement (compare-and-swap), assume it in the cache,
    then create the pods under deterministic names;
 8. explain: write each pending workload's verdicts and queue position;
 9. write Site, GpuPool and Queue statuses and refresh the metrics view.
Every write is idempotent or guarded, so stopping between any two steps and
starting again from the API servers loses, duplicates or double-counts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpufleet import core
from gpufleet.control.lifecycle import LifecyclePlan, PodCreate, plan_lifecycle
from gpufleet.control.podguard import PodGuard  # security gate (docs/security.md)
from gpufleet.control.statuses import (
    admission_status,
    eviction_status,
    lifecycle_status,
    pending_status,
)
from gpufleet.control.summary import FleetSummary, summarise
from gpufleet.control.writer import ConflictError, Writer
from gpufleet.metrics import (
    EvictionReason,
    OperatorMetrics,
    PoolState,
    PreemptionReason,
    QueueShare,
    SiteState,
    WorkloadGroup,
)
from gpufleet.observed.cache import HUB, FleetCache
from gpufleet.observed.translate import Inputs, ParseCache, real_node_name, timestamp, translate
from gpufleet.sites.dispatch import create_pods, delete_pods, plan_pods, pod_name
from gpufleet.sites.manager import ConnectionManager

log = logging.getLogger(__name__)


class SummaryView:
    """The metrics' read-only view: the summary of the last completed cycle."""

    def __init__(self) -> None:
        self.summary = FleetSummary()

    def sites(self) -> Iterable[SiteState]:
        return list(self.summary.site_states)

    def pools(self) -> Iterable[PoolState]:
        return list(self.summary.pool_states)

    def queue_shares(self) -> Iterable[QueueShare]:
        return list(self.summary.queue_shares)

    def workload_groups(self) -> Iterable[WorkloadGroup]:
        return list(self.summary.workload_groups)


class SchedulingLoop:
    def __init__(
        self,
        cache: FleetCache,
        connections: ConnectionManager,
        writer: Writer,
        *,
        origin: str,
        metrics: OperatorMetrics | None = None,
        view: SummaryView | None = None,
        resync_seconds: float = 5.0,
        debounce_seconds: float = 0.05,
        status_interval_seconds: float = 2.0,
        workers: int = 16,
        site_loss_after: float = 90.0,
        verdict_budget: int = 2000,
    ) -> None:
        self.site_loss_after = site_loss_after
        self.verdict_budget = verdict_budget
        self._verdict_cursor = 0
        self.cache = cache
        self.connections = connections
        self.writer = writer
        self.origin = origin
        self.metrics = metrics
        self.view = view or SummaryView()
        self.resync_seconds = resync_seconds
        self.debounce_seconds = debounce_seconds
        self.status_interval_seconds = status_interval_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpufleet-apply")
        # Events are informative: they are posted beside the cycle and never hold it up.
        self.events = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gpufleet-events")
        self.cycles = 0
        self.last_cycle_at = 0.0
        self._last_fleet_status = 0.0
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._parsed: ParseCache = {}
        self.guard = PodGuard()  # security gate (docs/security.md)

    # -- the daemon -------------------------------------------------------------
    async def run(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.resync_seconds)
            await asyncio.sleep(self.debounce_seconds)  # let a burst of events land first
            wake.clear()
            try:
                await asyncio.to_thread(self.cycle)
            except Exception:
                # One bad cycle must not stop scheduling; the next one starts from fresh state.
                log.exception("scheduling cycle failed; retrying on the next change")
                await asyncio.sleep(1)

    # -- one cycle --------------------------------------------------------------
    def cycle(self) -> None:
        started = time.monotonic()
        now = time.time()
        view = self.cache.view()  # 1
        hub = view.clusters.get(HUB)
        namespaces = hub.namespaces if hub is not None else {}
        inputs = translate(view, namespaces, self._parsed)  # 2
        self.guard.screen(inputs)  # security gate: templates their queue refuses are set aside
        # Connections opened now feed the cache for the next cycle; this one uses the view.
        self.connections.reconcile(inputs.site_models)  # 3
        for (kind, key), message in inputs.invalid.items():
            log.debug("%s %s set aside: %s", kind, key, message)
        lifecycle = plan_lifecycle(view, inputs, now, self.origin, self.site_loss_after)  # 4
        self._apply_lifecycle(view.workloads, inputs, lifecycle, now)
        busy = {c.workload for c in lifecycle.changes}
        # A workload whose phase just changed is not placed again this cycle, but if it holds
        # nodes it still counts: leaving it out would make its accelerators look free.
        usable = [w for w in inputs.workloads if w.key not in busy or w.placement is not None]
        result: core.CycleResult | None = None
        try:
            snapshot = core.Snapshot.build(
                inputs.sites, inputs.pools, inputs.nodes, inputs.queues, usable, now
            )
            result = core.schedule(snapshot)  # 5
        except core.ModelError as exc:
            log.error("the fleet could not be scheduled: %s", exc)
        if result is not None:
            # security gate: no admission (nor eviction for one) into a too-loose namespace
            refused = self.guard.refuse(
                view, inputs, result, self._write_workload, self._event, now
            )
            evictions = [e for e in result.evictions if e.preemptor not in refused]
            failed = self._apply_evictions(view.workloads, inputs, evictions, now)  # 6
            # An admission that counted on room from an eviction that was not recorded would
            # overcommit the nodes: it waits for the next cycle instead.
            admissions = [a for a in result.admissions if a.workload not in failed | refused]
            self._apply_admissions(view.workloads, inputs, admissions, now)  # 7
            self._apply_verdicts(view.workloads, inputs, result, busy, now)  # 8
        summary = summarise(view, inputs, result, now, self.site_loss_after)  # 9
        self.view.summary = summary
        if time.monotonic() - self._last_fleet_status >= self.status_interval_seconds:
            self._last_fleet_status = time.monotonic()
            self._write_fleet_status(view, summary)
        self.cycles += 1
        self.last_cycle_at = time.time()
        if self.metrics is not None:
            self.metrics.observe_cycle(time.monotonic() - started, finished_at=self.last_cycle_at)

    # -- 4 ----------------------------------------------------------------------
    def _apply_lifecycle(
        self, bodies: dict[str, dict[str, Any]], inputs: Inputs, plan: LifecyclePlan, now: float
    ) -> None:
        def change(c: Any) -> None:
            body = bodies.get(c.workload)
            if body is None:
                return
            patch = lifecycle_status(
                body,
                c.phase,
                c.reason,
                c.message,
                started=c.started,
                finished=c.finished,
                clear_placement=c.clear_placement,
                now=now,
                site_reachable=c.site_reachable,
            )
            if self._write_workload(body, patch):
                self._event(
                    body, "Warning" if c.phase == "Failed" else "Normal", c.reason, c.message
                )
                if c.reason == "MaxRuntimeExceeded" and self.metrics is not None:
                    self.metrics.count_eviction(EvictionReason.MAX_RUNTIME_EXCEEDED)

        def create(c: PodCreate) -> None:
            body = bodies.get(c.workload)
            if body is None:
                return
            self._create_pods(
                body, c.cluster, c.site, c.epoch, list(c.nodes), c.resource_name, c.missing
            )

        def delete(d: Any) -> None:
            conn = self.connections.connections.get(d.cluster)
            if conn is not None:
                delete_pods(conn.api_client, list(d.pods))
                if self.metrics is not None and d.reason == "NotPartOfAnyPlacement":
                    self.metrics.count_eviction(EvictionReason.STALE_EPOCH, len(d.pods))

        self._run_all(
            [lambda c=c: change(c) for c in plan.changes]
            + [lambda c=c: create(c) for c in plan.creates]
            + [lambda d=d: delete(d) for d in plan.deletes]
        )

    def _create_pods(
        self,
        body: dict[str, Any],
        cluster: str,
        site: str,
        epoch: int,
        nodes: list[str],
        resource: str,
        only: tuple[int, ...] | None = None,
    ) -> None:
        conn = self.connections.connections.get(cluster)
        if conn is None:
            return
        plans = plan_pods(
            workload=body,
            site=site,
            nodes=nodes,
            epoch=epoch,
            resource_name=resource,
            origin=self.origin,
        )
        if only is not None:
            plans = [p for i, p in enumerate(plans) if i in only]
        plans = self.guard.harden(body, plans)  # security gate: checked again, token off
        create_pods(conn.api_client, plans)

    # -- 6 ----------------------------------------------------------------------
    def _apply_evictions(
        self,
        bodies: dict[str, dict[str, Any]],
        inputs: Inputs,
        evictions: list[core.Eviction],
        now: float,
    ) -> set[str]:
        """Evict; return the preemptors whose room was not made."""
        failed: set[str] = set()

        def evict(e: core.Eviction) -> None:
            body = bodies.get(e.workload)
            written = None
            try:
                written = (
                    self._write_workload(body, eviction_status(body, e, now))
                    if body is not None
                    else None
                )
            finally:
                if written is None:
                    failed.add(e.preemptor)
            if written is not None and body is not None:
                log.info("evicted %s (%s) for %s", e.workload, e.reason, e.preemptor)
                self._event(body, "Warning", e.reason, f"evicted to make room for {e.preemptor}")
                if self.metrics is not None:
                    self.metrics.count_preemption(
                        PreemptionReason.RECLAIM
                        if e.reason == "Reclaimed"
                        else PreemptionReason.PRIORITY_IN_QUEUE
                    )
                    self.metrics.count_eviction(EvictionReason.PREEMPTED)
                # The pods go now; the stray-pod sweep would remove them next cycle anyway.
                model = inputs.workload_models.get(e.workload)
                placement = model.status.placement if model and model.status else None
                if placement is not None:
                    cluster = inputs.site_cluster.get(placement.site)
                    conn = self.connections.connections.get(cluster) if cluster else None
                    if conn is not None:
                        ns, name = e.workload.split("/", 1)
                        delete_pods(
                            conn.api_client,
                            [
                                f"{ns}/{pod_name(name, placement.epoch, r.index)}"
                                for r in placement.replicas
                            ],
                        )

        self._run_all([lambda e=e: evict(e) for e in evictions])
        return failed

    # -- 7 ----------------------------------------------------------------------
    def _apply_admissions(
        self,
        bodies: dict[str, dict[str, Any]],
        inputs: Inputs,
        admissions: list[core.Admission],
        now: float,
    ) -> None:
        def admit(a: core.Admission) -> None:
            body = bodies.get(a.workload)
            if body is None:
                return
            nodes = [real_node_name(n) for n in a.nodes]
            patch = admission_status(body, a, nodes, now)
            written = self._write_workload(body, patch)
            if written is None:
                return
            log.info(
                "admitted %s to %s/%s on %d node(s), epoch %s",
                a.workload,
                a.site,
                a.pool,
                len(nodes),
                patch["epoch"],
            )
            model = inputs.workload_models.get(a.workload)
            if self.metrics is not None and model is not None:
                created = timestamp(body["metadata"].get("creationTimestamp"))
                self.metrics.observe_admission(model.spec.queue, max(now - created, 0.0))
            self._event(
                body,
                "Normal",
                "Admitted",
                patch["conditions"][0]["message"] if patch.get("conditions") else "admitted",
            )
            cluster = inputs.site_cluster[a.site]
            resource = inputs.pool_models[a.pool].spec.resource_name
            self._create_pods(written, cluster, a.site, int(patch["epoch"]), nodes, resource)

        self._run_all([lambda a=a: admit(a) for a in admissions])

    # -- 8 ----------------------------------------------------------------------
    def _apply_verdicts(
        self,
        bodies: dict[str, dict[str, Any]],
        inputs: Inputs,
        result: core.CycleResult,
        busy: set[str],
        now: float,
    ) -> None:
        admitted = {a.workload for a in result.admissions}
        tasks = []
        for key, verdict in inputs.blocked.items():
            body = bodies.get(key)
            if body is not None and (body.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                patch = pending_status(body, [verdict], None, now)
                if patch is not None:
                    tasks.append(lambda b=body, p=patch: self._write_workload(b, p))
        for key in self._verdicts_to_explain(result, bodies, admitted | busy):
            body = bodies[key]
            patch = pending_status(body, result.verdicts[key], result.positions.get(key), now)
            if patch is not None:
                tasks.append(lambda b=body, p=patch: self._write_workload(b, p))
        self._run_all(tasks)

    def _verdicts_to_explain(
        self, result: core.CycleResult, bodies: dict[str, dict[str, Any]], skip: set[str]
    ) -> list[str]:
        """The pending workloads whose verdicts this cycle works out and writes.

        Verdicts cost tens of microseconds each and are computed only when read. Workloads
        never explained come first; the others take turns, `verdict_budget` per cycle, so
        100,000 waiting workloads do not make every cycle slow.
        """
        keys = [k for k in result.verdicts if k not in skip and k in bodies]
        fresh = [k for k in keys if not (bodies[k].get("status") or {}).get("verdicts")]
        if len(keys) <= self.verdict_budget:
            return keys
        chosen = fresh[: self.verdict_budget]
        rest = sorted(set(keys) - set(chosen))
        room = self.verdict_budget - len(chosen)
        if room > 0 and rest:
            start = self._verdict_cursor % len(rest)
            turn = (rest[start:] + rest[:start])[:room]
            self._verdict_cursor = start + len(turn)
            chosen += turn
        return chosen

    # -- 9 ----------------------------------------------------------------------
    def _write_fleet_status(self, view: Any, summary: FleetSummary) -> None:
        tasks = []
        for kind, table, statuses in (
            ("Site", view.sites, summary.site_status),
            ("GpuPool", view.pools, summary.pool_status),
            ("Queue", view.queues, summary.queue_status),
        ):
            for name, status in statuses.items():
                body = table.get(name)
                if body is None:
                    continue
                comparable = _without_times(status)
                if (
                    self._written.get((kind, name)) == comparable
                    and _without_times(body.get("status") or {}) == comparable
                ):
                    continue
                tasks.append(
                    lambda k=kind, b=body, s=status, c=comparable: self._write_fleet(k, b, s, c)
                )
        self._run_all(tasks)

    def _write_fleet(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], comparable: dict[str, Any]
    ) -> None:
        if kind == "Site":
            before = _condition(body.get("status") or {}, "Connected")
            after = _condition(status, "Connected")
            if after is not None and (
                before is None or before.get("status") != after.get("status")
            ):
                connected = after.get("status") == "True"
                self._event(
                    body,
                    "Normal" if connected else "Warning",
                    "SiteConnected" if connected else "SiteDisconnected",
                    f"{after.get('reason')}: {after.get('message')}",
                )
        try:
            self.writer.patch_status(kind, body, status, cas=False)
            self._written[(kind, body["metadata"]["name"])] = comparable
        except ConflictError:
            pass

    # -- helpers ----------------------------------------------------------------
    def _event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.submit(self.writer.event, body, type_, reason, message)

    def _write_workload(self, body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
        try:
            written = self.writer.patch_status("Workload", body, patch)
        except ConflictError as exc:
            log.info("not recorded, will retry on fresh state: %s", exc)
            return None
        meta = written["metadata"]
        self.cache.assume_workload(f"{meta['namespace']}/{meta['name']}", written)
        return written

    def _run_all(self, tasks: list[Any]) -> None:
        if not tasks:
            return
        for future in [self.pool.submit(t) for t in tasks]:
            try:
                future.result()
            except Exception:
                log.exception("an action failed; it is retried on the next cycle")


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in ("conditions", "connection")}
    out["conditions"] = sorted(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    )
    conn = status.get("connection")
    if conn:
        out["connection"] = {k: v for k, v in conn.items() if k != "lastHeartbeat"}
    return out
