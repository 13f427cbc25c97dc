"""Member connections follow the Sites and the watched kubeconfig Secrets, never a GET."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from gpufleet.api.v1alpha1 import Site
from gpufleet.sites import manager as manager_module
from gpufleet.sites.manager import ConnectionManager

NS = "gpufleet-system"


@dataclass
class FakeConnection:
    """Stands in for ClusterConnection: records what it was made from, opens nothing."""

    name: str
    api_client: Any
    sink: Any
    kwargs: dict[str, Any]
    started: bool = False
    stopped: bool = False

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeSink:
    health: list[tuple[str, bool, str]] = field(default_factory=list)

    def health_changed(self, cluster: str, connected: bool, reason: str, message: str) -> None:
        self.health.append((cluster, connected, reason))

    def node_event(self, *args: Any) -> None: ...
    def pod_event(self, *args: Any) -> None: ...
    def namespace_event(self, *args: Any) -> None: ...
    def resync(self, *args: Any) -> None: ...
    def lease_renewed(self, *args: Any) -> None: ...
    def cluster_identified(self, *args: Any) -> None: ...
    def fence_read(self, *args: Any) -> None: ...


class NoApi:
    """A hub client that records every use: the scheduling thread must make none."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        raise AssertionError(f"the hub API was used: {name}")


@pytest.fixture(autouse=True)
def fake_connections(monkeypatch: pytest.MonkeyPatch) -> list[FakeConnection]:
    made: list[FakeConnection] = []

    def connect(name: str, api_client: Any, sink: Any, **kwargs: Any) -> FakeConnection:
        conn = FakeConnection(name, api_client, sink, kwargs)
        made.append(conn)
        return conn

    monkeypatch.setattr(manager_module, "ClusterConnection", connect)
    return made


def kubeconfig(server: str) -> str:
    text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "m", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "m", "context": {"cluster": "m", "user": "u"}}],
            "current-context": "m",
        }
    )
    return base64.b64encode(text.encode()).decode()


def site(name: str, secret: str = "kc-ams", key: str = "kubeconfig") -> Site:
    return Site.model_validate(
        {
            "apiVersion": "gpufleet.io/v1alpha1",
            "kind": "Site",
            "metadata": {"name": name},
            "spec": {
                "type": "OnPrem",
                "jurisdiction": "NL",
                "regions": ["EU"],
                "nodes": {"member": {"kubeconfigSecretRef": {"name": secret, "key": key}}},
            },
        }
    )


def make() -> tuple[ConnectionManager, FakeSink, NoApi]:
    sink, hub = FakeSink(), NoApi()
    return ConnectionManager(hub, NS, sink), sink, hub


def live(made: list[FakeConnection]) -> list[str]:
    return [f"{c.name}@{c.server}" for c in made if c.started and not c.stopped]


def test_reconcile_reads_no_secret_and_connects_from_what_the_watch_delivered(
    fake_connections: list[FakeConnection],
) -> None:
    m, sink, hub = make()
    sites = {"ams": site("ams")}
    for _ in range(3):
        m.reconcile(sites)
    # Before the watch's first list nothing is known, so nothing is decided or reported.
    assert live(fake_connections) == []
    assert sink.health == []
    m.secrets_listed({"kc-ams": {"kubeconfig": kubeconfig("https://ams.example:6443")}})
    for _ in range(3):
        m.reconcile(sites)
    assert live(fake_connections) == ["ams@https://ams.example:6443"]
    assert hub.used == []


def test_a_rotated_kubeconfig_reconnects_and_an_unchanged_one_does_not(
    fake_connections: list[FakeConnection],
) -> None:
    m, _, _ = make()
    m.secrets_listed({"kc-ams": {"kubeconfig": kubeconfig("https://old.example:6443")}})
    m.reconcile({"ams": site("ams")})
    first = fake_connections[-1]
    # The watch redelivers the Secret unchanged (a label was edited): the connection stays.
    m.secret_event("kc-ams", {"kubeconfig": kubeconfig("https://old.example:6443")})
    m.reconcile({"ams": site("ams")})
    assert fake_connections == [first]
    assert not first.stopped

    m.secret_event("kc-ams", {"kubeconfig": kubeconfig("https://new.example:6443")})
    assert first.stopped
    assert live(fake_connections) == ["ams@https://new.example:6443"]


