"""A gang finds itself: headless Service, hostnames, launcher environment (docs/gangs.md).

Containers do not run on hollow or KWOK nodes, so nothing resolves a name here; the
test reads the objects a resolver and a launcher would: the pods' hostname,
subdomain, environment and hostfile, the Service, and its EndpointSlices.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from e2e.operator_harness import Fleet, queue_obj, wait_for, workload_obj

CLASS = {"kwok": "nvidia-h100", "hollow": "nvidia-h200"}


@pytest.mark.tiers
def test_a_two_replica_gang_gets_its_service_hostnames_and_environment(
    fleet: Fleet, team: str, tier: str
) -> None:
    q = f"q-{team}"
    cls = CLASS[tier]
    fleet.apply(queue_obj(q, [team], [{"acceleratorClass": cls, "deserved": 16}]))
    try:
        fleet.apply(workload_obj(team, "pair", q, replicas=2, gpus=8, classes=(cls,)))
        w = fleet.wait_phase(team, "pair", {"Running"})
        placement = w["status"]["placement"]
        site, epoch = placement["site"], placement["epoch"]
        core = client.CoreV1Api(fleet.clients[site])
        service = f"pair-e{epoch}"
        svc = wait_for(
            f"Service {service} at {site}",
            lambda: _get(lambda: core.read_namespaced_service(service, team)),
        )
        assert svc.spec.cluster_ip == "None"
        assert svc.spec.publish_not_ready_addresses
        pods = sorted(fleet.workload_pods(team, "pair")[site], key=lambda p: p.metadata.name)
        assert {o.uid for o in svc.metadata.owner_references} == {p.metadata.uid for p in pods}
        master = f"pair-0.{service}"
        for i, pod in enumerate(pods):
            assert (pod.spec.hostname, pod.spec.subdomain) == (f"pair-{i}", service)
            env = {e.name: e.value for e in pod.spec.containers[0].env}
            assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == master
            assert (env["MASTER_PORT"], env["WORLD_SIZE"]) == ("29500", "2")
            assert env["RANK"] == env["NODE_RANK"] == env["PET_NODE_RANK"] == str(i)
            assert env["JAX_COORDINATOR_ADDRESS"] == f"{master}:1234"
            assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("2", str(i))
            assert env["GPUFLEET_HOSTFILE"] == "/etc/gpufleet/hostfile"
            assert pod.metadata.annotations["gpufleet.io/hostfile"] == (
                f"pair-0.{service} slots=8\npair-1.{service} slots=8\n"
            )

        discovery = client.DiscoveryV1Api(fleet.clients[site])

        def endpoints() -> dict[str, Any] | None:
            slices = discovery.list_namespaced_endpoint_slice(
                team, label_selector=f"kubernetes.io/service-name={service}"
            ).items
            found = {
                ep.target_ref.name: ep
                for s in slices
                for ep in s.endpoints or []
                if ep.target_ref is not None
            }
            return found if len(found) == 2 else None

        found = wait_for(f"the EndpointSlices of {service} to list both pods", endpoints)
        for i, pod in enumerate(pods):
            ep = found[pod.metadata.name]
            assert ep.hostname == f"pair-{i}"  # what the cluster's DNS serves for it
            assert ep.addresses == [pod.status.pod_ip]
            assert ep.node_name == pod.spec.node_name
        # Removed with the workload: the pods go, and the garbage collector takes the Service.
        fleet.hub.kubectl("delete", "workload", "-n", team, "pair")
        wait_for(
            f"Service {service} to go with its pods",
            lambda: _get(lambda: core.read_namespaced_service(service, team)) is None,
            timeout=90,
        )
    finally:
        fleet.hub.kubectl("delete", "queue", q, "--wait=false", check=False)


def _get(read: Any) -> Any:
    try:
        return read()
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
