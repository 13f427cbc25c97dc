"""The operator's in-memory view of every cluster, fed by watches.

Kopf feeds the hub's gpufleet objects (sites, pools, queues, workloads); the
site connections feed nodes and pods of each cluster. The scheduling loop
reads a consistent copy under the lock and never talks to an API server
itself. Nothing here is authoritative: after a restart it is rebuilt from the
API servers, which is what makes restarts safe.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from gpufleet.api.v1alpha1 import KIND_INFO
from gpufleet.observed.records import NodeRecord, PodRecord

# The cluster the operator itself runs against; sites whose nodes are "local" live here.
HUB = "(hub)"


@dataclass
class ClusterState:
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    connected: bool = False
    reason: str = "NotYetProbed"
    message: str = "no health probe has completed yet"
    since: float = field(default_factory=time.time)
    synced: set[str] = field(default_factory=set)
    # Until a renewal is seen, count from when the operator first knew the cluster: an earlier
    # incarnation may have renewed just before it stopped.
    lease_renewed_at: float = field(default_factory=time.time)
    # The cluster's `kube-system` namespace UID, read on its first answer: two Sites that
    # reach the same cluster through different kubeconfigs are told apart by it.
    identity: str | None = None
    # The member's fence agent's record (see sites/fence.py), as last read; None: none seen.
    fence_record: FenceRecord | None = None
    # When the operator read a complete fence record made after the Lease's last renewal:
    # every pod of ours there was stopped before this time (the operator's clock).
    fence_confirmed_at: float | None = None
    # Nodes whose kubelet refused one of our pods: node -> (the resource it was out of, or
    # None for any other refusal; until when that is believed). See control/handoff.py.
    refused: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    def copy(self) -> ClusterState:
        """Every field, with its own containers: a field added later cannot be left out of views."""
        return ClusterState(**{f.name: _own(getattr(self, f.name)) for f in fields(self)})


@dataclass(frozen=True)
class FenceRecord:
    """What a member's agent wrote when it fenced: it saw no renewal after `lease_version`
    and, when `complete`, no pod of ours was left running in that cluster."""

    lease_version: str
    fenced_at: str
    complete: bool


def _own(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, set):
        return set(value)
    return value


@dataclass(frozen=True)
class CacheView:
    """A consistent, immutable-by-convention copy for one scheduling cycle."""

    sites: dict[str, dict[str, Any]]
    pools: dict[str, dict[str, Any]]
    queues: dict[str, dict[str, Any]]
    workloads: dict[str, dict[str, Any]]
    clusters: dict[str, ClusterState]
    taken_at: float
    # What changed since: a counter per part of the cache (see `FleetCache.versions`).
    versions: dict[str, int] = field(default_factory=dict)


class FleetCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sites: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.workloads: dict[str, dict[str, Any]] = {}
        # Kind name (as in the API) → its table; every kind of the API has one.
        self._tables = {
            "Site": self.sites,
            "GpuPool": self.pools,
            "Queue": self.queues,
            "Workload": self.workloads,
        }
        if set(self._tables) != set(KIND_INFO):
            raise RuntimeError("a kind of the API has no table in the cache")
        self.clusters: dict[str, ClusterState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.generation = 0
        # One counter per part of the cache, bumped under the lock with every change to it,
        # so that a reader can tell which parts are as they were (observed/incremental.py):
        # objects (gpufleet's), namespaces, health (connected, synced), nodes (and pods);
        # statuses: a Site, GpuPool or Queue whose status alone changed (the leader rewrites
        # Queue statuses every few seconds; only their fairness state is read back).
        self.versions = {"objects": 0, "namespaces": 0, "health": 0, "nodes": 0, "statuses": 0}
        # (kind, key) the watch deleted while a catch-up listed (see `begin_catch_up`).
        self._deleted_while_listing: set[tuple[str, str]] | None = None

    # -- wake-ups --------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        self._loop, self._wake = loop, wake

    def _changed(self) -> None:
        self.generation += 1
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- gpufleet objects (from Kopf, on the event loop) ------------------------
    def put_object(self, kind: str, key: str, body: dict[str, Any] | None) -> None:
        table = self._tables[kind]
        with self._lock:
            if body is None:
                table.pop(key, None)
                if self._deleted_while_listing is not None:
                    self._deleted_while_listing.add((kind, key))
            else:
                old = table.get(key)
                # An echo of our own older write must not overwrite a newer one we assumed.
                if old is not None and _rv(old) > _rv(body) and _rv(body) > 0:
                    return
                table[key] = body
            status_only = body is not None and old is not None and _status_only(kind, old, body)
            self.versions["statuses" if status_only else "objects"] += 1
        self._changed()

    def begin_catch_up(self) -> None:
        """Before a catch-up's LIST: remember what the watch deletes meanwhile, which the
        list (taken earlier) may still hold."""
        with self._lock:
            self._deleted_while_listing = set()

    def end_catch_up(self) -> None:
        with self._lock:
            self._deleted_while_listing = None

    def catch_up(self, kind: str, items: dict[str, dict[str, Any]], listed_at: int) -> int:
        """Bring one kind up to a quorum LIST taken at resourceVersion `listed_at` (0:
        unknown, then nothing is taken as deleted).

        Objects newer in the list replace the cached ones, unless the watch deleted them
        after `begin_catch_up`; cached objects the list does not hold and that are not
        newer than it were deleted. A watch event that arrives later with an older version
        is ignored by `put_object`. Returns how many objects changed.
        """
        table = self._tables[kind]
        changed = 0
        with self._lock:
            gone = self._deleted_while_listing or set()
            for key, body in items.items():
                old = table.get(key)
                if (kind, key) in gone:
                    continue
                if old is None or _rv(old) < _rv(body):
                    table[key] = body
                    changed += 1
            for key in [k for k in table if k not in items]:
                if listed_at > 0 and _rv(table[key]) <= listed_at:
                    del table[key]
                    changed += 1
            if changed:
                self.versions["objects"] += 1
        if changed:
            self._changed()
        return changed

    def assume_workload(self, key: str, body: dict[str, Any]) -> None:
        """Record the result of our own successful write before the watch echoes it."""
        with self._lock:
            self.workloads[key] = body
            self.versions["objects"] += 1
        self._changed()

    # -- clusters (from watch threads) -------------------------------------------
    def cluster(self, name: str) -> ClusterState:
        """The live state, for callers that change it: counted as a change of every part."""
        with self._lock:
            for part in self.versions:
                self.versions[part] += 1
            return self.clusters.setdefault(name, ClusterState())

    def node_event(self, cluster: str, record: NodeRecord | None, name: str) -> None:
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            # A kubelet's heartbeat rewrites its Node every few seconds and changes nothing
            # the record holds: at 12,500 nodes, counted as changes, they kept every cycle
            # busy redoing the nodes.
            if state.nodes.get(name) == record:
                return
            if record is None:
                state.nodes.pop(name, None)
            else:
                state.nodes[name] = record
            self.versions["nodes"] += 1
        self._changed()

    def pod_event(self, cluster: str, record: PodRecord | None, key: str) -> None:
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            if state.pods.get(key) == record:  # a write to a field the record leaves out
                return
            if record is None:
                state.pods.pop(key, None)
            else:
                state.pods[key] = record
            self.versions["nodes"] += 1
        self._changed()

    def namespace_event(self, cluster: str, labels: dict[str, str] | None, name: str) -> None:
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            if labels is None:
                state.namespaces.pop(name, None)
            else:
                state.namespaces[name] = labels
            self.versions["namespaces"] += 1
        self._changed()

    def resync(self, cluster: str, what: str, keys: set[str]) -> None:
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            tables: dict[str, dict[str, Any]] = {
                "nodes": state.nodes,
                "pods": state.pods,
                "namespaces": state.namespaces,
            }
            table = tables[what]
            for gone in set(table) - keys:
                del table[gone]
            state.synced.add(what)
            for part in ("namespaces", "health", "nodes"):
                self.versions[part] += 1
        self._changed()

    def health_changed(self, cluster: str, connected: bool, reason: str, message: str) -> None:
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            state.connected, state.reason, state.message, state.since = (
                connected,
                reason,
                message,
                time.time(),
            )
            self.versions["health"] += 1
        self._changed()

    def lease_renewed(self, cluster: str, at: float) -> None:
        with self._lock:
            self.clusters.setdefault(cluster, ClusterState()).lease_renewed_at = at

    def cluster_identified(self, cluster: str, identity: str) -> None:
        with self._lock:
            self.clusters.setdefault(cluster, ClusterState()).identity = identity
            self.versions["health"] += 1  # which Site covers a cluster follows from it
        self._changed()

    def fence_read(self, cluster: str, record: FenceRecord | None, confirmed: bool) -> None:
        """The agent's record as read before a renewal; `confirmed` when it was made after
        the Lease's last renewal and found none of our pods left running."""
        with self._lock:
            state = self.clusters.setdefault(cluster, ClusterState())
            changed = state.fence_record != record
            state.fence_record = record
            if confirmed and (changed or state.fence_confirmed_at is None):
                state.fence_confirmed_at = time.time()
                changed = True
        if changed:
            self._changed()

    def restart_fence_clocks(self, at: float) -> None:
        """A replica that has just become leader counts every member's silence from `at`.

        As a standby it renewed no fence Lease, and the previous leader may have renewed one
        just before it stopped: re-placing a site's workloads on the standby's own (stale)
        renewal time could run them twice. Counting from the takeover only delays that.
        """
        with self._lock:
            for state in self.clusters.values():
                state.lease_renewed_at = max(state.lease_renewed_at, at)

    def note_refusal(self, cluster: str, node: str, resource: str | None, until: float) -> None:
        """A kubelet refused a pod: believe it over the node's record until `until`."""
        with self._lock:
            self.clusters.setdefault(cluster, ClusterState()).refused[node] = (resource, until)
            self.versions["nodes"] += 1  # what the node offers changes now, and at `until`
        self._changed()

    # -- reading -------------------------------------------------------------------
    def view(self) -> CacheView:
        with self._lock:
            clusters = {name: s.copy() for name, s in self.clusters.items()}
            return CacheView(
                sites=dict(self.sites),
                pools=dict(self.pools),
                queues=dict(self.queues),
                workloads=dict(self.workloads),
                clusters=clusters,
                taken_at=time.time(),
                versions=dict(self.versions),
            )


# Kinds whose status is written by the leader and read by translation only in part.
STATUS_KINDS = frozenset({"Site", "GpuPool", "Queue"})
# Metadata every write changes.
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields"})


def _status_only(kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether `new` differs from `old` in its status only (a status-subresource write)."""
    if kind not in STATUS_KINDS or old.keys() - {"status"} != new.keys() - {"status"}:
        return False
    for field_name, value in new.items():
        if field_name == "status":
            continue
        before = old[field_name]
        if field_name == "metadata" and isinstance(value, dict) and isinstance(before, dict):
            if {k: v for k, v in value.items() if k not in _VOLATILE_METADATA} != {
                k: v for k, v in before.items() if k not in _VOLATILE_METADATA
            }:
                return False
        elif value != before:
            return False
    return True


def _rv(body: dict[str, Any]) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0
