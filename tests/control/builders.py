"""Fluent builders of cache contents for the operator's pure control logic."""

from __future__ import annotations

import time
from typing import Any

from gpufleet.observed.cache import HUB, FleetCache
from gpufleet.observed.records import NodeRecord, PodRecord
from gpufleet.sites.dispatch import pod_name

API = "gpufleet.io/v1alpha1"


class World:
    """A hub-local site 'fra' (DE) with pool 'h100' of `nodes` 8-GPU nodes, and a member 'ams'."""

    def __init__(self, nodes: int = 4) -> None:
        self.cache = FleetCache()
        self._rv = 1
        self.site("fra", "DE", local=True)
        self.site("ams", "NL", local=False)
        self.pool("h100", "fra", "nvidia-h100")
        self.pool("h200", "ams", "nvidia-h200")
        for i in range(nodes):
            self.node(HUB, f"fra-{i}", "h100", "fra")
            self.node("ams", f"ams-{i}", "h200", "ams")
        for cluster in (HUB, "ams"):
            self.connect(cluster)

    def rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def site(self, name: str, jurisdiction: str, *, local: bool) -> None:
        nodes: dict[str, Any] = (
            {"local": {"nodeSelector": {"matchLabels": {"site": name}}}}
            if local
            else {"member": {"kubeconfigSecretRef": {"name": f"site-{name}", "key": "kubeconfig"}}}
        )
        self.cache.put_object(
            "Site",
            name,
            {
                "apiVersion": API,
                "kind": "Site",
                "metadata": {"name": name, "resourceVersion": self.rv(), "generation": 1},
                "spec": {
                    "type": "OnPrem",
                    "jurisdiction": jurisdiction,
                    "regions": ["EU"],
                    "nodes": nodes,
                },
            },
        )

    def pool(self, name: str, site: str, cls: str) -> None:
        self.cache.put_object(
            "GpuPool",
            name,
            {
                "apiVersion": API,
                "kind": "GpuPool",
                "metadata": {"name": name, "resourceVersion": self.rv(), "generation": 1},
                "spec": {
                    "site": site,
                    "acceleratorClass": cls,
                    "resourceName": "nvidia.com/gpu",
                    "nodeSelector": {"pool": name},
                },
            },
        )

    def queue(self, name: str, namespaces: list[str], deserved: int = 32, **spec: Any) -> World:
        self.cache.put_object(
            "Queue",
            name,
            {
                "apiVersion": API,
                "kind": "Queue",
                "metadata": {"name": name, "resourceVersion": self.rv(), "generation": 1},
                "spec": {
                    "namespaces": namespaces,
                    "resources": [
                        {"acceleratorClass": "nvidia-h100", "deserved": deserved},
                        {"acceleratorClass": "nvidia-h200", "deserved": deserved},
                    ],
                    **spec,
                },
            },
        )
        return self

    def node(self, cluster: str, name: str, pool: str, site: str) -> None:
        self.cache.node_event(
            cluster,
            NodeRecord(
                name,
                {"pool": pool, "site": site},
                {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti", "pods": "110"},
                True,
                False,
            ),
            name,
        )

    def declare_lost(self, site: str, at: float, by: str = "alice", method: str = "Manual") -> None:
        """What `gpufleet site declare-lost` writes on the Site."""
        body = self.cache.sites[site]
        body["spec"]["lossDeclaration"] = {
            "by": by,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "method": method,
        }
        body["metadata"]["resourceVersion"] = self.rv()
        body["metadata"]["generation"] += 1

    def connect(self, cluster: str, connected: bool = True, renewed: float | None = None) -> None:
        state = self.cache.cluster(cluster)  # counted as a change (incremental translation)
        state.connected = connected
        # As a probe reports it: a tried connection, answering or not.
        state.reason = "Connected" if connected else "APIServerUnreachable"
        state.synced = {"nodes", "pods", "namespaces"}
        if renewed is not None:
            state.lease_renewed_at = renewed

    def workload(
        self,
        ns: str,
        name: str,
        queue: str,
        *,
        gpus: int = 8,
        replicas: int = 1,
        status: dict[str, Any] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": API,
            "kind": "Workload",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": f"uid-{name}",
                "resourceVersion": self.rv(),
                "generation": 1,
                "creationTimestamp": "2026-11-28T10:00:00Z",
            },
            "spec": {
                "queue": queue,
                "replicas": replicas,
                "acceleratorsPerReplica": gpus,
                "acceleratorClasses": ["nvidia-h100", "nvidia-h200"],
                "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                **spec,
            },
        }
        if status is not None:
            body["status"] = status
        self.cache.put_object("Workload", f"{ns}/{name}", body)
        return body

    def placed(
        self,
        ns: str,
        name: str,
        queue: str,
        site: str,
        pool: str,
        nodes: list[str],
        *,
        epoch: int = 1,
        phase: str = "Running",
        started: float | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "phase": phase,
            "epoch": epoch,
            "placement": {
                "site": site,
                "pool": pool,
                "epoch": epoch,
                "replicas": [{"index": i, "node": n} for i, n in enumerate(nodes)],
                "admittedAt": "2026-11-28T10:00:00Z",
            },
        }
        if started is not None:
            status["startedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        return self.workload(ns, name, queue, replicas=len(nodes), status=status, **spec)

    def pod(
        self,
        cluster: str,
        ns: str,
        workload: str,
        index: int,
        node: str,
        *,
        epoch: int = 1,
        phase: str = "Running",
        uid: str | None = None,
        origin: str = "gpufleet",
        gpus: int = 8,
    ) -> PodRecord:
        labels = {
            "gpufleet.io/managed-by": "gpufleet",
            "gpufleet.io/workload": workload,
            "gpufleet.io/workload-namespace": ns,
            "gpufleet.io/workload-uid": uid or f"uid-{workload}",
            "gpufleet.io/epoch": str(epoch),
            "gpufleet.io/replica": str(index),
            "gpufleet.io/origin": origin,
        }
        name = pod_name(workload, epoch, index)
        record = PodRecord(
            ns,
            name,
            f"pod-{name}",
            node,
            phase,
            labels,
            False,
            accelerators={"nvidia.com/gpu": gpus},
        )
        self.cache.pod_event(cluster, record, record.key)
        return record

    def foreign_pod(self, cluster: str, ns: str, name: str, node: str, gpus: int) -> None:
        record = PodRecord(
            ns,
            name,
            f"pod-{name}",
            node,
            "Running",
            {},
            False,
            accelerators={"nvidia.com/gpu": gpus},
        )
        self.cache.pod_event(cluster, record, record.key)
