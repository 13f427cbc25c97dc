"""Creating and removing a workload's pods on the cluster of its site.

Pod names are deterministic (workload, epoch, replica), so creating twice is
harmless: the second create gets 409 and is treated as done. Every pod carries
origin labels, which is how a restarted operator finds what it already did.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gpufleet.api.podsecurity import LABEL_PREFIX, enforced_level, looser_than
from gpufleet.observed.records import (
    LABEL_EPOCH,
    LABEL_MANAGED,
    LABEL_ORIGIN,
    LABEL_REPLICA,
    LABEL_WORKLOAD,
    LABEL_WORKLOAD_NS,
    LABEL_WORKLOAD_UID,
    MANAGED_BY,
)
from gpufleet.sites.gang import add_gang_fields

DEFAULT_IMAGE = "registry.k8s.io/pause:3.10"


@dataclass(frozen=True)
class PodPlan:
    """Everything needed to create one replica's pod."""

    namespace: str
    name: str
    manifest: dict[str, Any]
    # Labels of the namespace if gpufleet has to create it: its Pod Security level
    # (set by control/podguard.py from the queue's level).
    namespace_labels: dict[str, str] = field(default_factory=dict)


def pod_name(workload: str, epoch: int, index: int) -> str:
    base = f"{workload}-e{epoch}-{index}"
    if len(base) <= 63:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    tail = f"-{digest}-e{epoch}-{index}"
    return workload[: 63 - len(tail)].rstrip("-") + tail


def plan_pods(
    *,
    workload: dict[str, Any],
    site: str,
    nodes: list[str],
    epoch: int,
    resource_name: str,
    origin: str,
    grace_seconds: int | None = None,
) -> list[PodPlan]:
    meta = workload["metadata"]
    spec = workload.get("spec", {})
    ns, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    pspec = template.get("spec") or {}
    containers = pspec.get("containers") or [{"name": "main", "image": DEFAULT_IMAGE}]
    per_replica = int(spec.get("acceleratorsPerReplica", 1))
    # The Workload's CPU and memory per replica (spec.cpu, spec.memory), which the core
    # placed on, go to the first container; the rest of the pod asks what its template says
    # and the core counts the whole pod (observed/podrequests.py).
    cpu = spec.get("cpu")
    memory = spec.get("memory")
    plans = []
    for index, node in enumerate(nodes):
        pod_spec = copy.deepcopy(pspec)
        pod_containers = copy.deepcopy(containers)
        main = pod_containers[0]
        resources = main.setdefault("resources", {})
        requests = resources.setdefault("requests", {})
        limits = resources.setdefault("limits", {})
        # The accelerators decided by gpufleet are authoritative over the template's.
        requests[resource_name] = str(per_replica)
        limits[resource_name] = str(per_replica)
        if cpu is not None:
            requests["cpu"] = str(cpu)
        if memory is not None:
            requests["memory"] = str(memory)
        env = main.setdefault("env", [])
        env.extend(
            [
                {"name": "GPUFLEET_REPLICA_INDEX", "value": str(index)},
                {"name": "GPUFLEET_REPLICAS", "value": str(len(nodes))},
                {"name": "GPUFLEET_SITE", "value": site},
                {"name": "GPUFLEET_WORKLOAD", "value": f"{ns}/{name}"},
            ]
        )
        pod_spec["containers"] = pod_containers
        # gpufleet has chosen the node: bind directly, the site's scheduler is not consulted.
        pod_spec["nodeName"] = node
        pod_spec.setdefault("restartPolicy", "Never")
        if grace_seconds is not None:
            # Any delete of this pod that names no grace period (the stray sweep) then gives it
            # the workload's preemption grace period too (control/handoff.py).
            pod_spec.setdefault("terminationGracePeriodSeconds", grace_seconds)
        labels = {
            **(tmeta.get("labels") or {}),
            LABEL_MANAGED: MANAGED_BY,
            LABEL_WORKLOAD: name,
            LABEL_WORKLOAD_NS: ns,
            LABEL_WORKLOAD_UID: uid,
            LABEL_EPOCH: str(epoch),
            LABEL_REPLICA: str(index),
            LABEL_ORIGIN: origin,
        }
        pname = pod_name(name, epoch, index)
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pname,
                "namespace": ns,
                "labels": labels,
                "annotations": {**(tmeta.get("annotations") or {}), "gpufleet.io/site": site},
            },
            "spec": pod_spec,
        }
        add_gang_fields(
            manifest,
            workload=name,
            epoch=epoch,
            replica=index,
            replicas=len(nodes),
            accelerators=per_replica,
        )
        plans.append(PodPlan(namespace=ns, name=pname, manifest=manifest))
    return plans


def _drain(response: Any) -> None:
    """Read an undecoded response to its end so its connection goes back to the pool."""
    response.data  # noqa: B018 - reading the body is the point
    response.release_conn()


def ensure_namespace(api_client: Any, namespace: str, labels: dict[str, str] | None = None) -> None:
    """Create the namespace with ``labels``; one that exists is left as it is (never relabelled)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    try:
        core.create_namespace(
            {
                "metadata": {
                    "name": namespace,
                    "labels": {**(labels or {}), LABEL_MANAGED: MANAGED_BY},
                }
            }
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        # Someone created it between the cache's look and now: dispatch there only if it
        # enforces at least the level gpufleet would have given it.
        want = (labels or {}).get(f"{LABEL_PREFIX}enforce")
        if want is not None:
            have = enforced_level(core.read_namespace(namespace).metadata.labels)
            if looser_than(have, enforced_level(labels)):
                raise NamespaceTooLooseError(
                    f"namespace {namespace} exists and enforces Pod Security {have}, looser than"
                    f" {want}; not dispatching there"
                ) from None


class NamespaceTooLooseError(RuntimeError):
    """A namespace appeared, unlabelled or looser than the queue's level, just before dispatch."""


def create_pods(api_client: Any, plans: list[PodPlan]) -> int:
    """Create every planned pod; an existing pod of the same name counts as created.

    Responses are not decoded into client models: that decoding costs more CPU than the
    request itself, and the watch brings the pod back anyway.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    created = 0
    for plan in plans:
        try:
            _drain(
                core.create_namespaced_pod(
                    plan.namespace, plan.manifest, _request_timeout=30, _preload_content=False
                )
            )
            created += 1
        except ApiException as exc:
            if exc.status == 404 and "namespaces" in (exc.body or ""):
                ensure_namespace(api_client, plan.namespace, plan.namespace_labels)
                _drain(
                    core.create_namespaced_pod(
                        plan.namespace, plan.manifest, _request_timeout=30, _preload_content=False
                    )
                )
                created += 1
            elif exc.status != 409:
                raise
    return created


def delete_pods(api_client: Any, keys: list[str], grace_seconds: int | None = None) -> int:
    """Delete pods by namespace/name; already gone counts as deleted.

    Without `grace_seconds`, each pod gets its own terminationGracePeriodSeconds (which
    `plan_pods` sets to its workload's preemption grace period): a later delete of a pod
    already terminating must not cut its grace period short.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    deleted = 0
    for key in keys:
        ns, name = key.split("/", 1)
        try:
            _drain(
                core.delete_namespaced_pod(
                    name,
                    ns,
                    grace_period_seconds=grace_seconds,
                    _request_timeout=30,
                    _preload_content=False,
                )
            )
            deleted += 1
        except ApiException as exc:
            if exc.status != 404:
                raise
    return deleted
