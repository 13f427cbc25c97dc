"""The fence agent measures the operator's silence with its own clock."""

from __future__ import annotations

import time
from typing import Any

import pytest

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


def test_its_own_lost_api_server_is_not_the_operators_silence() -> None:
    """The issue's case: the member's API server paused 90 s; the agent must not fence the
    moment it answers again, before the operator could renew."""
    a = agent(fence=30)
    assert not a.observe("1", 0.0, 0.0, 0.0)
    a.blind()  # reads fail from t=1 to t=91
    assert not a.observe("1", 0.0, 91.6, 91.6)  # same version, 91 s later: not silence
    assert not a.observe("1", 0.0, 120.0, 120.0)  # 28.4 s seen since it could read again
    assert a.observe("1", 0.0, 122.0, 122.0)  # 30.4 s seen: now it is the operator's


def test_a_renewal_seen_after_blindness_counts_as_one() -> None:
    a = agent(fence=30)
    assert not a.observe("1", 0.0, 0.0, 0.0)
    a.blind()
    assert not a.observe("5", 50.0, 60.0, 60.0)
    assert not a.observe("5", 50.0, 89.0, 89.0)
    assert a.observe("5", 50.0, 91.0, 91.0)


class _Api:
    """Just enough of the client for `Agent.step`: a Lease, pods that go when deleted, and
    the record the agent writes."""

    def __init__(self, lease_version: str, pods: int, stuck: int = 0) -> None:
        from types import SimpleNamespace

        self.lease = SimpleNamespace(
            spec=SimpleNamespace(renew_time=None),
            metadata=SimpleNamespace(resource_version=lease_version),
        )
        self.pods = {
            f"p{i}": SimpleNamespace(
                metadata=SimpleNamespace(name=f"p{i}", namespace="ns", deletion_timestamp=None),
                status=SimpleNamespace(phase="Running"),
            )
            for i in range(pods)
        }
        self.stuck = {f"p{i}" for i in range(stuck)}  # deletion never completes
        self.record: dict[str, str] | None = None
        self.down = False


def _patched(monkeypatch: Any, api: _Api) -> None:
    from types import SimpleNamespace

    from kubernetes import client

    class Coord:
        def __init__(self, _: Any) -> None: ...

        def read_namespaced_lease(self, *a: Any, **k: Any) -> Any:
            if api.down:
                raise ConnectionRefusedError("API server down")
            return api.lease

    class Core:
        def __init__(self, _: Any) -> None: ...

        def list_pod_for_all_namespaces(self, **k: Any) -> Any:
            return SimpleNamespace(items=list(api.pods.values()))

        def delete_namespaced_pod(self, name: str, ns: str, **k: Any) -> None:
            if name in api.stuck:
                api.pods[name].metadata.deletion_timestamp = "now"
            else:
                del api.pods[name]

        def replace_namespaced_config_map(self, name: str, ns: str, body: Any, **k: Any) -> None:
            if api.record is None:
                from kubernetes.client.rest import ApiException

                raise ApiException(status=404)
            api.record = body["data"]

        def create_namespaced_config_map(self, ns: str, body: Any, **k: Any) -> None:
            api.record = body["data"]

    monkeypatch.setattr(client, "CoordinationV1Api", Coord)
    monkeypatch.setattr(client, "CoreV1Api", Core)


def test_a_fence_is_recorded_complete_only_when_no_pod_of_ours_is_left(monkeypatch: Any) -> None:
    api = _Api("41", pods=2, stuck=1)
    _patched(monkeypatch, api)
    a = agent(fence=0)  # silent from the first look
    assert a.step() == 2
    assert api.record is not None
    assert (api.record["leaseVersion"], api.record["complete"]) == ("41", "false")
    api.stuck.clear()
    del api.pods["p0"]  # the kubelet finished stopping it
    a.step()
    assert api.record["complete"] == "true"


def test_an_agent_that_cannot_read_its_api_server_deletes_nothing(monkeypatch: Any) -> None:
    api = _Api("41", pods=2)
    _patched(monkeypatch, api)
    a = agent(fence=30)
    a._last_version, a._last_change = "41", time.monotonic() - 31  # 29 s seen, then 2 s blind
    api.down = True
    with pytest.raises(ConnectionRefusedError):
        a.step()
    api.down = False
    assert a.step() == 0  # answers again: the count restarts, nothing is deleted
    assert len(api.pods) == 2
    assert api.record is None


def test_a_read_the_api_server_held_for_long_is_blindness_too(monkeypatch: Any) -> None:
    """The paused API server of the cluster test: the client's retries hide the timeouts
    inside one call that succeeds after the pause, 17 s later, with the same version."""
    api = _Api("41", pods=2)
    _patched(monkeypatch, api)
    a = agent(fence=10)
    clock = [1000.0]
    a.clock = lambda: clock[0]
    a._last_version, a._last_change = "41", clock[0] - 1  # seen a second ago
    from kubernetes import client

    read = client.CoordinationV1Api.read_namespaced_lease

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock[0] += 17  # held by the paused API server (the agent's clock says so)
        return read(self, *args, **kwargs)

    monkeypatch.setattr(client.CoordinationV1Api, "read_namespaced_lease", slow)
    assert a.step() == 0
    assert len(api.pods) == 2
