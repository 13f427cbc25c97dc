"""Fairness over time and the cost of preemption: the rules, their defaults, and the
arithmetic the caller uses to keep the state they read.

The core stays pure: decayed usage, the moment a queue became starved and the times a
workload was evicted are *state* the caller keeps (the operator in Queue and Workload
status, so a restart loses nothing; the simulator across its cycles) and passes in
through `Queue` and `Workload`. This module holds the plain functions both the fast
cycle and the reference call, so that both agree to the bit, and the production
defaults the API and the simulator use (the model's own defaults keep every rule off;
docs/scheduling.md, "Fairness over time", gives the choices and their sources).
"""

from __future__ import annotations

import math

INF = float("inf")

DAY = 86_400.0

USAGE_HALF_LIFE_SECONDS = 7 * DAY
"""Half-life of decayed usage: Slurm's PriorityDecayHalfLife default (7-0), and the
168h of Kueue's admission fair sharing examples."""

PRESENT_WEIGHT_SECONDS = 3_600.0
"""How many seconds of history the current allocation weighs when queues are ranked."""

WAIT_CREDIT_SECONDS = INF
"""Waiting this long counts as one fair share less when queues are ranked (age); off by
default. Age lets a queue over its share go ahead of one below it, which that queue then
reclaims back once its delay has run: the two rules undo each other. `MAX_WAIT_SECONDS`
bounds the wait instead (docs/scheduling.md, "Fairness over time")."""

MAX_WAIT_SECONDS = 3_600.0
"""A queue whose next workload has waited this long goes ahead of the fairness order
(oldest first): a bound on how long fairness alone keeps a workload waiting, after
Volcano's `sla-waiting-time`. One hour, because a fair order makes a queue that asks
more than its share absorb the whole backlog of a busy spell (docs/scheduling.md)."""

STARVED_RANK = -1.0e12
"""The rank of a queue whose next workload has waited `max_wait`: below any fairness
rank (those are >= -waited / wait_credit), minus the wait itself, so the oldest goes first."""

MIN_RUNTIME_SECONDS = 600.0
"""A workload runs this long before it may be evicted (the API's default)."""

MAX_EVICTIONS = 2
"""Evictions of one workload allowed per `EVICTION_WINDOW_SECONDS`."""

EVICTION_WINDOW_SECONDS = 7 * DAY

RECLAIM_DELAY_SECONDS = 900.0
"""How long a queue stays below its share by the margin before it reclaims."""

RECLAIM_MARGIN = 0.2
"""How far below its share (a fraction of its deserved share) a queue must be to reclaim."""


def decay_factor(elapsed: float, half_life: float) -> float:
    """What one unit of usage weighs `elapsed` seconds later."""
    if half_life <= 0 or half_life == INF:
        return 1.0 if half_life == INF else 0.0
    return math.exp(-math.log(2.0) * max(elapsed, 0.0) / half_life)


def accumulate(previous: float, rate: float, elapsed: float, half_life: float) -> float:
    """Decayed integral after `elapsed` seconds at a constant `rate` (accelerators):
    the old value decays; the new usage is integrated exactly under the same decay."""
    if elapsed <= 0:
        return previous
    if half_life == INF:
        return previous + rate * elapsed
    d = decay_factor(elapsed, half_life)
    return previous * d + rate * (1.0 - d) * half_life / math.log(2.0)


def queue_rank(
    alloc: float,
    share: float,
    usage: float,
    fair_usage: float,
    weight: float,
    waited: float = 0.0,
    wait_credit: float = INF,
    max_wait: float = INF,
) -> float:
    """The order key of a leaf queue in one class: lowest goes first.

    Without history (`weight` infinite) it is allocated ÷ fair share. With it, the
    decayed usage and the decayed fair share (accelerator-seconds) are compared, the
    present allocation and share counting as if held for `weight` more seconds: a queue
    that ran over its share recently yields first, one that was starved recovers.
    A queue with no fair share in the class goes last.

    Age, as in Slurm's multifactor priority: the queue's next workload has `waited`
    seconds (since it arrived or was last evicted, `waiting_since`), and every `wait_credit` seconds of waiting count as one fair share less, so
    that a queue over its share is slowed down, not starved.

    Wait bound: once the next workload has waited `max_wait` seconds, the queue goes
    ahead of every queue whose next workload has not (oldest first among those).
    """
    if share <= 0:
        return INF
    if waited >= max_wait:
        return STARVED_RANK - waited
    if weight == INF:
        rank = alloc / share
    else:
        rank = (usage + alloc * weight) / (fair_usage + share * weight)
    if wait_credit != INF:
        rank -= waited / wait_credit
    return rank


