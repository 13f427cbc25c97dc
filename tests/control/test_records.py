"""Watch events are read from plain JSON into the few fields scheduling needs."""

from __future__ import annotations

from gpufleet.observed.records import NodeRecord, PodRecord


def test_pod_requests_are_summed_and_extended_resources_default_to_limits() -> None:
    pod = PodRecord.from_dict(
        {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u",
                "labels": {"gpufleet.io/epoch": "3"},
                "deletionTimestamp": "2026-11-28T10:00:00Z",
            },
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {
                        "name": "a",
                        "resources": {
                            "requests": {"cpu": "1500m", "memory": "1Gi"},
                            "limits": {"nvidia.com/gpu": "4"},
                        },
                    },
                    {"name": "b", "resources": {"requests": {"cpu": "2", "nvidia.com/gpu": "2"}}},
                ],
            },
            "status": {"phase": "Running"},
        }
    )
    assert (pod.cpu_millis, pod.memory_bytes) == (3500, 2**30)
    assert pod.accelerators == {"nvidia.com/gpu": 6}
    assert pod.node == "n1"
    assert pod.deleting
    assert pod.epoch == 3
    assert not pod.managed


def test_pod_without_status_is_pending() -> None:
    pod = PodRecord.from_dict(
        {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}
    )
    assert pod.phase == "Pending"
    assert pod.node is None


def test_node_readiness_cordon_and_capacity() -> None:
    node = NodeRecord.from_dict(
        {
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"unschedulable": True},
            "status": {
                "allocatable": {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    assert node.ready
    assert node.unschedulable
    assert node.accelerators("nvidia.com/gpu") == 8
    assert node.accelerators("aws.amazon.com/neuron") == 0
    assert (node.cpu_millis, node.memory_bytes, node.pods) == (96000, 2**40, 110)
