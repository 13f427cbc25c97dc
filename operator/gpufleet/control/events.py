"""Events posted the way client-go's event recorder posts them: folded, aggregated, limited.

Events are informative (the Workload's status says the same, durably), so under load they
are the first writes to give way. As `k8s.io/client-go/tools/record` does:

* **Dedupe.** An Event identical to one posted within `window` (same object, type, reason
  and message) is not created again: the existing one is patched with count + 1.
* **Aggregate.** After `aggregate_after` Events of the same object, type and reason with
  different messages within `window`, further ones read "(combined from similar events):
  <message>", which the dedupe then folds into one Event.
* **Spam filter.** A token bucket per object (25, refilled one per 5 minutes): an object
  that keeps failing cannot flood its namespace.
* **Operator budget.** One token bucket for all of the operator's Events (client-go's
  broadcaster drops once its queue of 1,000 is full; its client's QPS limit also covers
  Events): a burst of thousands of admissions spends its writes on statuses and pods.

`EventCorrelator` decides, without I/O, on a given clock; `EventRecorder` writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

COMBINED = "(combined from similar events): "


@dataclass
class TokenBucket:
    capacity: float
    per_second: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class Decision:
    action: Literal["create", "patch", "drop"]
    message: str  # possibly the combined form
    # For a patch: the Event to patch and its new count.
    name: str = ""
    count: int = 1


@dataclass
class _Seen:
    name: str  # "" until the create returned
    count: int
    last: float


class EventCorrelator:
    def __init__(
        self,
        *,
        window: float = 600.0,
        aggregate_after: int = 10,
        object_burst: int = 25,
        object_refill_seconds: float = 300.0,
        qps: float = 20.0,
        burst: int = 200,
        max_entries: int = 4096,
    ) -> None:
        self.window = window
        self.aggregate_after = aggregate_after
        self.object_burst = object_burst
        self.object_refill = 1.0 / object_refill_seconds
        self.max_entries = max_entries
        self.budget = TokenBucket(burst, qps, burst, 0.0)
        self._budget_started = False
        # LRU maps, bounded like client-go's (4,096 entries each).
        self._events: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], tuple[set[str], float]] = OrderedDict()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.dropped = 0

    def decide(self, obj: str, type_: str, reason: str, message: str, now: float) -> Decision:
        """`obj` identifies the involved object (kind, namespace, name, uid)."""
        if not self._budget_started:
            self.budget.at, self._budget_started = now, True
        similar = (obj, type_, reason)
        messages, first = self._similar.get(similar, (set(), now))
        if now - first > self.window:
            messages, first = set(), now
        messages.add(message)
        _put(self._similar, similar, (messages, first), self.max_entries)
        if len(messages) > self.aggregate_after:
            message = COMBINED + message
            key = (*similar, COMBINED)  # every combined one folds into the same Event
        else:
            key = (*similar, message)
        seen = self._events.get(key)
        if seen is not None and seen.name and now - seen.last <= self.window:
            # A patch of an existing Event is a write too, but one per repeat of one
            # Event, never a new object: it is not charged to the spam filter.
            seen.count += 1
            seen.last = now
            self._events.move_to_end(key)
            return Decision("patch", message, seen.name, seen.count)
        bucket = self._buckets.get(obj)
        if bucket is None:
            bucket = TokenBucket(self.object_burst, self.object_refill, self.object_burst, now)
        _put(self._buckets, obj, bucket, self.max_entries)
        if not bucket.take(now) or not self.budget.take(now):
            self.dropped += 1
            return Decision("drop", message)
        _put(self._events, key, _Seen("", 1, now), self.max_entries)
        return Decision("create", message)

    def created(
        self, obj: str, type_: str, reason: str, message: str, name: str, now: float
    ) -> None:
        """The Event decided as `create` exists now under `name`."""
        key = (obj, type_, reason, COMBINED if message.startswith(COMBINED) else message)
        seen = self._events.get(key)
        if seen is not None:
            seen.name, seen.last = name, now


def _put(table: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


class EventWriter(Protocol):
    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> str | None:
        """Creates the Event; returns its name (None when it could not be written)."""

    def patch_event(self, namespace: str, name: str, count: int) -> bool:
        """Sets the Event's count and lastTimestamp; False when it is gone."""


class EventRecorder:
    """Thread-safe: the loop's event threads share one."""

    def __init__(
        self,
        writer: EventWriter,
        correlator: EventCorrelator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.correlator = correlator or EventCorrelator()
        self.clock = clock
        self._lock = threading.Lock()
        self._reported_drops = 0
        self._last_report = 0.0

    def record(self, body: dict[str, Any], type_: str, reason: str, message: str) -> str:
        """Posts, folds or drops one Event; returns which ("create", "patch", "drop")."""
        meta = body.get("metadata") or {}
        obj = "/".join(
            str(x)
            for x in (body.get("kind"), meta.get("namespace"), meta.get("name"), meta.get("uid"))
        )
        with self._lock:
            now = self.clock()
            decision = self.correlator.decide(obj, type_, reason, message, now)
            self._report_drops(now)
        if decision.action == "patch":
            namespace = meta.get("namespace") or "default"
            if self.writer.patch_event(namespace, decision.name, decision.count):
                return "patch"
            decision = Decision("create", decision.message)  # it was deleted: post it anew
        if decision.action == "create":
            name = self.writer.event(body, type_, reason, decision.message)
            if name:
                with self._lock:
                    self.correlator.created(obj, type_, reason, decision.message, name, now)
        return decision.action

    def _report_drops(self, now: float) -> None:
        dropped = self.correlator.dropped - self._reported_drops
        if dropped and now - self._last_report >= 60:
            log.info("%d Events not posted (over the Event budget); statuses carry them", dropped)
            self._reported_drops, self._last_report = self.correlator.dropped, now