def waiting_since(created_at: float, eviction_times: tuple[float, ...]) -> float:
    """When a pending workload's present wait began: its arrival, or its last eviction.

    Its place in its queue, and what the wait bound and age count: an evicted workload
    rejoins its queue at its eviction (as Kueue's requeuing timestamp `Eviction`). Counted from the arrival, a workload the bound
    admitted and reclaim then evicted would be at its bound again at once, and the bound
    and reclaim would pass it back and forth until the eviction cap stops them."""
    return max(created_at, max(eviction_times)) if eviction_times else created_at


def waited_bound(
    created_at: float, eviction_times: tuple[float, ...], at: float, max_wait: float
) -> bool:
    """Whether at `at` a workload's present wait (`waiting_since`) has reached `max_wait`."""
    return at - waiting_since(created_at, eviction_times) >= max_wait


def started_by_wait_bound(
    created_at: float, eviction_times: tuple[float, ...], started_at: float, max_wait: float
) -> bool:
    """Whether a running workload started only once its wait had reached its queue's bound.

    Reclaim leaves such a workload alone: evicting it would restart the very wait the
    bound had just ended, and the workload would wait a second bound before it ran
    again (on openb replays, reclaim and the bound passed the same 1-GPU jobs back and
    forth, doubling the tail of the wait). Except for a reclaiming workload that has
    itself waited its own queue's bound: otherwise a queue that borrows with a backlog
    longer than its bound would hold all it runs against every reclaim. Priority
    preemption inside its own queue still applies."""
    return waited_bound(created_at, eviction_times, started_at, max_wait)


def history_ratio(usage: float, fair_usage: float) -> float:
    """Decayed usage over decayed fair share; 1.0 (even) when there is no history."""
    return usage / fair_usage if fair_usage > 0 else 1.0


def lost_work(accelerators: int, started_at: float, now: float, checkpoint: float | None) -> float:
    """Accelerator-seconds an eviction now throws away: the run so far, or the time since
    the last checkpoint when the workload declares its checkpoint interval."""
    ran = max(now - started_at, 0.0)
    if checkpoint is not None and checkpoint > 0:
        ran = math.fmod(ran, checkpoint)
    return accelerators * ran


def recent_evictions(times: tuple[float, ...], now: float, window: float) -> int:
    """Evictions within the last `window` seconds."""
    return sum(1 for t in times if now - t < window)


def evictable(
    times: tuple[float, ...], now: float, max_evictions: int | None, window: float
) -> bool:
    """Below the cap of evictions per window (None: no cap)."""
    return max_evictions is None or recent_evictions(times, now, window) < max_evictions


def below_share_in(
    alloc: list[float], deserved: list[float], fair: list[float], margin: float
) -> bool:
    """Below its share by the margin (what starts, and keeps running, the reclaim clock):
    held + margin x deserved < owed, owed being min(deserved, fair share), each summed
    over the classes a workload accepts; a class where the queue is owed nothing adds
    nothing to either side (its pending demand counts against its first class only, so
    elsewhere it is often owed nothing; charged there, the margin kept a queue holding
    nothing from ever reclaiming). For one class this is the rule class by class.
    Counted class by class for a workload that accepts several, a queue whose flexible
    work had landed on a second class looked starved in its first one and reclaimed
    there while holding more than its share overall."""
    held = 0.0
    owed = 0.0
    base = 0.0
    for a, d, f in zip(alloc, deserved, fair, strict=True):
        held += a
        o = min(d, f)
        owed += o
        if o > 0:
            base += d
    return held + margin * base < owed


def reclaim_ready(starved_since: float | None, now: float, delay: float) -> bool:
    """Hysteresis: a queue reclaims only after it has been starved for `delay` seconds."""
    if delay <= 0:
        return True
    return starved_since is not None and now - starved_since >= delay


__all__ = [
    "EVICTION_WINDOW_SECONDS",
    "MAX_EVICTIONS",
    "MAX_WAIT_SECONDS",
    "MIN_RUNTIME_SECONDS",
    "PRESENT_WEIGHT_SECONDS",
    "RECLAIM_DELAY_SECONDS",
    "RECLAIM_MARGIN",
    "STARVED_RANK",
    "USAGE_HALF_LIFE_SECONDS",
    "WAIT_CREDIT_SECONDS",
    "accumulate",
    "below_share_in",
    "decay_factor",
    "evictable",
    "history_ratio",
    "lost_work",
    "queue_rank",
    "recent_evictions",
    "reclaim_ready",
    "started_by_wait_bound",
    "waited_bound",
    "waiting_since",
]
