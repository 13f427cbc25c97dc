"""Leader election through a `coordination.k8s.io/v1` Lease: the decisions, without I/O.

The semantics are client-go's (`k8s.io/client-go/tools/leaderelection`), so the Lease reads
the same in `kubectl get lease` as any controller's:

* A candidate takes the Lease when it is free (no holder: released), or when its record
  has not changed for `lease_duration` *as timed by the candidate's own clock* from the
  moment it first saw that record. Nobody compares the holder's `renewTime` with their own
  clock, so clock skew between replicas does not matter; only clock *rates* do.
* The leader renews every `retry_period`. Every write replaces the Lease with the
  resourceVersion it read (compare-and-swap), so two candidates never both win.
* A leader that has not renewed for `renew_deadline` gives up: it stops writing before any
  standby can consider the Lease expired (`renew_deadline` < `lease_duration`), and it
  measures from when it *sent* its last successful renewal, the safe end of that request.
* A leader that stops cleanly releases the Lease (no holder, duration 1 s), so a standby
  takes over at its next retry instead of waiting out the lease.

`Election` is pure: it is given the records read and the clocks, and says what to write.
The I/O around it is `gpufleet.control.elector`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

LEASE_NAME = "gpufleet-leader"


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str = "gpufleet-system"
    name: str = LEASE_NAME
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("a leader election needs an identity")
        # client-go's own checks: the leader must give up before anyone may take over, and
        # have time for several renewals (with candidates' jitter of 1.2) before it gives up.
        if not self.lease_duration > self.renew_deadline:
            raise ValueError(
                f"lease duration ({self.lease_duration}s) must exceed the renew deadline "
                f"({self.renew_deadline}s)"
            )
        if not self.renew_deadline > 1.2 * self.retry_period:
            raise ValueError(
                f"renew deadline ({self.renew_deadline}s) must exceed 1.2 × the retry period "
                f"({self.retry_period}s)"
            )
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec as the election reads and writes it. Times are Unix seconds."""

    holder: str = ""
    lease_duration_seconds: int = 15
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0
    # Of the object read; None for a record not yet written.
    resource_version: str | None = None

    def same_record(self, other: LeaseRecord | None) -> bool:
        """Whether `other` is this record: a change of any of it is a sign of life."""
        return other is not None and replace(other, resource_version=None) == replace(
            self, resource_version=None
        )


@dataclass(frozen=True)
class Status:
    leading: bool
    # Who holds the Lease as last read ("" when nobody or not yet read).
    leader: str


class Election:
    """One candidate's view of the Lease. `now` is a monotonic clock, `wall` Unix time."""

    def __init__(self, config: ElectionConfig) -> None:
        self.config = config
        self.observed: LeaseRecord | None = None
        # When this candidate first saw `observed`, by its own monotonic clock.
        self.observed_at = 0.0
        self.leading = False
        # While leading: the end of the time in which writes are safe (monotonic).
        self.valid_until = 0.0

    # -- what was read --------------------------------------------------------------
    def observe(self, record: LeaseRecord | None, now: float) -> None:
        """Account for one read of the Lease (None: there is no Lease)."""
        if record is None:
            if self.observed is not None:
                self.observed, self.observed_at = None, now
        elif not record.same_record(self.observed):
            self.observed, self.observed_at = record, now
        elif self.observed is not None:
            # Same record, newer resourceVersion (e.g. a label change): keep the timing.
            self.observed = replace(self.observed, resource_version=record.resource_version)
        if self.leading and record is not None and record.holder != self.config.identity:
            # Someone else holds it: our lease lapsed in their eyes. Stop at once.
            self.leading = False

    # -- what to write ------------------------------------------------------------------
    def attempt(self, now: float, wall: float) -> LeaseRecord | None:
        """The record to write to acquire or renew the Lease; None while another holds it."""
        old = self.observed
        me = self.config.identity
        if old is not None and old.holder and old.holder != me and self._live(old, now):
            return None
        duration = max(1, round(self.config.lease_duration))
        if old is None:
            return LeaseRecord(me, duration, wall, wall, 0)
        if old.holder == me:
            # A renewal keeps the acquisition time and the transition count.
            acquired = old.acquire_time if old.acquire_time is not None else wall
            return LeaseRecord(me, duration, acquired, wall, old.transitions, old.resource_version)
        return LeaseRecord(me, duration, wall, wall, old.transitions + 1, old.resource_version)

    def _live(self, record: LeaseRecord, now: float) -> bool:
        return now < self.observed_at + record.lease_duration_seconds

    def succeeded(self, written: LeaseRecord, sent_at: float) -> None:
        """`written` (as the API server returned it) was stored; the request left at `sent_at`."""
        self.observed, self.observed_at = written, sent_at
        self.leading = True
        self.valid_until = sent_at + self.config.renew_deadline

    def failed(self, now: float) -> None:
        """A read or write did not succeed: leadership ends once the deadline has passed."""
        self.tick(now)

    def tick(self, now: float) -> None:
        if self.leading and now >= self.valid_until:
            self.leading = False

    def may_write(self, now: float) -> bool:
        """Whether writes are safe now: leading, and not past the renew deadline."""
        return self.leading and now < self.valid_until

    def release(self, wall: float) -> LeaseRecord | None:
        """The record that hands the Lease back on a clean stop; None if not leading."""
        if not self.leading or self.observed is None:
            return None
        self.leading = False
        return LeaseRecord(
            "", 1, wall, wall, self.observed.transitions, self.observed.resource_version
        )

    def status(self, now: float) -> Status:
        holder = self.observed.holder if self.observed is not None else ""
        if self.observed is not None and holder and not self._live(self.observed, now):
            holder = ""  # expired: nobody leads until someone takes it
        return Status(self.may_write(now), holder)


# -- the Lease object <-> records -------------------------------------------------------


def _micro_time(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def record_from_lease(lease: dict[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def lease_body(config: ElectionConfig, record: LeaseRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": config.name, "namespace": config.namespace}
    if record.resource_version is not None:
        metadata["resourceVersion"] = record.resource_version
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.transitions,
    }
    for key, value in (("acquireTime", record.acquire_time), ("renewTime", record.renew_time)):
        if value is not None:
            spec[key] = _micro_time(value)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }
