"""What the statuses of Sites, GpuPools and Queues say about objects that cannot be used.

Pure. An object set aside by translation (`Inputs.invalid`, with its rule in
`Inputs.rules`) gets `Valid=False` naming the rule and nothing it could be
mistaken to say (connection, capacity, shares); a Site or GpuPool that claims
nodes another one claims too gets `Valid=False` (`NodesOverlap`) naming them,
since those nodes are used by neither.
"""

from __future__ import annotations

from typing import Any

from gpufleet.api.v1alpha1 import Site
from gpufleet.control.statuses import set_condition
from gpufleet.observed.cache import ClusterState
from gpufleet.observed.translate import Inputs

Statuses = dict[str, dict[str, Any]]

# What a set-aside object's status no longer says (a merge patch: None removes the field).
_CLEARED: dict[str, dict[str, Any]] = {
    "Site": {"connection": None, "capacity": None, "powerInUseKw": None},
    "GpuPool": {
        "nodesReady": None,
        "nodesTotal": None,
        "capacity": None,
        "allocated": None,
        "free": None,
        "fragmentation": None,
    },
    "Queue": {"resources": None, "totals": None},
}


def site_untried(state: ClusterState | None) -> bool:
    """Nothing is said of a site before its connection was tried and, once it answers, has
    listed its nodes and pods: a restart must not report every site as lost."""
    if state is None or state.reason == "NotYetProbed":
        return True
    return state.connected and not {"nodes", "pods"} <= state.synced


def apply_validity(
    bodies: dict[str, dict[str, dict[str, Any]]],
    inputs: Inputs,
    statuses: dict[str, Statuses],
    now: float,
) -> None:
    """`bodies` and `statuses`: per kind ("Site", "GpuPool", "Queue"), by name."""
    for kind in ("Site", "GpuPool"):
        for name, status in statuses[kind].items():
            overlaps = inputs.overlaps.get((kind, name), [])
            conds = status.get("conditions") or []
            if overlaps or any(c.get("type") == "Valid" for c in conds):
                gen = status.get("observedGeneration")
                status["conditions"] = _overlap_condition(conds, overlaps, gen, now)
    for (kind, key), problem in sorted(inputs.invalid.items()):
        if kind not in statuses:
            continue
        body = bodies[kind].get(key)
        if body is None or key in statuses[kind]:
            continue
        gen = body.get("metadata", {}).get("generation")
        rule = inputs.rule(kind, key)
        conds = (body.get("status") or {}).get("conditions")
        conds = set_condition(conds, "Valid", "False", rule, problem, gen, now)
        conds = set_condition(conds, "Ready", "False", rule, f"set aside: {problem}", gen, now)
        if kind == "Site":
            # Not "disconnected": nothing is known of it, it is not used.
            conds = [c for c in conds if c.get("type") != "Connected"]
        statuses[kind][key] = {**_CLEARED[kind], "observedGeneration": gen, "conditions": conds}


def _overlap_condition(
    conditions: list[dict[str, Any]], overlaps: list[str], gen: int | None, now: float
) -> list[dict[str, Any]]:
    if not overlaps:
        return set_condition(conditions, "Valid", "True", "Valid", "spec accepted", gen, now)
    shown = "; ".join(overlaps[:20])
    more = f"; and {len(overlaps) - 20} more" if len(overlaps) > 20 else ""
    return set_condition(
        conditions,
        "Valid",
        "False",
        "NodesOverlap",
        f"{len(overlaps)} node(s) claimed by another owner too are used by neither until the"
        f" selectors are fixed: {shown}{more}",
        gen,
        now,
    )


def site_fenced(site: Site, state: ClusterState) -> bool:
    """Whether a silent site's pods are known stopped: its agent's record was read back
    after the silence began, or a declaration was made after it (lifecycle.fence_evidence)."""
    confirmed = state.fence_confirmed_at
    if confirmed is not None and confirmed >= state.lease_renewed_at:
        return True
    declared = site.spec.loss_declaration
    return declared is not None and declared.at.timestamp() >= state.lease_renewed_at
