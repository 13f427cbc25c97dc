"""The operator, run against the dev fleet, serves /metrics whose numbers are the fleet's:
accelerators allocated per pool equal the sum over the pods placed on that pool's nodes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.dev.clusters import Cluster, RunningFleet
from gpufleet.dev.nodes import DEFAULT_FLEET
from gpufleet.fleetfile import LABEL_POOL, load_fleet

pytestmark = pytest.mark.cluster

MANAGED = "gpufleet.io/managed-by=gpufleet"
ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore")
PoolKey = tuple[str, str]  # (site, pool)


class RunningOperator:
    """The operator on its own event loop in a thread, as `gpufleet run` would run it."""

    def __init__(self, config: Any) -> None:
        from gpufleet.control.operator import Operator

        self.operator = Operator(config)
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-operator", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            try:
                await self.operator.start()
            except BaseException as exc:
                self.error = exc
                raise
            finally:
                self.started.set()
            await self.operator.stop.wait()
            await self.operator.shutdown()

        self.loop.run_until_complete(main())

    def __enter__(self) -> RunningOperator:
        self.thread.start()
        assert self.started.wait(120), "the operator did not start within 120 s"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.operator.stop.set)
        self.loop.call_soon_threadsafe(self.operator.wake.set)
        self.thread.join(30)

    def scrape(self) -> dict[str, list[Any]]:
        server = self.operator.server
        assert server is not None, "the operator serves no metrics"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
        return {f.name: f.samples for f in text_string_to_metric_families(body)}


def placed_per_pool(fleet: RunningFleet) -> dict[PoolKey, float]:
    """Accelerators of live gpufleet pods, summed by the pool label of their node."""
    out: dict[PoolKey, float] = defaultdict(float)
    for cluster in fleet.clusters.values():
        nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        pool_of = {n["metadata"]["name"]: n["metadata"]["labels"].get(LABEL_POOL) for n in nodes}
        pods = json.loads(cluster.kubectl("get", "pods", "-A", "-l", MANAGED, "-o", "json").stdout)[
            "items"
        ]
        for pod in pods:
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            pool = pool_of.get(pod["spec"].get("nodeName", ""))
            for container in pod["spec"]["containers"]:
                limits = (container.get("resources") or {}).get("limits") or {}
                for resource in ACCELERATOR_RESOURCES:
                    if resource in limits and pool:
                        out[(cluster.site, pool)] += float(limits[resource])
    return dict(out)


def exported_per_pool(samples: dict[str, list[Any]]) -> dict[PoolKey, float]:
    return {
        (s.labels["site"], s.labels["pool"]): s.value
        for s in samples.get("gpufleet_pool_allocated_accelerators", [])
    }


def fleet_objects(queue: str, namespace: str, workload: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "gpufleet.io/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": queue},
            "spec": {
                "namespaces": [namespace],
                "resources": [
                    {
                        "acceleratorClass": "nvidia-h100",
                        "deserved": 32,
                        "limit": 64,
                        "overQuotaWeight": 1,
                    }
                ],
            },
        },
        {
            "apiVersion": "gpufleet.io/v1alpha1",
            "kind": "Workload",
            "metadata": {"name": workload, "namespace": namespace},
            "spec": {
                "queue": queue,
                "replicas": 2,
                "minReplicas": 2,
                "acceleratorsPerReplica": 8,
                "acceleratorClasses": ["nvidia-h100"],
                "residency": {"jurisdictions": ["DE"]},
                "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
            },
        },
    ]


def local_config(operator_namespace: str, origin: str, hub: Cluster) -> Any:
    """An operator on the hub with metrics on a free port of 127.0.0.1, resyncing every 2 s."""
    from gpufleet.control.operator import OperatorConfig

    return OperatorConfig(
        namespace=operator_namespace,
        origin=origin,
        metrics_host="127.0.0.1",
        metrics_port=0,
        resync_seconds=2.0,
        kubeconfig=str(hub.kubeconfig),
    )


@pytest.fixture
def operator_namespace(dev_fleet: RunningFleet, hub: Cluster) -> Iterator[str]:
    from gpufleet.dev.register import register

    name = f"gpufleet-m-{uuid.uuid4().hex[:6]}"
    register(load_fleet(DEFAULT_FLEET), dev_fleet, name)
    try:
        yield name
    finally:
        hub.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_allocated_accelerators_per_pool_match_the_placed_pods(
    dev_fleet: RunningFleet, hub: Cluster, namespace: str, operator_namespace: str
) -> None:
    suffix = namespace.removeprefix("t-")
    queue, workload = f"metrics-{suffix}", "two-by-eight"
    objects = fleet_objects(queue, namespace, workload)
    hub.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        with RunningOperator(local_config(operator_namespace, f"metrics-{suffix}", hub)) as running:
            deadline = time.monotonic() + 180
            exported: dict[PoolKey, float] = {}
            placed: dict[PoolKey, float] = {}
            while time.monotonic() < deadline:
                samples = running.scrape()
                exported, placed = exported_per_pool(samples), placed_per_pool(dev_fleet)
                ours = {
                    s.labels["accelerator_class"]: s.value
                    for s in samples.get("gpufleet_queue_allocated_accelerators", [])
                    if s.labels["queue"] == queue
                }
                # Pools without pods must read 0, so compare over every exported pool.
                settled = {k: placed.get(k, 0.0) for k in exported} == exported
                if settled and sum(placed.values()) >= 16 and ours.get("nvidia-h100") == 16:
                    break
                time.sleep(2)
            else:
                pytest.fail(
                    f"/metrics never matched the placed pods within 180 s:\n"
                    f"exported={exported}\nplaced={placed}"
                )
            assert set(placed) <= set(exported), "a pool with pods is missing from /metrics"
    finally:
        hub.kubectl(
            "delete", "-f", "-", "--wait=false", input=yaml.safe_dump_all(objects), check=False
        )
