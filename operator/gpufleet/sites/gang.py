"""Gangs that can find each other: names, environment and a headless Service per dispatch.

The contract (docs/gangs.md) for a workload placed with more than one replica,
at its site, per dispatch (epoch):

- a headless Service `gang_service_name(workload, epoch)` selecting that
  dispatch's pods (not-ready addresses published, so that rank 0 resolves before
  any readiness probe passes);
- every pod: `hostname` `gang_hostname(workload, replica)`, `subdomain` the
  Service, so replica i is `<hostname>.<service>` from any pod of the namespace;
- every container: the environment of `gang_env` (PyTorch, torchrun, JAX, MPI),
  except a variable the template already sets;
- a hostfile at `HOSTFILE_PATH` (one line per replica, `<host> slots=<accelerators>`),
  from the pod's own annotation through a downwardAPI volume: nothing to create
  before the pods, nothing left behind after them.

The Service is owned (ownerReferences) by the pods of its dispatch, so the
cluster's garbage collector removes it when the last of them is gone: with the
workload, on a new dispatch, or when the site's pods are fenced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from gpufleet.observed.records import (
    LABEL_EPOCH,
    LABEL_MANAGED,
    LABEL_WORKLOAD,
    LABEL_WORKLOAD_NS,
    LABEL_WORKLOAD_UID,
    MANAGED_BY,
)

TORCH_PORT = 29500  # torch.distributed's usual MASTER_PORT
JAX_PORT = 1234  # the coordinator port of JAX's multi-process examples
HOSTFILE_DIR = "/etc/gpufleet"
HOSTFILE_PATH = f"{HOSTFILE_DIR}/hostfile"
HOSTFILE_ANNOTATION = "gpufleet.io/hostfile"
VOLUME = "gpufleet-gang"


def _label(text: str, tail: str) -> str:
    """A DNS-1035 label (what Service names and hostnames must be): `<text><tail>`, at most
    63 characters, a digest keeping it unique when `text` had to be shortened."""
    base = re.sub(r"[^a-z0-9-]", "-", text.lower())
    if not base or not base[0].isalpha():
        base = f"g{base}"
    out = f"{base}{tail}"
    if len(out) <= 63:
        return out
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{base[: 63 - len(tail) - 9].rstrip('-')}-{digest}{tail}"


def gang_service_name(workload: str, epoch: int) -> str:
    return _label(workload, f"-e{epoch}")


def gang_hostname(workload: str, replica: int) -> str:
    return _label(workload, f"-{replica}")


def gang_env(
    workload: str, epoch: int, replica: int, replicas: int, accelerators: int
) -> list[dict[str, str]]:
    service = gang_service_name(workload, epoch)
    master = f"{gang_hostname(workload, 0)}.{service}"
    pairs = {
        "GPUFLEET_SERVICE": service,
        "GPUFLEET_HOSTFILE": HOSTFILE_PATH,
        # PyTorch (torch.distributed's env:// init; Kubeflow's PyTorchJob sets the same):
        # one process per pod at this level; torchrun sets its workers' own.
        "MASTER_ADDR": master,
        "MASTER_PORT": str(TORCH_PORT),
        "WORLD_SIZE": str(replicas),
        "RANK": str(replica),
        "NODE_RANK": str(replica),
        # torchrun reads any option from PET_<OPTION> when the command line leaves it out.
        "PET_NNODES": str(replicas),
        "PET_NODE_RANK": str(replica),
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": str(TORCH_PORT),
        "PET_NPROC_PER_NODE": str(accelerators),
        # JAX: jax.distributed.initialize(coordinator_address, num_processes, process_id).
        "JAX_COORDINATOR_ADDRESS": f"{master}:{JAX_PORT}",
        "JAX_NUM_PROCESSES": str(replicas),
        "JAX_PROCESS_ID": str(replica),
    }
    return [{"name": k, "value": v} for k, v in pairs.items()]


def hostfile(workload: str, epoch: int, replicas: int, accelerators: int) -> str:
    service = gang_service_name(workload, epoch)
    return "".join(
        f"{gang_hostname(workload, i)}.{service} slots={accelerators}\n" for i in range(replicas)
    )


def add_gang_fields(
    pod: dict[str, Any],
    *,
    workload: str,
    epoch: int,
    replica: int,
    replicas: int,
    accelerators: int,
) -> None:
    """Give one replica's pod manifest its gang identity (in place); a no-op for one replica."""
    if replicas < 2:
        return
    spec = pod["spec"]
    spec["hostname"] = gang_hostname(workload, replica)
    spec["subdomain"] = gang_service_name(workload, epoch)
    annotations = pod["metadata"].setdefault("annotations", {})
    annotations[HOSTFILE_ANNOTATION] = hostfile(workload, epoch, replicas, accelerators)
    env = gang_env(workload, epoch, replica, replicas, accelerators)
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            have = {e.get("name") for e in container.get("env") or []}
            container.setdefault("env", []).extend(e for e in env if e["name"] not in have)
            mounts = container.setdefault("volumeMounts", [])
            if not any(m.get("mountPath") == HOSTFILE_DIR for m in mounts):
                mounts.append({"name": VOLUME, "mountPath": HOSTFILE_DIR, "readOnly": True})
    spec.setdefault("volumes", []).append(
        {
            "name": VOLUME,
            "downwardAPI": {
                "items": [
                    {
                        "path": "hostfile",
                        "fieldRef": {"fieldPath": f"metadata.annotations['{HOSTFILE_ANNOTATION}']"},
                    }
                ]
            },
        }
    )


def service_manifest(
    *, namespace: str, workload: str, uid: str, epoch: int, owners: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """The dispatch's headless Service, owned by its pods ((name, uid) pairs)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": gang_service_name(workload, epoch),
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED: MANAGED_BY,
                LABEL_WORKLOAD: workload,
                LABEL_WORKLOAD_NS: namespace,
                LABEL_WORKLOAD_UID: uid,
                LABEL_EPOCH: str(epoch),
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod_uid}
                for name, pod_uid in sorted(owners)
            ],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_WORKLOAD_UID: uid, LABEL_EPOCH: str(epoch)},
            "ports": [
                {"name": "torch", "port": TORCH_PORT, "protocol": "TCP"},
                {"name": "jax", "port": JAX_PORT, "protocol": "TCP"},
            ],
        },
    }


def ensure_service(api_client: Any, manifest: dict[str, Any]) -> str:
    """Create the Service, or give the existing one these owners (a pod recreated at the same
    epoch has a new uid). Returns "created", "updated" or "unchanged"."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    meta = manifest["metadata"]
    try:
        core.create_namespaced_service(meta["namespace"], manifest, _request_timeout=30)
        return "created"
    except ApiException as exc:
        if exc.status != 409:
            raise
    current = core.read_namespaced_service(meta["name"], meta["namespace"], _request_timeout=30)
    have = {(o.name, o.uid) for o in current.metadata.owner_references or []}
    want = {(o["name"], o["uid"]) for o in meta["ownerReferences"]}
    if want <= have:
        return "unchanged"
    owners = [
        {"apiVersion": "v1", "kind": "Pod", "name": n, "uid": u} for n, u in sorted(have | want)
    ]
    core.patch_namespaced_service(
        meta["name"], meta["namespace"], {"metadata": {"ownerReferences": owners}}
    )
    return "updated"
