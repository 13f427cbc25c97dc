"""Leader election decisions on a fake clock: who may write, and when it must stop."""

from __future__ import annotations

import pytest

from gpufleet.control.leader import (
    Election,
    ElectionConfig,
    LeaseRecord,
    lease_body,
    record_from_lease,
)

WALL = 1_700_000_000.0


def config(identity: str) -> ElectionConfig:
    return ElectionConfig(identity=identity)  # 15 s lease, 10 s renew deadline, 2 s retry


def stored(record: LeaseRecord, rv: int) -> LeaseRecord:
    """The record as the API server returns it after a write."""
    return LeaseRecord(
        record.holder,
        record.lease_duration_seconds,
        record.acquire_time,
        record.renew_time,
        record.transitions,
        str(rv),
    )


def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    a = Election(config("a"))
    a.observe(None, now=0.0)
    want = a.attempt(now=0.0, wall=WALL)
    assert want is not None
    assert want.holder == "a"
    assert want.transitions == 0
    assert not a.may_write(0.0)  # nothing is written before the lease is stored
    a.succeeded(stored(want, 1), sent_at=0.0)
    assert a.may_write(0.1)


def test_a_standby_waits_a_full_lease_duration_by_its_own_clock() -> None:
    held = LeaseRecord("a", 15, WALL - 3600, WALL - 3600, 4, "7")  # renewTime long ago
    b = Election(config("b"))
    b.observe(held, now=100.0)
    # The holder's renewTime is an hour old by b's wall clock, but b only trusts what it saw.
    assert b.attempt(now=100.0, wall=WALL) is None
    b.observe(held, now=114.9)
    assert b.attempt(now=114.9, wall=WALL) is None
    b.observe(held, now=115.0)
    want = b.attempt(now=115.0, wall=WALL)
    assert want is not None
    assert (want.holder, want.transitions, want.resource_version) == ("b", 5, "7")


def test_every_renewal_seen_restarts_the_standbys_wait() -> None:
    b = Election(config("b"))
    for i in range(10):
        b.observe(LeaseRecord("a", 15, WALL, WALL + 2 * i, 0, str(i)), now=2.0 * i)
        assert b.attempt(now=2.0 * i, wall=WALL) is None
    assert b.attempt(now=18 + 14.9, wall=WALL) is None
    assert b.attempt(now=18 + 15, wall=WALL) is not None


def test_a_released_lease_is_taken_at_once() -> None:
    a, b = Election(config("a")), Election(config("b"))
    want = a.attempt(0.0, WALL)
    assert want is not None
    a.succeeded(stored(want, 1), 0.0)
    b.observe(stored(want, 1), 0.5)
    released = a.release(WALL + 1)
    assert released is not None
    assert released.holder == ""
    assert not a.may_write(1.0)
    b.observe(stored(released, 2), 1.0)
    taken = b.attempt(1.0, WALL + 1)
    assert taken is not None
    assert taken.holder == "b"


def test_the_leader_stops_writing_at_its_renew_deadline_before_any_standby_may_take_over() -> None:
    a, b = Election(config("a")), Election(config("b"))
    want = a.attempt(0.0, WALL)
    assert want is not None
    a.succeeded(stored(want, 1), sent_at=0.0)
    # b reads the stored record a little later; then a's API server stops answering.
    b.observe(stored(want, 1), 0.3)
    for t in (2.0, 4.0, 6.0, 8.0):
        a.failed(t)
        assert a.may_write(t)
    assert a.may_write(9.99)
    assert not a.may_write(10.0)  # by the clock alone, even before a failure is reported
    a.failed(10.0)
    assert not a.leading
    # b may take over only from 15.3 on: 5.3 s after a's last write could have left.
    assert b.attempt(15.2, WALL) is None
    assert b.attempt(15.3, WALL) is not None


def test_the_deadline_counts_from_when_the_renewal_was_sent_not_answered() -> None:
    a = Election(config("a"))
    want = a.attempt(0.0, WALL)
    assert want is not None
    a.succeeded(stored(want, 1), sent_at=0.0)
    renewal = a.attempt(2.0, WALL + 2)
    assert renewal is not None
    assert renewal.acquire_time == WALL
    a.succeeded(stored(renewal, 2), sent_at=2.0)  # answered 4 s later, at 6.0
    assert a.may_write(11.9)
    assert not a.may_write(12.0)


def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    a = Election(config("a"))
    want = a.attempt(0.0, WALL)
    assert want is not None
    a.succeeded(stored(want, 1), 0.0)
    a.observe(LeaseRecord("b", 15, WALL, WALL, 1, "2"), 3.0)
    assert not a.may_write(3.0)
    assert a.attempt(3.0, WALL) is None  # b's lease is live in a's eyes now


def test_a_renewal_keeps_transitions_and_a_takeover_counts_one() -> None:
    a = Election(config("a"))
    a.observe(LeaseRecord("old", 15, WALL, WALL, 3, "9"), 0.0)
    taken = a.attempt(15.0, WALL + 15)
    assert taken is not None
    assert taken.transitions == 4
    assert taken.acquire_time == WALL + 15
    a.succeeded(stored(taken, 10), 15.0)
    renewed = a.attempt(17.0, WALL + 17)
    assert renewed is not None
    assert renewed.transitions == 4
    assert renewed.resource_version == "10"


def test_status_names_the_leader_until_its_lease_lapses() -> None:
    b = Election(config("b"))
    b.observe(LeaseRecord("a", 15, WALL, WALL, 0, "1"), 0.0)
    assert b.status(1.0).leader == "a"
    assert not b.status(1.0).leading
    assert b.status(15.0).leader == ""


@pytest.mark.parametrize(
    ("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 9), (15, 10, 0), (5, 10, 2)]
)
def test_timings_that_could_let_two_replicas_write_are_refused(
    lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="must"):
        ElectionConfig(identity="a", lease_duration=lease, renew_deadline=renew, retry_period=retry)


def test_the_lease_object_round_trips() -> None:
    cfg = config("a")
    record = LeaseRecord("a", 15, WALL + 0.25, WALL + 2.5, 3, "42")
    body = lease_body(cfg, record)
    assert body["metadata"] == {
        "name": "gpufleet-leader",
        "namespace": "gpufleet-system",
        "resourceVersion": "42",
    }
    assert body["spec"]["renewTime"].endswith("Z")
    back = record_from_lease(body)
    assert back.holder == "a"
    assert back.transitions == 3
    assert back.resource_version == "42"
    assert back.renew_time == pytest.approx(WALL + 2.5)
    assert back.acquire_time == pytest.approx(WALL + 0.25)
