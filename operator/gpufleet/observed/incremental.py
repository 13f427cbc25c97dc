"""Translation in front of `translate`: only what changed since the last cycle is redone.

The cache counts changes per part (`FleetCache.versions`): gpufleet's objects, namespaces,
cluster health, nodes and pods. A cycle whose view shows the same counters as the last
one reuses the last `Inputs` as they are; one where only nodes or pods changed keeps the
translated objects and redoes only the nodes (their free capacity depends on the pods);
anything else is translated again, with unchanged objects' parsed models reused by
resourceVersion (translate's `ParseCache`) and unchanged workloads' pod requests and core
models reused with them (`DerivedCache`): the Queue statuses the leader writes every few
seconds make such a translation, and at 20,000 workloads the requests were most of it.
So the core's input for an unchanged fleet costs a comparison of four counters.

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
)

OBJECT_PARTS = ("objects", "namespaces", "health")


class IncrementalTranslator:
    def __init__(self) -> None:
        self.parsed: ParseCache = {}
        self.derived: DerivedCache = {}
        self._last: Inputs | None = None
        self._versions: dict[str, int] = {}
        self._excluded: Excluded = {}
        # What the last call did: "all" reused, "objects" reused (nodes redone), or "none".
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
        if (
            last is not None
            and versions
            and excluded == self._excluded
            and all(versions.get(p) == self._versions.get(p) for p in OBJECT_PARTS)
        ):
            if versions.get("nodes") == self._versions.get("nodes"):
                self.reused = "all"
                return last if now is None else history_at(last, now)
            # Node claims (overlaps) follow from the nodes' labels: found again with them.
            out = replace(last, nodes=[], overlaps={})
            _nodes(view, out)
            if now is not None:
                out = history_at(out, now)
            self.reused = "objects"
        else:
            hub = view.clusters.get(HUB)
            namespaces = hub.namespaces if hub is not None else {}
            out = translate(view, namespaces, self.parsed, excluded, now, self.derived)
            self.reused = "none"
        self._last, self._versions, self._excluded = out, dict(versions), excluded
        return out
