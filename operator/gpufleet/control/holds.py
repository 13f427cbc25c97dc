"""Admissions that must wait because an eviction they may count on was not recorded (pure).

The core decides a cycle's evictions and admissions together: once it evicts a workload,
every later decision of the cycle counts that workload's accelerators, its queue's quota
and its site's power as free, not only its preemptor's. When the eviction's write fails
(a conflict, a vanished workload), the victim still runs; an admission that relied on what
it would have freed would take a node past its accelerators, a queue past its limit or a
site past its power cap. Such admissions wait for the next cycle, which decides on fresh
state.

Which admissions could have relied on it: those at the victim's site (its nodes and its
power) and those whose queue shares a root with the victim's (limits of a queue and of
its ancestors). Others are recorded, so one failed write does not hold up the fleet.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpufleet import core
from gpufleet.observed.translate import Inputs


def queue_root(queue: str, inputs: Inputs) -> str:
    """The root of `queue`'s tree (itself when it has no parent, or an unknown one)."""
    seen = {queue}
    while True:
        model = inputs.queue_models.get(queue)
        parent = model.spec.parent if model is not None else None
        if parent is None or parent in seen:
            return queue
        seen.add(parent)
        queue = parent


def held_by_unrecorded(
    admissions: Iterable[core.Admission], victims: Iterable[str], inputs: Inputs
) -> set[str]:
    """The admissions (workload keys) that may count on room the unrecorded `victims`
    would have freed."""
    sites: set[str] = set()
    roots: set[str] = set()
    for key in victims:
        model = inputs.workload_models.get(key)
        if model is None:
            # Nothing known of it: no admission of the cycle can be shown independent.
            return {a.workload for a in admissions}
        placement = model.status.placement if model.status is not None else None
        if placement is not None:
            sites.add(placement.site)
        roots.add(queue_root(model.spec.queue, inputs))
    held: set[str] = set()
    for a in admissions:
        model = inputs.workload_models.get(a.workload)
        if a.site in sites or model is None or queue_root(model.spec.queue, inputs) in roots:
            held.add(a.workload)
    return held
