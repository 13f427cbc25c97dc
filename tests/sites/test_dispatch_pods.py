"""What a replica's pod asks for, and how the pods of a gang find each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gpufleet.sites.dispatch import plan_pods
from gpufleet.sites.gang import gang_hostname, gang_service_name, service_manifest

ROOT = Path(__file__).resolve().parents[2]


def _workload(replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "vit-pretrain", "namespace": "team-vision", "uid": "u1"},
        "spec": {
            "queue": "q",
            "replicas": replicas,
            "acceleratorsPerReplica": 8,
            "acceleratorClasses": ["nvidia-h100"],
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "x",
                            "env": [{"name": "MASTER_PORT", "value": "12355"}],
                        }
                    ]
                }
            },
            **spec,
        },
    }


def _plans(replicas: int, **spec: Any) -> list[Any]:
    return plan_pods(
        workload=_workload(replicas, **spec),
        site="fra",
        nodes=[f"n{i}" for i in range(replicas)],
        epoch=3,
        resource_name="nvidia.com/gpu",
        origin="gpufleet",
        grace_seconds=45,
    )


def test_pods_ask_for_the_workloads_cpu_memory_and_accelerators() -> None:
    [plan] = _plans(1, cpu="96", memory="1Ti")
    main = plan.manifest["spec"]["containers"][0]
    assert main["resources"]["requests"] == {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti"}
    assert plan.manifest["spec"]["terminationGracePeriodSeconds"] == 45
    # One replica is no gang: no Service, no hostname.
    assert "hostname" not in plan.manifest["spec"]


def test_a_gang_gets_hostnames_a_subdomain_env_and_a_hostfile() -> None:
    plans = _plans(2)
    service = gang_service_name("vit-pretrain", 3)
    assert service == "vit-pretrain-e3"
    for i, plan in enumerate(plans):
        spec = plan.manifest["spec"]
        assert (spec["hostname"], spec["subdomain"]) == (f"vit-pretrain-{i}", service)
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert env["MASTER_ADDR"] == "vit-pretrain-0.vit-pretrain-e3"
        assert env["MASTER_PORT"] == "12355"  # the template's own value is kept
        assert (env["WORLD_SIZE"], env["RANK"], env["NODE_RANK"]) == ("2", str(i), str(i))
        assert (env["PET_NNODES"], env["PET_NODE_RANK"]) == ("2", str(i))
        assert env["JAX_COORDINATOR_ADDRESS"] == "vit-pretrain-0.vit-pretrain-e3:1234"
        assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == ("2", str(i))
        hostfile = plan.manifest["metadata"]["annotations"]["gpufleet.io/hostfile"]
        assert hostfile == (
            "vit-pretrain-0.vit-pretrain-e3 slots=8\nvit-pretrain-1.vit-pretrain-e3 slots=8\n"
        )
        [volume] = spec["volumes"]
        assert volume["downwardAPI"]["items"][0]["path"] == "hostfile"
        assert {"name": "gpufleet-gang", "mountPath": "/etc/gpufleet", "readOnly": True} in spec[
            "containers"
        ][0]["volumeMounts"]


def test_names_stay_dns_labels_however_long_the_workload_name() -> None:
    name = "a" * 60 + ".b"
    for label in (gang_service_name(name, 12), gang_hostname(name, 4095)):
        assert len(label) <= 63
        assert label[0].isalpha()
        assert all(c.isalnum() or c == "-" for c in label)
    assert gang_service_name("7up", 1) == "g7up-e1"


def test_the_service_is_headless_selects_its_dispatch_and_is_owned_by_its_pods() -> None:
    svc = service_manifest(
        namespace="ns", workload="w", uid="u1", epoch=2, owners=[("w-e2-1", "b"), ("w-e2-0", "a")]
    )
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"gpufleet.io/workload-uid": "u1", "gpufleet.io/epoch": "2"}
    assert [(o["kind"], o["name"], o["uid"]) for o in svc["metadata"]["ownerReferences"]] == [
        ("Pod", "w-e2-0", "a"),
        ("Pod", "w-e2-1", "b"),
    ]


def test_the_vit_pretrain_example_runs_torchrun_as_written() -> None:
    """`torchrun --nnodes=16 --nproc-per-node=8 train.py` takes the rest from PET_* variables:
    its node rank and rank 0's address, which it could not know from the command line."""
    docs = list(yaml.safe_load_all((ROOT / "examples" / "workloads.yaml").read_text()))
    vit = next(d for d in docs if d["metadata"]["name"] == "vit-pretrain")
    vit["metadata"]["uid"] = "u"
    replicas = vit["spec"]["replicas"]
    plans = plan_pods(
        workload=vit,
        site="onprem-fra",
        nodes=[f"n{i}" for i in range(replicas)],
        epoch=1,
        resource_name="nvidia.com/gpu",
        origin="gpufleet",
    )
    trainer = plans[5].manifest["spec"]["containers"][0]
    command = trainer["command"]
    assert command[0] == "torchrun"
    assert f"--nnodes={replicas}" in command
    assert f"--nproc-per-node={vit['spec']['acceleratorsPerReplica']}" in command
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env["PET_NODE_RANK"] == "5"
    assert env["PET_MASTER_ADDR"] == "vit-pretrain-0.vit-pretrain-e1"
    assert env["PET_MASTER_PORT"] == "29500"
    assert env["NCCL_DEBUG"] == "WARN"  # the template's own stays
    # What the Workload asks per replica reaches the pod.
    assert trainer["resources"]["requests"] == {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti"}
