"""The fence agent measures the operator's silence with its own clock."""

from __future__ import annotations

from gpufleet.sites.fence import Agent


def agent(fence: float = 30) -> Agent:
    return Agent(
        api_client=None, namespace="gpufleet-system", origin="gpufleet", fence_seconds=fence
    )


def test_renewals_keep_the_fence_down_and_silence_raises_it() -> None:
    a = agent()
    wall = 1_000_000.0
    assert not a.observe("1", wall, wall, 0.0)
    assert not a.observe("2", wall + 5, wall + 5, 5.0)  # renewed
    assert not a.observe("2", wall + 5, wall + 30, 30.0)  # 25 s of silence
    assert a.observe("2", wall + 5, wall + 36, 36.0)  # 31 s of silence


def test_a_renewal_after_a_fence_lifts_it() -> None:
    a = agent()
    assert not a.observe("1", 0.0, 0.0, 0.0)
    assert a.observe("1", 0.0, 40.0, 40.0)
    a.fenced = True
    assert not a.observe("2", 41.0, 41.0, 41.0)
    assert not a.fenced


def test_an_agent_restarted_during_a_cut_counts_from_the_last_renewal_not_from_its_start() -> None:
    a = agent(fence=30)
    # The lease was last renewed 25 s ago (operator's clock); the agent just started.
    assert not a.observe("7", 975.0, 1000.0, 0.0)
    assert a.observe("7", 975.0, 1006.0, 6.0)  # 31 s since the renewal, only 6 s since the start


def test_a_lease_without_renew_time_starts_the_clock_at_first_sight() -> None:
    a = agent(fence=30)
    assert not a.observe("1", None, 1000.0, 0.0)
    assert not a.observe("1", None, 1029.0, 29.0)
    assert a.observe("1", None, 1031.0, 31.0)
