"""The hub's connection watches the operator namespace's Secrets and reports them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes.client
import pytest

from gpufleet.sites.connection import ClusterConnection

NS = "gpufleet-system"


@dataclass
class SecretLog:
    """A SecretSink that records what it is told."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def secrets_listed(self, secrets: dict[str, dict[str, str]]) -> None:
        self.calls.append(("listed", secrets))

    def secret_event(self, name: str, data: dict[str, str] | None) -> None:
        self.calls.append(("event", (name, data)))

    def secrets_unreadable(self, reason: str) -> None:
        self.calls.append(("unreadable", reason))


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS}, "data": data}


class Stream:
    """A watch response: its lines, then the connection is stopped (the test is over)."""

    def __init__(self, conn: ClusterConnection, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.conn = conn
        self.lines = [json.dumps({"type": t, "object": o}).encode() for t, o in events]
        self.shut = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.lines
        self.conn.stop()

    def shutdown(self) -> None:
        self.shut = True

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@dataclass
class Listing:
    data: bytes


def fake_core(conn_box: list[ClusterConnection], requests: list[dict[str, Any]]) -> type:
    class FakeCoreV1Api:
        def __init__(self, api_client: Any) -> None:
            pass

        def list_namespaced_secret(self, namespace: str, **kwargs: Any) -> Any:
            requests.append({"namespace": namespace, **kwargs})
            if kwargs.get("watch"):
                return Stream(
                    conn_box[0],
                    [
                        ("MODIFIED", secret("kc-ams", kubeconfig="bmV3")),
                        ("BOOKMARK", {"metadata": {"resourceVersion": "12"}}),
                        ("DELETED", secret("kc-par", kubeconfig="cGFy")),
                    ],
                )
            items = [secret("kc-ams", kubeconfig="b2xk"), secret("kc-par", kubeconfig="cGFy")]
            body = {"metadata": {"resourceVersion": "10"}, "items": items}
            return Listing(json.dumps(body).encode())

    return FakeCoreV1Api


def test_secrets_are_listed_then_followed_and_helm_records_are_not_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = SecretLog()
    conn = ClusterConnection("(hub)", object(), sink=None, secrets=(NS, log))  # type: ignore[arg-type]
    requests: list[dict[str, Any]] = []
    monkeypatch.setattr(kubernetes.client, "CoreV1Api", fake_core([conn], requests))
    conn._watch_secrets()  # runs until the fake stream stops the connection
    assert log.calls == [
        ("listed", {"kc-ams": {"kubeconfig": "b2xk"}, "kc-par": {"kubeconfig": "cGFy"}}),
        ("event", ("kc-ams", {"kubeconfig": "bmV3"})),
        ("event", ("kc-par", None)),
    ]
    assert [r["namespace"] for r in requests] == [NS, NS]
    assert {r["field_selector"] for r in requests} == {"type!=helm.sh/release.v1"}
    assert requests[1]["resource_version"] == "10"


def test_a_list_that_fails_is_reported_to_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    log = SecretLog()
    conn = ClusterConnection("(hub)", object(), sink=None, secrets=(NS, log))  # type: ignore[arg-type]

    class Forbidden:
        def __init__(self, api_client: Any) -> None:
            pass

        def list_namespaced_secret(self, namespace: str, **kwargs: Any) -> Any:
            conn.stop()  # one attempt is enough
            raise kubernetes.client.rest.ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(kubernetes.client, "CoreV1Api", Forbidden)
    conn._watch_secrets()
    assert log.calls == [("unreadable", "403 Forbidden")]


def test_stopping_a_connection_ends_its_open_watches() -> None:
    conn = ClusterConnection("ams", object(), sink=None)  # type: ignore[arg-type]
    stream = Stream(conn, [])
    conn._streams["pods"] = stream
    conn.stop()
    assert stream.shut
