"""Make a running dev fleet known to gpufleet: CRDs, member kubeconfig Secrets, Sites, GpuPools.

The member Secrets hold a least-privilege ServiceAccount token (``gpufleet.sites.memberaccess``),
not the member's admin kubeconfig.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import yaml

from gpufleet.api.crdgen import PACKAGE_CRD_DIR
from gpufleet.dev.clusters import Cluster, RunningFleet
from gpufleet.fleetfile import LABEL_NVLINK, LABEL_POOL, LABEL_RACK, LABEL_SITE, Fleet
from gpufleet.sites import memberaccess

# Typical board power per accelerator, for the power budget when a fleet file gives none.
WATTS = {"nvidia-h100": 700.0, "nvidia-h200": 700.0, "nvidia-b200": 1000.0, "aws-trainium2": 500.0}
COST = {"nvidia-h100": 2.5, "nvidia-h200": 3.2, "nvidia-b200": 5.0, "aws-trainium2": 1.6}


def secret_name(site: str) -> str:
    return f"site-{site}"


def fleet_objects(fleet: Fleet) -> list[dict[str, Any]]:
    """Sites and GpuPools describing the fleet's clusters."""
    objs: list[dict[str, Any]] = []
    for spec in fleet.clusters:
        site = spec.site
        nodes: dict[str, Any]
        if spec.hub:
            nodes = {"local": {"nodeSelector": {"matchLabels": {LABEL_SITE: site.name}}}}
        else:
            nodes = {
                "member": {
                    "kubeconfigSecretRef": {"name": secret_name(site.name), "key": "kubeconfig"}
                }
            }
        site_spec: dict[str, Any] = {
            "type": site.type,
            "jurisdiction": site.jurisdiction,
            "schedulable": True,
            "nodes": nodes,
        }
        if site.regions:
            site_spec["regions"] = list(site.regions)
        if site.certifications:
            site_spec["certifications"] = list(site.certifications)
        if site.perimeter:
            site_spec["perimeter"] = site.perimeter
        if site.power_budget_kw is not None:
            site_spec["powerBudgetKw"] = site.power_budget_kw
        objs.append(
            {
                "apiVersion": "gpufleet.io/v1alpha1",
                "kind": "Site",
                "metadata": {"name": site.name},
                "spec": site_spec,
            }
        )
        for group in spec.node_groups:
            keys = []
            if group.topology.nodes_per_rack:
                keys.append(LABEL_RACK)
            if group.topology.nodes_per_nvlink_domain:
                keys.append(LABEL_NVLINK)
            pool_spec: dict[str, Any] = {
                "site": site.name,
                "acceleratorClass": group.accelerator_class,
                "resourceName": group.resource_name,
                "nodeSelector": {LABEL_POOL: group.name},
                "wattsPerAccelerator": WATTS.get(group.accelerator_class, 700.0),
                "costPerAcceleratorHour": COST.get(group.accelerator_class, 2.0),
            }
            if keys:
                pool_spec["topologyKeys"] = keys
            objs.append(
                {
                    "apiVersion": "gpufleet.io/v1alpha1",
                    "kind": "GpuPool",
                    "metadata": {"name": group.name},
                    "spec": pool_spec,
                }
            )
    return objs


def flat_kubeconfig(cluster: Cluster) -> str:
    """The cluster's kubeconfig with certificates inline, as a Secret must hold it."""
    return cluster.kubectl("config", "view", "--flatten", "--minify").stdout


def member_kubeconfig(cluster: Cluster, namespace: str, timeout: float = 60) -> str:
    """A kubeconfig for the operator in ``cluster``: a ServiceAccount token with least privilege.

    The ServiceAccount, its roles (``gpufleet.sites.memberaccess``) and a token Secret are
    applied in the member; the API server fills the token in, which is polled for.
    """
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-",
        input=yaml.safe_dump_all(memberaccess.objects(namespace)),
    )  # fmt: skip
    secret = f"{memberaccess.SERVICE_ACCOUNT}-token"
    deadline = time.monotonic() + timeout
    token: str | None = None
    while not token:
        out = cluster.kubectl(
            "get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.token}", check=False
        )
        token = out.stdout.strip()
        if not token:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{cluster.name}: the API server did not fill in Secret {namespace}/{secret}"
                    f" within {timeout:.0f}s (is the token controller running?)"
                )
            time.sleep(0.5)  # polling the token controller, with the deadline above
    admin = yaml.safe_load(flat_kubeconfig(cluster))
    config = memberaccess.token_kubeconfig(
        admin, base64.b64decode(token).decode(), f"{memberaccess.SERVICE_ACCOUNT}@{cluster.name}"
    )
    return yaml.safe_dump(config)


def secret_objects(fleet: Fleet, running: RunningFleet, namespace: str) -> list[dict[str, Any]]:
    out = []
    for spec in fleet.clusters:
        if spec.hub:
            continue
        kubeconfig = member_kubeconfig(running.clusters[spec.name], namespace)
        data = base64.b64encode(kubeconfig.encode()).decode()
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": secret_name(spec.site.name),
                    "namespace": namespace,
                    "labels": {"gpufleet.io/site": spec.site.name},
                },
                "data": {"kubeconfig": data},
            }
        )
    return out


def install_crds(hub: Cluster) -> None:
    # The package's own copy (package data), so an installed wheel works without a source tree.
    hub.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PACKAGE_CRD_DIR))
    hub.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def register(fleet: Fleet, running: RunningFleet, namespace: str, *, sites: bool = True) -> None:
    hub = running.hub
    install_crds(hub)
    hub.kubectl("create", "namespace", namespace, check=False)
    docs = secret_objects(fleet, running, namespace)
    if sites:
        docs += fleet_objects(fleet)
    hub.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