def test_a_deleted_secret_disconnects_the_member_and_its_return_reconnects_it(
    fake_connections: list[FakeConnection],
) -> None:
    m, sink, _ = make()
    m.secrets_listed({"kc-ams": {"kubeconfig": kubeconfig("https://ams.example:6443")}})
    m.reconcile({"ams": site("ams")})
    m.secret_event("kc-ams", None)
    assert live(fake_connections) == []
    assert sink.health == [("ams", False, "KubeconfigSecretMissing")]
    # Reported once, not on every cycle.
    m.reconcile({"ams": site("ams")})
    assert len(sink.health) == 1
    m.secret_event("kc-ams", {"kubeconfig": kubeconfig("https://ams.example:6443")})
    assert live(fake_connections) == ["ams@https://ams.example:6443"]


def test_a_missing_key_or_a_broken_kubeconfig_is_reported_once_until_the_secret_changes(
    fake_connections: list[FakeConnection],
) -> None:
    m, sink, _ = make()
    m.secrets_listed({"kc-ams": {"other": "eA=="}})
    m.reconcile({"ams": site("ams")})
    m.reconcile({"ams": site("ams")})
    assert sink.health == [("ams", False, "KubeconfigKeyMissing")]
    m.secret_event("kc-ams", {"kubeconfig": base64.b64encode(b"clusters: []").decode()})
    m.reconcile({"ams": site("ams")})
    assert sink.health[1:] == [("ams", False, "KubeconfigInvalid")]
    assert live(fake_connections) == []
    m.secret_event("kc-ams", {"kubeconfig": kubeconfig("https://ams.example:6443")})
    assert live(fake_connections) == ["ams@https://ams.example:6443"]


def test_secrets_that_cannot_be_listed_are_reported_until_the_first_list(
    fake_connections: list[FakeConnection],
) -> None:
    m, sink, _ = make()
    m.reconcile({"ams": site("ams")})
    m.secrets_unreadable("403 Forbidden")
    assert sink.health == [("ams", False, "KubeconfigSecretUnreadable")]
    m.secrets_listed({"kc-ams": {"kubeconfig": kubeconfig("https://ams.example:6443")}})
    assert live(fake_connections) == ["ams@https://ams.example:6443"]
    # A watch that drops later keeps what it listed: the member stays connected.
    m.secrets_unreadable("ProtocolError: connection broken")
    assert live(fake_connections) == ["ams@https://ams.example:6443"]


def test_a_relist_without_the_secret_disconnects_and_a_removed_site_is_let_go(
    fake_connections: list[FakeConnection],
) -> None:
    m, sink, _ = make()
    kc = {"kubeconfig": kubeconfig("https://ams.example:6443")}
    m.secrets_listed({"kc-ams": kc, "kc-par": kc})
    m.reconcile({"ams": site("ams"), "par": site("par", "kc-par")})
    assert len(live(fake_connections)) == 2
    m.secrets_listed({"kc-par": kc})  # ams's Secret was deleted while the watch was down
    assert live(fake_connections) == ["par@https://ams.example:6443"]
    m.reconcile({"ams": site("ams")})
    assert live(fake_connections) == []
    assert sink.health == [
        ("ams", False, "KubeconfigSecretMissing"),
        ("par", False, "SiteRemoved"),
    ]


def test_the_hub_connection_watches_the_operator_namespace_for_the_manager(
    fake_connections: list[FakeConnection],
) -> None:
    m, _, _ = make()
    m.start_hub()
    (hub,) = fake_connections
    assert hub.kwargs["secrets"] == (NS, m)
    m.stop()
    assert hub.stopped
