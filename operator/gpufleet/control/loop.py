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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol, TypeVar

from gpufleet import core
from gpufleet.control.elector import NotLeaderError
from gpufleet.control.events import EventCorrelator, EventRecorder
from gpufleet.control.gangs import GangService, gang_services
from gpufleet.control.handoff import (
    DEFAULT_GRACE_SECONDS,
    PLACEMENT_REFUSED,
    REFUSAL_HOLD_SECONDS,
    WAITING_FOR_NODES,
    grace_seconds,
)
from gpufleet.control.holds import held_by_unrecorded
from gpufleet.control.lifecycle import (
    LifecyclePlan,
    PodCreate,
    PodDelete,
    StatusChange,
    plan_lifecycle,
    replica_pods,
)
from gpufleet.control.podguard import PodGuard  # security gate (docs/security.md)
from gpufleet.control.statuses import (
    admission_status,
    eviction_status,
    lifecycle_status,
    pending_status,
    waiting_since,
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
    WriteKind,
)
from gpufleet.observed.cache import CacheView, FleetCache
from gpufleet.observed.incremental import IncrementalTranslator
from gpufleet.observed.translate import (
    INVALID_SPEC,
    RUNNING_PHASES,
    Excluded,
    Inputs,
    real_node_name,
)
from gpufleet.sites.dispatch import create_pods, delete_pods, plan_pods
from gpufleet.sites.gang import ensure_service, service_manifest
from gpufleet.sites.manager import ConnectionManager

log = logging.getLogger(__name__)

T = TypeVar("T")


class WriteGate(Protocol):
    """Whether this replica may write now (the leader election; see control/elector.py)."""

    def may_write(self) -> bool: ...

    def check(self) -> None:
        """Raises NotLeaderError when it may not."""


Bodies = dict[str, dict[str, Any]]  # workload key -> the object as last seen


@dataclass(frozen=True)
class Applied:
    """What one step of the cycle carried out. What it did not is retried on the next cycle."""

    written: tuple[str, ...] = ()  # workloads whose status was recorded
    not_written: tuple[str, ...] = ()  # a conflict, a vanished workload or an error
    pods_created: int = 0
    pods_deleted: int = 0
    # Evictions only: the preemptors whose room was not made (their admission must wait).
    room_not_made: frozenset[str] = frozenset()


def _recorded(keys: Sequence[str], written: Sequence[T | None]) -> Applied:
    """`written[i]` is what was written for `keys[i]`, None when nothing was."""
    return Applied(
        written=tuple(k for k, w in zip(keys, written, strict=True) if w is not None),
        not_written=tuple(k for k, w in zip(keys, written, strict=True) if w is None),
    )


