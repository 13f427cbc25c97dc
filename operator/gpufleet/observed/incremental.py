"""Translation in front of `translate`: only what changed since the last cycle is redone.

The cache counts changes per part (`FleetCache.versions`): gpufleet's objects, the
statuses alone of Sites, GpuPools and Queues, namespaces, cluster health, nodes and pods.
A cycle whose view shows the same counters as the last one reuses the last `Inputs` as
they are. Where only statuses changed (the leader's own Queue status writes, every few
seconds) the Queues' fairness state is read again and the rest kept (`with_statuses`):
at 20,000 workloads a whole translation for each of those writes was most of a steady
cycle. Where nodes or pods changed, the translated objects are kept and only the nodes
redone (their free capacity depends on the pods). Anything else is translated again,
with unchanged objects' parsed models reused by resourceVersion (translate's
`ParseCache`) and unchanged workloads' pod requests and core models reused with them
(`DerivedCache`). So the core's input for an unchanged fleet costs a comparison of
counters.

`Inputs` are shared between cycles: readers must not change them (none does).
"""

from __future__ import annotations

from dataclasses import replace

from gpufleet.observed.cache import HUB, CacheView
from gpufleet.observed.translate import (
    DerivedCache,
    Excluded,
    Inputs,
    ParseCache,
    _nodes,
    history_at,
    translate,
    with_statuses,
)

OBJECT_PARTS = ("objects", "namespaces", "health")


class IncrementalTranslator:
    def __init__(self) -> None:
        self.parsed: ParseCache = {}
        self.derived: DerivedCache = {}
        self._last: Inputs | None = None
        self._versions: dict[str, int] = {}
        self._excluded: Excluded = {}
        self._taken_at = 0.0  # when the last view was taken
        # What the last call did: "all" reused, "statuses" (the Queues' fairness state
        # read again), "objects" reused (nodes redone), or "none".
        self.reused = "none"

    def translate(
        self, view: CacheView, exclude: Excluded | None = None, now: float | None = None
    ) -> Inputs:
        """`exclude`: objects set aside from the start (what the core refused); a change in
        it translates everything again. `now`: the time decayed usage is brought to, also
        in reused Inputs (the Queue status it comes from did not change, time did)."""
        versions = view.versions
        last = self._last
        excluded = dict(exclude or {})
        out: Inputs | None = None
        statuses_read = False
        if (
            last is not None
            and versions
            and excluded == self._excluded
            and all(versions.get(p) == self._versions.get(p) for p in OBJECT_PARTS)
        ):
            out, self.reused = last, "all"
            if versions.get("statuses") != self._versions.get("statuses"):
                out, self.reused = with_statuses(last, view), "statuses"
                statuses_read = True
        if out is not None and (
            versions.get("nodes") != self._versions.get("nodes")
            or _refusal_ended(view, self._taken_at)
        ):
            # Node claims (overlaps) follow from the nodes' labels: found again with them.
            # The same Sites and GpuPools select them: a node's claims are found again
            # only if its record changed.
            out = replace(out, nodes=[], overlaps={})
            _nodes(view, out, last)
            self.reused = "objects"
        if out is None:
            hub = view.clusters.get(HUB)
            namespaces = hub.namespaces if hub is not None else {}
            out = translate(view, namespaces, self.parsed, excluded, now, self.derived, last)
            self.reused = "none"
        elif now is not None or statuses_read:
            # Decayed usage: from the statuses now held, brought to the cycle's time.
            out = history_at(out, now)
        self._last, self._versions, self._excluded = out, dict(versions), excluded
        self._taken_at = view.taken_at
        return out


def _refusal_ended(view: CacheView, since: float) -> bool:
    """Whether a kubelet's refusal stopped holding its node between the last view and this
    one: what the node offers follows from the clock there, not from any change."""
    return any(
        since < until <= view.taken_at
        for state in view.clusters.values()
        for _, until in state.refused.values()
    )
