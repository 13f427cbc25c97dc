"""`gpufleet status` and `gpufleet explain` on objects given as dicts, as the API returns
them (each checked against the API's models first, so the fixtures cannot drift from what
the operator writes). The same commands against a running operator: e2e/test_inspect.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from kubernetes.client.rest import ApiException
from rich.console import Console
from typer.testing import CliRunner

from cli.tables import rows
from gpufleet.api.v1alpha1 import GpuPool, Queue, Site, Workload
from gpufleet.cli import inspect

T = "2025-01-01T00:00:00Z"


def site(name: str, jurisdiction: str, state: str, reason: str, capacity: list[Any]) -> Any:
    return {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name},
        "spec": {
            "type": "OnPrem",
            "jurisdiction": jurisdiction,
            "powerBudgetKw": 120,
            "nodes": {"local": {"nodeSelector": {"matchLabels": {"gpufleet.io/site": name}}}},
        },
        "status": {
            "connection": {"state": state, "reason": reason},
            "capacity": capacity,
            "powerInUseKw": 12.5,
        },
    }


SITES = [
    site(
        "onprem-fra",
        "DE",
        "Connected",
        "Local",
        [{"acceleratorClass": "nvidia-h100", "capacity": 128, "allocated": 16}],
    ),
    site("factory-osl", "NO", "Disconnected", "Unreachable", []),
]
POOLS = [
    {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "GpuPool",
        "metadata": {"name": "fra-h100"},
        "spec": {
            "site": "onprem-fra",
            "acceleratorClass": "nvidia-h100",
            "resourceName": "nvidia.com/gpu",
            "nodeSelector": {"gpu": "h100"},
        },
        "status": {
            "nodesReady": 15,
            "nodesTotal": 16,
            "capacity": 128,
            "allocated": 16,
            "free": 112,
            "fragmentation": 0.25,
        },
    }
]
QUEUES = [
    {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": "research"},
        "spec": {"resources": [{"acceleratorClass": "nvidia-h100", "deserved": 64}]},
    },
    {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": "nlp"},
        "spec": {
            "parent": "research",
            "namespaces": ["team-nlp"],
            "resources": [{"acceleratorClass": "nvidia-h100", "deserved": 32, "limit": 96}],
        },
        "status": {
            "totals": {"deserved": 32, "allocated": 16, "fairShare": 40.5, "pending": 64},
            "admittedWorkloads": 1,
            "pendingWorkloads": 2,
        },
    },
]


def workload(name: str, status: dict[str, Any] | None, replicas: int = 2) -> Any:
    obj: dict[str, Any] = {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": "team-nlp"},
        "spec": {
            "queue": "nlp",
            "replicas": replicas,
            "acceleratorsPerReplica": 8,
            "acceleratorClasses": ["nvidia-h100", "nvidia-h200"],
            "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


RUNNING = workload(
    "train",
    {
        "phase": "Running",
        "placement": {
            "site": "onprem-fra",
            "pool": "fra-h100",
            "epoch": 3,
            "admittedAt": T,
            "replicas": [{"index": 0, "node": "fra-h100-0"}, {"index": 1, "node": "fra-h100-1"}],
        },
        "conditions": [
            {
                "type": "Admitted",
                "status": "True",
                "reason": "Placed",
                "message": "placed at onprem-fra",
                "lastTransitionTime": T,
            }
        ],
    },
)
WAITING = workload(
    "finetune",
    {
        "phase": "Pending",
        "queuePosition": 2,
        "verdicts": [
            {
                "site": "onprem-fra",
                "rule": "InsufficientAccelerators",
                "message": "pool fra-h100 holds 1 of 4 replicas",
                "nearestChange": "fits at onprem-fra with 3 fewer replicas",
            },
            {
                "site": "factory-osl",
                "rule": "ResidencyDenied",
                "message": "site factory-osl is in NO; the workload's residency allows only DE",
            },
            {"rule": "QueueStopped", "message": "queue nlp admits nothing"},
        ],
    },
    replicas=4,
)
NEW = workload("fresh", None, replicas=1)
WORKLOADS = [RUNNING, WAITING, NEW]

MODELS: list[tuple[type[Any], list[Any]]] = [
    (Site, SITES),
    (GpuPool, POOLS),
    (Queue, QUEUES),
    (Workload, WORKLOADS),
]


class FakeCustomObjects:
    """The two CustomObjectsApi calls the commands make, over fixed objects."""

    def __init__(self) -> None:
        self.lists = {"sites": SITES, "gpupools": POOLS, "queues": QUEUES, "workloads": WORKLOADS}

    def list_cluster_custom_object(self, group: str, version: str, plural: str) -> Any:
        assert (group, version) == ("gpufleet.io", "v1alpha1")
        return {"items": self.lists[plural]}

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        assert (group, version, plural) == ("gpufleet.io", "v1alpha1", "workloads")
        for w in WORKLOADS:
            if (w["metadata"]["namespace"], w["metadata"]["name"]) == (namespace, name):
                return w
        raise ApiException(status=404, reason="Not Found")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(inspect, "_custom", lambda kubeconfig: FakeCustomObjects())
    # Wide enough that no cell wraps; plain text (the runner's stdout is not a terminal).
    monkeypatch.setattr(inspect, "out", Console(width=400, color_system=None))
    monkeypatch.setattr(inspect, "console", Console(width=400, color_system=None, stderr=True))
    app = typer.Typer()
    inspect.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_the_fixtures_are_valid_api_objects() -> None:
    for model, objects in MODELS:
        for obj in objects:
            model.model_validate(obj)


def test_status_tables_show_every_object_with_its_status(app: typer.Typer) -> None:
    result = invoke(app, "status")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert rows(text, "sites") == [
        ["onprem-fra", "OnPrem", "DE", "Connected (Local)", "True", "12.5 (120)", "16/128 nvidia-h100"],
        ["factory-osl", "OnPrem", "NO", "Disconnected (Unreachable)", "True", "12.5 (120)", "-"],
    ]  # fmt: skip
    assert rows(text, "pools") == [
        ["fra-h100", "onprem-fra", "nvidia-h100", "15/16", "128", "16", "112", "0.25"]
    ]
    assert rows(text, "queues") == [
        ["research", "", "?", "?", "?", "?", "?", "?"],  # no status yet
        ["nlp", "research", "32", "40.5", "16", "64", "1", "2"],
    ]
    assert rows(text, "workloads") == [
        ["team-nlp/finetune", "nlp", "4×8 nvidia-h100/nvidia-h200", "Pending", "-",
         "onprem-fra: InsufficientAccelerators; factory-osl: ResidencyDenied; fleet: QueueStopped"],
        ["team-nlp/fresh", "nlp", "1×8 nvidia-h100/nvidia-h200", "Pending", "-", ""],
        ["team-nlp/train", "nlp", "2×8 nvidia-h100/nvidia-h200", "Running", "onprem-fra/fra-h100", ""],
    ]  # fmt: skip


def test_status_json_is_the_objects_as_listed(app: typer.Typer) -> None:
    result = invoke(app, "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "sites": SITES,
        "gpupools": POOLS,
        "queues": QUEUES,
        "workloads": WORKLOADS,
    }


def test_explain_a_running_workload_says_where_it_runs(app: typer.Typer) -> None:
    result = invoke(app, "explain", "team-nlp/train")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "team-nlp/train in queue nlp: Running"
    assert lines[1] == (
        "placed at site onprem-fra, pool fra-h100, epoch 3, 2 replica(s) on 2 node(s):"
        " fra-h100-0, fra-h100-1"
    )
    assert "per-site verdicts" not in result.stdout
    assert lines[-1] == "Admitted=True Placed: placed at onprem-fra"


def test_explain_a_waiting_workload_gives_each_sites_verdict(app: typer.Typer) -> None:
    result = invoke(app, "explain", "finetune", "--namespace", "team-nlp")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.splitlines()[0] == "team-nlp/finetune in queue nlp: Pending"
    assert "placed at" not in text
    assert "position in its queue: 2" in text
    assert rows(text, "per-site verdicts") == [
        ["onprem-fra", "InsufficientAccelerators", "pool fra-h100 holds 1 of 4 replicas",
         "fits at onprem-fra with 3 fewer replicas"],
        ["factory-osl", "ResidencyDenied",
         "site factory-osl is in NO; the workload's residency allows only DE", ""],
        ["(fleet)", "QueueStopped", "queue nlp admits nothing", ""],
    ]  # fmt: skip


def test_explain_json_carries_phase_placement_verdicts_and_position(app: typer.Typer) -> None:
    waiting = json.loads(invoke(app, "explain", "team-nlp/finetune", "--json").stdout)
    assert waiting == {
        "workload": "team-nlp/finetune",
        "phase": "Pending",
        "placement": None,
        "verdicts": WAITING["status"]["verdicts"],
        "queuePosition": 2,
    }
    running = json.loads(invoke(app, "explain", "team-nlp/train", "--json").stdout)
    assert running == {
        "workload": "team-nlp/train",
        "phase": "Running",
        "placement": RUNNING["status"]["placement"],
        "verdicts": [],
        "queuePosition": None,
    }
    fresh = json.loads(invoke(app, "explain", "team-nlp/fresh", "--json").stdout)
    assert fresh["phase"] == "Pending"
    assert fresh["verdicts"] == []


def test_explain_an_unknown_workload_fails_saying_how_to_list_them(app: typer.Typer) -> None:
    result = invoke(app, "explain", "team-nlp/nope")
    assert result.exit_code == 1
    assert "Workload team-nlp/nope: Not Found" in result.stderr
    assert "kubectl get workloads -A" in result.stderr
    assert result.stdout == ""