@dataclass(frozen=True)
class _AdmissionRecord:
    """A placement recorded on its workload: what its pods are created from."""

    nodes: list[str]  # the clusters' node names, one per replica
    patch: dict[str, Any]
    written: dict[str, Any]


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
        explain_interval_seconds: float = 10.0,
        gate: WriteGate | None = None,
        events: EventCorrelator | None = None,
        catch_up: Callable[[], None] | None = None,
    ) -> None:
        # None: a single replica without leader election, which always writes.
        self.gate = gate
        # Run once each time this replica takes the lead, before its first write: brings
        # the cache up to a quorum read (the warm cache may lag the old leader's writes).
        self.catch_up = catch_up
        self._caught_up = False
        self.site_loss_after = site_loss_after
        self.verdict_budget = verdict_budget
        # A waiting workload's explanation is refreshed at most this often once it has one:
        # every admission moves the queue positions of everything behind it, and rewriting
        # thousands of statuses per admission would take the API server's writes from the
        # admissions themselves. A first explanation, a new phase or a changed spec is
        # written at once.
        self.explain_interval_seconds = explain_interval_seconds
        self.slow_cycle_seconds = 1.0
        self._explained_at: dict[str, float] = {}
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
        # Events are informative: they are posted beside the cycle and never hold it up,
        # folded and rate-limited as client-go's recorder does (control/events.py).
        self.events = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gpufleet-events")
        self.recorder = EventRecorder(writer, events)
        # A gang's pods are created side by side, not one after the other.
        self.pod_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpufleet-pods")
        self.cycles = 0
        # Cycles run as a standby: the cache's view translated, connections kept, no writes.
        self.warm_cycles = 0
        self.last_cycle_at = 0.0
        # The last cycle's duration per step (seconds), for `gpufleet dev scale` and the log.
        self.last_steps: dict[str, float] = {}
        self._last_fleet_status = 0.0
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        # Translation redoes only what changed since the last cycle (a standby's too).
        self.translator = IncrementalTranslator()
        self.guard = PodGuard()  # security gate (docs/security.md)
        # Objects the core refused: (kind, key) -> (resourceVersion, rule, message); kept out
        # until they change.
        self._refused: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.max_refusals = 32
        # Gang Services known to exist with these owners (sites/gang.py); a restarted operator
        # makes sure of each once more (409, or the owners patched).
        self._gangs: dict[tuple[str, str, int], frozenset[tuple[str, str]]] = {}
        # The cache's counters at the last `_ensure_gangs` that left nothing to do.
        self._gangs_settled_at: tuple[int | None, ...] | None = None

    # -- the daemon -------------------------------------------------------------
    async def run(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.resync_seconds)
            await asyncio.sleep(self.debounce_seconds)  # let a burst of events land first
            wake.clear()
            try:
                await asyncio.to_thread(self.turn)
            except NotLeaderError as exc:
                # The renew deadline passed mid-cycle: what was not written is the new
                # leader's to decide, from the API servers' state.
                log.warning("cycle stopped before its next write: %s", exc)
            except Exception:
                # One bad cycle must not stop scheduling; the next one starts from fresh state.
                log.exception("scheduling cycle failed; retrying on the next change")
                await asyncio.sleep(1)

    def turn(self) -> None:
        """A cycle if this replica leads, a warm cycle if not.

        The first cycle after taking the lead catches the cache up with the API server
        first: a standby's watches may lag the old leader's last admissions, and a queue's
        usage counted without them would admit past the queue's limit. A catch-up that
        fails leaves the next turn to try again, and nothing is written until one succeeds.
        """
        leading = self.gate is None or self.gate.may_write()
        if not leading:
            self._caught_up = False
            self.warm()
            return
        if not self._caught_up and self.catch_up is not None:
            # Set first: a loss of the lead while it lists (`lead_lost`) must stand.
            self._caught_up = True
            try:
                self.catch_up()
            except BaseException:
                self._caught_up = False
                raise
        self.cycle()

    def lead_lost(self) -> None:
        """From the election: the next time this replica leads, it catches up again, even
        if it leads again before a turn has seen it not lead."""
        self._caught_up = False

    # -- one cycle --------------------------------------------------------------
    def cycle(self) -> None:
        started = time.monotonic()
        steps = _StepTimer()
        now = time.time()
        with steps("view"):
            view = self.cache.view()  # 1
        with steps("translate"):
            inputs = self._translate(view, now)  # 2
        # Connections opened now feed the cache for the next cycle; this one uses the view.
        self.connections.reconcile(inputs.parsed_sites)  # 3
        for (kind, key), message in inputs.invalid.items():
            log.debug("%s %s set aside: %s", kind, key, message)
        with steps("apply"):
            lifecycle = plan_lifecycle(view, inputs, now, self.origin, self.site_loss_after)  # 4
            self._apply_lifecycle(view.workloads, lifecycle, now)
            self._ensure_gangs(view, inputs)
        busy = {c.workload for c in lifecycle.changes}
        inputs, result = self._schedule(view, inputs, busy, now, steps)  # 5
        if result is not None:
            with steps("apply"):
                # security gate: no admission (nor eviction for one) into a too-loose namespace
                refused = self.guard.refuse(
                    view, inputs, result, self._write_workload, self._event, now
                )
                evictions = [e for e in result.evictions if e.preemptor not in refused]
                evicted = self._apply_evictions(view.workloads, inputs, evictions, now)  # 6
                # An admission that counted on room from an eviction that was not recorded
                # would overcommit a node, a queue's limit or a site's power: it waits for
                # the next cycle instead (control/holds.py).
                held = evicted.room_not_made | refused
                # Victims whose eviction was not recorded, or not even tried (its preemptor
                # refused by the gate): the core counted their room as free all the same.
                unrecorded = [*evicted.not_written]
                unrecorded += [e.workload for e in result.evictions if e.preemptor in refused]
                held |= held_by_unrecorded(result.admissions, unrecorded, inputs)
                admissions = [a for a in result.admissions if a.workload not in held]
                self._apply_admissions(  # 7
                    view.workloads, inputs, admissions, now, result.evictions
                )
                if not _still_listing(view, inputs):
                    self._apply_verdicts(view.workloads, inputs, result, busy, now)  # 8
        with steps("statuses"):
            summary = summarise(view, inputs, result, now, self.site_loss_after)  # 9
            self.view.summary = summary
            if self.metrics is not None:
                self.metrics.retain_queues(view.queues)  # a deleted Queue's series go with it
                self.metrics.retain_admitted(_admission_series(inputs))
            if time.monotonic() - self._last_fleet_status >= self.status_interval_seconds:
                self._last_fleet_status = time.monotonic()
                self._write_fleet_status(view, summary)
        self.cycles += 1
        self.last_cycle_at = time.time()
        self.last_steps = dict(steps.seconds)
        took = time.monotonic() - started
        if took >= self.slow_cycle_seconds:
            # Where a slow cycle's time went, for whoever wonders why placement lags.
            log.info(
                "slow cycle: %.2fs (%s); %d workloads, %d lifecycle changes, %d admissions",
                took,
                ", ".join(f"{k} {v:.2f}s" for k, v in steps.seconds.items()),
                len(inputs.workloads),
                len(lifecycle.changes),
                len(result.admissions) if result is not None else 0,
            )
        if self.metrics is not None:
            self.metrics.observe_cycle(time.monotonic() - started, finished_at=self.last_cycle_at)
            for step, seconds in steps.seconds.items():
                self.metrics.observe_step(step, seconds)

    def warm(self) -> None:
        """A standby's cycle: steps 1-3 only, so that taking over costs no relist and no
        re-parse. It writes nothing, and exports no fleet state (the leader does)."""
        # As a leader translates, template screening included: a takeover that reuses these
        # inputs must find every queue's template policy, or it would dispatch nothing.
        inputs = self._translate(self.cache.view(), time.time())
        self.connections.reconcile(inputs.site_models)
        self.view.summary = FleetSummary()
        self.warm_cycles += 1
        self.last_cycle_at = time.time()

    # -- 2 ----------------------------------------------------------------------
    def _translate(self, view: CacheView, now: float) -> Inputs:
        inputs = self.translator.translate(view, self._still_refused(view), now)
        if self.translator.reused not in ("all", "statuses"):
            # security gate: templates their queue refuses are set aside (reused inputs
            # were screened when they were made; a status holds no template policy)
            self.guard.screen(inputs)
        return inputs

    # -- 2, 5: objects the core refuses ------------------------------------------
    def _still_refused(self, view: CacheView) -> Excluded:
        """What the core refused in earlier cycles and has not changed since."""
        tables = {
            "Site": view.sites,
            "GpuPool": view.pools,
            "Queue": view.queues,
            "Workload": view.workloads,
        }
        kept: dict[tuple[str, str], tuple[str, str, str]] = {}
        for (kind, key), (version, rule, message) in self._refused.items():
            body = tables[kind].get(key)
            if body is not None and _version(body) == version:
                kept[(kind, key)] = (version, rule, message)
        self._refused = kept
        return {k: (rule, message) for k, (_, rule, message) in kept.items()}

    def _schedule(
        self, view: CacheView, inputs: Inputs, busy: set[str], now: float, steps: _StepTimer
    ) -> tuple[Inputs, core.CycleResult | None]:
        """Build the snapshot and run the core. An object the core refuses (`ModelError`
        names it) is set aside with the core's words and the rest is tried again: one object
        never costs the fleet a cycle. Returns the inputs the core ran on."""
        for _ in range(self.max_refusals):
            # A workload whose phase just changed is not placed again this cycle, but if it
            # holds nodes it still counts: leaving it out would make its accelerators look free.
            usable = [w for w in inputs.workloads if w.key not in busy or w.placement is not None]
            try:
                with steps("snapshot"):
                    snapshot = core.Snapshot.build(
                        inputs.sites, inputs.pools, inputs.nodes, inputs.queues, usable, now
                    )
                with steps("schedule"):
                    return inputs, core.schedule(snapshot)
            except core.ModelError as exc:
                culprit = _refused_object(exc, inputs)
                if culprit is None or culprit in self._refused:
                    log.error("the fleet could not be scheduled: %s", exc)
                    return inputs, None
                kind, key = culprit
                table = {
                    "Site": view.sites,
                    "GpuPool": view.pools,
                    "Queue": view.queues,
                    "Workload": view.workloads,
                }[kind]
                log.warning("%s %s set aside: %s", kind, key, exc)
                self._refused[culprit] = (_version(table.get(key) or {}), INVALID_SPEC, str(exc))
                inputs = self._translate(view, now)
        log.error("the fleet could not be scheduled: over %d objects refused", self.max_refusals)
        return inputs, None

    # -- 4 ----------------------------------------------------------------------
    def _apply_lifecycle(self, bodies: Bodies, plan: LifecyclePlan, now: float) -> Applied:
        """Record phase changes, create missing pods, delete stray ones: all side by side."""
        for r in plan.refusals:
            self.cache.note_refusal(r.cluster, r.node, r.resource, now + REFUSAL_HOLD_SECONDS)
        changed = self._submit(partial(self._change_phase, bodies, c, now) for c in plan.changes)
        created = self._submit(
            partial(self._create_pods, bodies[c.workload], c)
            for c in plan.creates
            if c.workload in bodies
        )
        deleted = self._submit(partial(self._delete_stray, d) for d in plan.deletes)
        outcomes = self._outcomes(changed)
        for c, written in zip(plan.changes, outcomes, strict=True):
            if written is not None and c.phase in RUNNING_PHASES and not c.clear_placement:
                # Later steps of this cycle write on top of this version, not the viewed one
                # (an eviction of a workload just recorded Running would fail as a conflict).
                # Only while it still runs where it was placed: an eviction decided on the
                # viewed version of one that just finished or was requeued must keep failing
                # its compare-and-swap, or a finished workload would be queued to run again.
                bodies[c.workload] = written
        return replace(
            _recorded([c.workload for c in plan.changes], outcomes),
            pods_created=sum(n or 0 for n in self._outcomes(created)),
            pods_deleted=sum(n or 0 for n in self._outcomes(deleted)),
        )

    def _change_phase(self, bodies: Bodies, c: StatusChange, now: float) -> dict[str, Any] | None:
        body = bodies.get(c.workload)
        if body is None:
            return None
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
            running=c.running,
            condition=c.condition,
        )
        written = self._write_workload(body, patch)
        if written is not None:
            warn = c.phase == "Failed" or c.reason in (
                "PodsRecreated",
                "FenceUnconfirmed",
                PLACEMENT_REFUSED,
                WAITING_FOR_NODES,
            )
            self._event(body, "Warning" if warn else "Normal", c.reason, c.message)
            if c.reason == "MaxRuntimeExceeded" and self.metrics is not None:
                self.metrics.count_eviction(EvictionReason.MAX_RUNTIME_EXCEEDED)
            elif c.reason == "SiteLost" and self.metrics is not None:
                # On evidence that the site's pods are stopped; the workload moves.
                self.metrics.count_eviction(EvictionReason.SITE_FENCED)
        return written

    def _create_pods(self, body: dict[str, Any], pods: PodCreate) -> int:
        """Create the `missing` replicas' pods; returns how many were created."""
        conn = self.connections.connections.get(pods.cluster)
        if conn is None:
            return 0
        plans = plan_pods(
            workload=body,
            site=pods.site,
            nodes=list(pods.nodes),
            epoch=pods.epoch,
            resource_name=pods.resource_name,
            origin=self.origin,
            grace_seconds=pods.grace_seconds,
        )
        missing = [p for i, p in enumerate(plans) if i in pods.missing]
        missing = self.guard.harden(body, missing)  # security gate: checked again, token off
        self._count_write(WriteKind.POD_CREATE, len(missing))
        if len(missing) <= 1:
            return create_pods(conn.api_client, missing)
        return sum(self.pod_pool.map(lambda p: create_pods(conn.api_client, [p]), missing))

    def _ensure_gangs(self, view: CacheView, inputs: Inputs) -> None:
        """Each placed gang's headless Service, owned by its pods (after step 4: the pods
        must exist first). Only what is not yet known to exist is written.

        Skipped when the workloads, pods and health it follows from are as they were at a
        run that left nothing to do: at 100,000 GPUs a steady cycle spent a tenth of its
        time finding that again."""
        seen = tuple(view.versions.get(p) for p in ("objects", "nodes", "health"))
        if view.versions and seen == self._gangs_settled_at:
            return
        wanted = gang_services(view, inputs)
        self._gangs = {k: v for k, v in self._gangs.items() if k in wanted}
        todo = [(k, g) for k, g in sorted(wanted.items()) if self._gangs.get(k) != g.owners]
        done = self._run_all(partial(self._ensure_gang, g) for _, g in todo)
        for (k, g), ok in zip(todo, done, strict=True):
            if ok:
                self._gangs[k] = g.owners
        self._gangs_settled_at = seen if all(done) else None

    def _ensure_gang(self, g: GangService) -> bool:
        conn = self.connections.connections.get(g.cluster)
        if conn is None:
            return False
        manifest = service_manifest(
            namespace=g.namespace, workload=g.workload, uid=g.uid, epoch=g.epoch, owners=g.owners
        )
        ensure_service(conn.api_client, manifest)
        return True

    def _delete_stray(self, d: PodDelete) -> int:
        conn = self.connections.connections.get(d.cluster)
        if conn is None:
            return 0
        self._count_write(WriteKind.POD_DELETE, len(d.pods))
        deleted = delete_pods(conn.api_client, list(d.pods))
        if self.metrics is not None and d.reason == "NotPartOfAnyPlacement":
            self.metrics.count_eviction(EvictionReason.STALE_EPOCH, len(d.pods))
        return deleted

    # -- 6 ----------------------------------------------------------------------
    def _apply_evictions(
        self, bodies: Bodies, inputs: Inputs, evictions: list[core.Eviction], now: float
    ) -> Applied:
        """Record every eviction, then stop the recorded ones' pods."""
        written = self._run_all(partial(self._record_eviction, bodies, e, now) for e in evictions)
        recorded = [e for e, w in zip(evictions, written, strict=True) if w is not None]
        deleted = self._run_all(
            partial(self._stop_evicted, bodies[e.workload], e, inputs) for e in recorded
        )
        return replace(
            _recorded([e.workload for e in evictions], written),
            pods_deleted=sum(n or 0 for n in deleted),
            room_not_made=frozenset(
                e.preemptor for e, w in zip(evictions, written, strict=True) if w is None
            ),
        )

    def _record_eviction(
        self, bodies: Bodies, e: core.Eviction, now: float
    ) -> dict[str, Any] | None:
        body = bodies.get(e.workload)
        return None if body is None else self._write_workload(body, eviction_status(body, e, now))

    def _stop_evicted(self, body: dict[str, Any], e: core.Eviction, inputs: Inputs) -> int:
        """Announce a recorded eviction and delete its pods; returns how many were deleted."""
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
        if model is None or model.status is None or model.status.placement is None:
            return 0
        placement = model.status.placement
        cluster = inputs.site_cluster.get(placement.site)
        conn = self.connections.connections.get(cluster) if cluster else None
        if conn is None:
            return 0
        keys = list(replica_pods(model, placement))
        self._count_write(WriteKind.POD_DELETE, len(keys))
        # Graceful: the victim gets its SIGTERM window (a checkpoint); the preemptor's pods
        # wait until these are gone from its nodes (control/handoff.py).
        grace = grace_seconds(model, inputs.queue_models)
        return delete_pods(conn.api_client, keys, grace)

    # -- 7 ----------------------------------------------------------------------
    def _apply_admissions(
        self,
        bodies: Bodies,
        inputs: Inputs,
        admissions: list[core.Admission],
        now: float,
        evictions: Sequence[core.Eviction] = (),
    ) -> Applied:
        """Record each placement and, once it is recorded, create its pods: one task per
        admission, so that pods of the first admissions are created while later ones are
        still being recorded (no barrier between the two)."""
        # A preemptor's victims are only now being deleted, which this cycle's view does not
        # show yet: its pods wait for the lifecycle (control/handoff.py), which creates them
        # once the victims' pods are gone from its nodes.
        preemptors = {e.preemptor for e in evictions}
        outcomes = self._run_all(
            partial(self._admit, bodies, a, inputs, now, a.workload in preemptors)
            for a in admissions
        )
        return replace(
            _recorded(
                [a.workload for a in admissions],
                [None if o is None else o[0] for o in outcomes],
            ),
            pods_created=sum(o[1] for o in outcomes if o is not None),
        )

    def _admit(
        self, bodies: Bodies, a: core.Admission, inputs: Inputs, now: float, hand_off: bool
    ) -> tuple[_AdmissionRecord, int] | None:
        """The placement recorded and how many pods were created; None if not recorded."""
        record = self._record_admission(bodies, a, now)
        if record is None:
            return None
        if self.gate is not None:
            self.gate.check()  # before the pods too: the placement's write may have been slow
        try:
            created = self._start_admitted(bodies[a.workload], a, record, inputs, now, hand_off)
        except NotLeaderError:
            raise
        except Exception:
            # Recorded all the same: the lifecycle creates the missing pods on a later cycle.
            log.exception("pods of %s not created; retried on a later cycle", a.workload)
            created = 0
        return record, created

    def _record_admission(
        self, bodies: Bodies, a: core.Admission, now: float
    ) -> _AdmissionRecord | None:
        body = bodies.get(a.workload)
        if body is None:
            return None
        nodes = [real_node_name(n) for n in a.nodes]
        patch = admission_status(body, a, nodes, now)
        written = self._write_workload(body, patch)
        return None if written is None else _AdmissionRecord(nodes, patch, written)

    def _start_admitted(
        self,
        body: dict[str, Any],
        a: core.Admission,
        record: _AdmissionRecord,
        inputs: Inputs,
        now: float,
        hand_off: bool = False,
    ) -> int:
        """Announce a recorded admission and create its pods (unless it waits for victims,
        `hand_off`); returns how many were created."""
        patch = record.patch
        log.info(
            "admitted %s to %s/%s on %d node(s), epoch %s",
            a.workload,
            a.site,
            a.pool,
            len(record.nodes),
            patch["epoch"],
        )
        model = inputs.workload_models.get(a.workload)
        if self.metrics is not None and model is not None:
            since = waiting_since(body)
            pool = inputs.pool_models.get(a.pool)
            self.metrics.observe_admission(
                model.spec.queue,
                max(now - since, 0.0),
                accelerators=model.spec.total_accelerators,
                site=a.site,
                accelerator_class=pool.spec.accelerator_class if pool is not None else "",
            )
        self._event(
            body,
            "Normal",
            "Admitted",
            patch["conditions"][0]["message"] if patch.get("conditions") else "admitted",
        )
        pods = PodCreate(
            workload=a.workload,
            cluster=inputs.site_cluster[a.site],
            site=a.site,
            epoch=int(patch["epoch"]),
            nodes=tuple(record.nodes),
            missing=tuple(range(len(record.nodes))),  # a new placement has no pods yet
            resource_name=inputs.pool_models[a.pool].spec.resource_name,
            grace_seconds=grace_seconds(model, inputs.queue_models)
            if model
            else DEFAULT_GRACE_SECONDS,
        )
        if hand_off:
            return 0
        return self._create_pods(record.written, pods)

    # -- 8 ----------------------------------------------------------------------
    def _apply_verdicts(
        self,
        bodies: Bodies,
        inputs: Inputs,
        result: core.CycleResult,
        busy: set[str],
        now: float,
    ) -> Applied:
        """Write why each waiting workload waits: the ones set aside, then the core's."""
        admitted = {a.workload for a in result.admissions}
        patches: list[tuple[str, dict[str, Any]]] = []
        for key, verdict in inputs.blocked.items():
            body = bodies.get(key)
            if body is not None and (body.get("status") or {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                patch = pending_status(body, [verdict], None, now)
                if patch is not None:
                    patches.append((key, patch))
        for key in self._verdicts_to_explain(result, bodies, admitted | busy):
            patch = pending_status(
                bodies[key], result.verdicts[key], result.positions.get(key), now
            )
            if patch is not None and self._explanation_due(key, bodies[key], patch):
                patches.append((key, patch))
        written = self._run_all(partial(self._write_workload, bodies[k], p) for k, p in patches)
        clock = time.monotonic()
        for (key, _), w in zip(patches, written, strict=True):
            if w is not None:
                self._explained_at[key] = clock
        if len(self._explained_at) > 2 * len(bodies) + 1000:
            self._explained_at = {k: t for k, t in self._explained_at.items() if k in bodies}
        return _recorded([k for k, _ in patches], written)

    def _explanation_due(self, key: str, body: dict[str, Any], patch: dict[str, Any]) -> bool:
        status = body.get("status") or {}
        if (
            not status.get("verdicts")
            or status.get("phase", "Pending") != patch.get("phase")
            or status.get("observedGeneration") != patch.get("observedGeneration")
        ):
            return True
        last = self._explained_at.get(key)
        return last is None or time.monotonic() - last >= self.explain_interval_seconds

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
    def _write_fleet_status(self, view: CacheView, summary: FleetSummary) -> None:
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
                tasks.append(partial(self._write_fleet, kind, body, status, comparable))
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
    def _count_write(self, kind: WriteKind, n: int) -> None:
        if self.metrics is not None and n > 0:
            self.metrics.count_write(kind, n)

    def _event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.submit(self._post_event, body, type_, reason, message)

    def _post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if self.gate is None or self.gate.may_write():
            self.recorder.record(body, type_, reason, message)

    def _write_workload(self, body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
        try:
            written = self.writer.patch_status("Workload", body, patch)
        except ConflictError as exc:
            log.info("not recorded, will retry on fresh state: %s", exc)
            return None
        meta = written["metadata"]
        self.cache.assume_workload(f"{meta['namespace']}/{meta['name']}", written)
        return written

    def _submit(self, tasks: Iterable[Callable[[], T]]) -> list[Future[T]]:
        # Checked before the batch and again before each write in it: a batch of thousands
        # can outlast the renew deadline while its tasks wait for a worker.
        if self.gate is not None:
            self.gate.check()
        return [self.pool.submit(self._guarded, t) for t in tasks]

    def _guarded(self, task: Callable[[], T]) -> T:
        if self.gate is not None:
            self.gate.check()
        return task()

    @staticmethod
    def _outcomes(futures: Sequence[Future[T]]) -> list[T | None]:
        """Each task's result in order; None for one that raised (logged; the next cycle
        tries again). Raises NotLeaderError, after every task ended, if leadership ended."""
        results: list[T | None] = []
        lost: NotLeaderError | None = None
        for future in futures:
            try:
                results.append(future.result())
            except NotLeaderError as exc:
                lost = exc
                results.append(None)
            except Exception:
                log.exception("an action failed; it is retried on the next cycle")
                results.append(None)
        if lost is not None:
            raise lost
        return results

    def _run_all(self, tasks: Iterable[Callable[[], T]]) -> list[T | None]:
        return self._outcomes(self._submit(tasks))


def _admission_series(inputs: Inputs) -> set[tuple[str, str, str]]:
    """(queue, site, class) for every leaf queue and pool of a class the queue has."""
    parents = core.queues_with_children(inputs.queues)
    out = set()
    for name, queue in inputs.queue_models.items():
        if name in parents or ("Queue", name) in inputs.invalid:
            continue
        classes = {r.accelerator_class for r in queue.spec.resources or ()}
        for pool in inputs.pools:
            if pool.accelerator_class in classes:
                out.add((name, pool.site, pool.accelerator_class))
    return out


def _version(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion", ""))


def _refused_object(exc: core.ModelError, inputs: Inputs) -> tuple[str, str] | None:
    """The API object behind what the core refused: a node's is its pool's."""
    if exc.kind == "Node":
        node = next((n for n in inputs.nodes if n.name == exc.name), None)
        return None if node is None else ("GpuPool", node.pool)
    kind = {"Pool": "GpuPool"}.get(exc.kind, exc.kind)
    if kind not in ("Site", "GpuPool", "Queue", "Workload"):
        return None
    return kind, exc.name


class _StepTimer:
    """Adds up the time spent in each named step of a cycle."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


def _still_listing(view: CacheView, inputs: Inputs) -> bool:
    """Whether a Site's cluster is answering but not yet listed (or not yet probed at all).

    Its site looks disconnected to the core until then; explaining every waiting workload
    with that (a status write each, thousands after a start) would be wrong a moment later.
    A cluster that fails its probes is no longer "not yet probed": then it is explained.
    """
    for cluster in set(inputs.site_cluster.values()):
        state = view.clusters.get(cluster)
        if state is None or (not state.connected and state.reason == "NotYetProbed"):
            return True
        if state.connected and not {"nodes", "pods"} <= state.synced:
            return True
    return False


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
