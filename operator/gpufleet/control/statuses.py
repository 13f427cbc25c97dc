"""Status bodies for the four kinds, built from decisions. Pure.

Conditions follow the Kubernetes convention: one per type, lastTransitionTime
changes only when the status flips, observedGeneration records which spec was
looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gpufleet import core
from gpufleet.observed.translate import timestamp


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """To the microsecond: for times compared with clock readings of this process."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def set_condition(
    conditions: Sequence[dict[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: float,
) -> list[dict[str, Any]]:
    out = [dict(c) for c in (conditions or []) if c.get("type") != type_]
    old = next((c for c in (conditions or []) if c.get("type") == type_), None)
    changed = old is None or old.get("status") != status
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": rfc3339(now) if changed or old is None else old["lastTransitionTime"],
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    out.append(cond)
    return sorted(out, key=lambda c: str(c["type"]))


def admission_status(
    body: dict[str, Any], admission: core.Admission, nodes: Sequence[str], now: float
) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    epoch = int(status.get("epoch") or 0) + 1
    gen = body["metadata"].get("generation")
    message = (
        f"admitted to {admission.site}/{admission.pool} on {len(nodes)} node(s), epoch {epoch}"
    )
    return {
        "phase": "Admitted",
        "epoch": epoch,
        "placement": {
            "site": admission.site,
            "pool": admission.pool,
            "epoch": epoch,
            "replicas": [{"index": i, "node": n} for i, n in enumerate(nodes)],
            # To the microsecond: site-loss evidence must postdate it (lifecycle.fence_evidence)
            # and is timed by this process's clock; cut to the second, a placement made in
            # the second a fence was read back looked fenced too and was placed again twice.
            "admittedAt": rfc3339_micro(now),
        },
        "verdicts": None,
        "queuePosition": None,
        "observedGeneration": gen,
        "conditions": set_condition(
            status.get("conditions"), "Admitted", "True", "Admitted", message, gen, now
        ),
    }


def waiting_since(body: dict[str, Any]) -> float:
    """Unix time since which a pending workload waits: its creation, or its last requeue.

    A workload admitted before (epoch > 0) and waiting again was requeued (preempted, or its
    site lost); the Admitted condition turned False then, and set_condition keeps that time
    while it stays False.
    """
    created = timestamp(body["metadata"].get("creationTimestamp"))
    status = body.get("status") or {}
    if int(status.get("epoch") or 0) > 0:
        admitted = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Admitted"), None
        )
        if admitted is not None and admitted.get("status") == "False":
            return max(created, timestamp(admitted.get("lastTransitionTime")))
    return created


def eviction_status(body: dict[str, Any], eviction: core.Eviction, now: float) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    gen = body["metadata"].get("generation")
    message = f"evicted to make room for {eviction.preemptor}"
    conds = set_condition(
        status.get("conditions"), "Evicted", "True", eviction.reason, message, gen, now
    )
    conds = set_condition(conds, "Admitted", "False", eviction.reason, message, gen, now)
    if any(c.get("type") == "Running" for c in conds):
        # Its pods are being stopped: it no longer runs.
        conds = set_condition(conds, "Running", "False", eviction.reason, message, gen, now)
    # The latest evictions, kept for the queue's eviction cap (16 at most, as the API says).
    times = [*(status.get("evictionTimes") or []), rfc3339(now)][-16:]
    return {
        "phase": "Preempted",
        "placement": None,
        "startedAt": None,
        "evictionTimes": times,
        "observedGeneration": gen,
        "conditions": conds,
    }


def lifecycle_status(
    body: dict[str, Any],
    phase: str,
    reason: str,
    message: str,
    *,
    started: bool,
    finished: bool,
    clear_placement: bool,
    now: float,
    site_reachable: str | None = None,
    running: str | None = None,
    condition: tuple[str, str] | None = None,
) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    gen = body["metadata"].get("generation")
    patch: dict[str, Any] = {"phase": phase, "observedGeneration": gen}
    conds = status.get("conditions")
    if condition is not None:
        conds = set_condition(conds, condition[0], condition[1], reason, message, gen, now)
    if site_reachable is not None:
        conds = set_condition(conds, "SiteReachable", site_reachable, reason, message, gen, now)
    if running is not None:
        conds = set_condition(conds, "Running", running, reason, message, gen, now)
    if started:
        # Pods created again at the same epoch keep the first start: maxRuntimeSeconds counts
        # from it.
        if not status.get("startedAt"):
            patch["startedAt"] = rfc3339(now)
        conds = set_condition(conds, "Running", "True", reason, message, gen, now)
    if finished:
        patch["finishedAt"] = rfc3339(now)
        conds = set_condition(conds, "Running", "False", reason, message, gen, now)
        conds = set_condition(conds, "Finished", "True", reason, message, gen, now)
    if clear_placement:
        patch["placement"] = None
        patch["startedAt"] = None
        conds = set_condition(conds, "Admitted", "False", reason, message, gen, now)
        if any(c.get("type") == "Running" for c in conds or []):
            conds = set_condition(conds, "Running", "False", reason, message, gen, now)
    patch["conditions"] = conds
    return patch


def verdict_list(verdicts: Sequence[core.SiteVerdict]) -> list[dict[str, Any]]:
    out = []
    for v in verdicts[:256]:
        item: dict[str, Any] = {"rule": v.rule, "message": v.message[:1000]}
        if v.site:
            item["site"] = v.site
        if v.nearest_change:
            item["nearestChange"] = v.nearest_change[:1000]
        out.append(item)
    return out


def pending_status(
    body: dict[str, Any], verdicts: Sequence[core.SiteVerdict], position: int | None, now: float
) -> dict[str, Any] | None:
    """The status of a waiting workload, or None when it already says exactly that."""
    status = dict(body.get("status") or {})
    gen = body["metadata"].get("generation")
    items = verdict_list(verdicts)
    phase = status.get("phase") or "Pending"
    if phase not in ("Pending", "Preempted"):
        phase = "Pending"
    summary = _summary(verdicts)
    conds = set_condition(
        status.get("conditions"), "Admitted", "False", summary[0], summary[1], gen, now
    )
    if (
        status.get("verdicts") == items
        and status.get("queuePosition") == position
        and status.get("phase") == phase
        and _same_conditions(status.get("conditions"), conds)
        and status.get("observedGeneration") == gen
    ):
        return None
    return {
        "phase": phase,
        "verdicts": items,
        "queuePosition": position,
        "observedGeneration": gen,
        "conditions": conds,
    }


def _summary(verdicts: Sequence[core.SiteVerdict]) -> tuple[str, str]:
    if not verdicts:
        return "Waiting", "waiting for the next scheduling cycle"
    rules = sorted({v.rule for v in verdicts})
    reason = rules[0] if len(rules) == 1 else "NoSiteFits"
    detail = "; ".join(f"{v.site or 'fleet'}: {v.rule}" for v in verdicts[:8])
    return reason, f"not placed: {detail}"


def _same_conditions(a: Sequence[dict[str, Any]] | None, b: Sequence[dict[str, Any]]) -> bool:
    def strip(cs: Sequence[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
        return sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in cs or []
        )

    return strip(a) == strip(b)
