"""What a pod asks of its node, counted as kube-scheduler and the kubelet count it.

Pure. kube-scheduler's NodeResourcesFit and the kubelet's admission both use
`k8s.io/component-helpers/resource.PodRequests`; this is that function for the
resources gpufleet schedules on (CPU, memory, accelerators):

- the regular containers' requests are summed;
- init containers run one after another, so the pod needs the largest of them,
  each together with the restartable ("sidecar", `restartPolicy: Always`) init
  containers started before it;
- sidecars keep running beside the regular containers, so they are added to the
  sum as well;
- the pod needs the larger of the two (per resource), plus `spec.overhead`;
- pod-level `spec.resources.requests` (PodLevelResources), when given, replace
  the containers' CPU and memory (extended resources are never pod-level).

A container's extended resources given as limits only are requests too: the API
server defaults requests to limits, and an object that has not been through it
(a Workload's template) is read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.api.quantity import QuantityError
from gpufleet.api.quantity import to_bytes as parse_memory_bytes
from gpufleet.api.quantity import to_millicores as parse_cpu_millis

ACCELERATOR_RESOURCES = ("nvidia.com/gpu", "aws.amazon.com/neuron", "amd.com/gpu", "google.com/tpu")


@dataclass(frozen=True, slots=True)
class Requests:
    cpu_millis: int = 0
    memory_bytes: int = 0
    accelerators: Mapping[str, int] = field(default_factory=dict)

    def plus(self, other: Requests) -> Requests:
        acc = dict(self.accelerators)
        for k, v in other.accelerators.items():
            acc[k] = acc.get(k, 0) + v
        return Requests(
            self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes, acc
        )

    def max(self, other: Requests) -> Requests:
        keys = set(self.accelerators) | set(other.accelerators)
        return Requests(
            max(self.cpu_millis, other.cpu_millis),
            max(self.memory_bytes, other.memory_bytes),
            {k: max(self.accelerators.get(k, 0), other.accelerators.get(k, 0)) for k in keys},
        )


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _cpu(value: Any) -> int:
    try:
        return parse_cpu_millis(value)
    except QuantityError:
        return 0


def _memory(value: Any) -> int:
    try:
        return parse_memory_bytes(value)
    except QuantityError:
        return 0


def accelerator_requests(
    resources: Mapping[str, Any] | None, names: Iterable[str] = ACCELERATOR_RESOURCES
) -> dict[str, str]:
    """The accelerator resources a container's `resources` asks for (requests, else limits)."""
    resources = resources or {}
    asked = resources.get("requests") or {}  # not `requests`: bandit takes it for the library
    limits = resources.get("limits") or {}
    out = {}
    for name in names:
        value = asked.get(name, limits.get(name))
        if value is not None:
            out[name] = str(value)
    return out


def container_requests(container: Mapping[str, Any]) -> Requests:
    resources = container.get("resources") or {}
    asked = resources.get("requests") or {}
    return Requests(
        _cpu(asked.get("cpu", "0")),
        _memory(asked.get("memory", "0")),
        {k: _int(v) for k, v in accelerator_requests(resources).items()},
    )


def pod_requests(spec: Mapping[str, Any]) -> Requests:
    """The pod's requests as kube-scheduler computes them (see the module's docstring)."""
    total = Requests()
    for c in spec.get("containers") or []:
        total = total.plus(container_requests(c))
    init_max = Requests()
    sidecars = Requests()
    for c in spec.get("initContainers") or []:
        own = container_requests(c)
        if c.get("restartPolicy") == "Always":
            total = total.plus(own)
            sidecars = sidecars.plus(own)
            during = sidecars
        else:
            during = own.plus(sidecars)
        init_max = init_max.max(during)
    total = total.max(init_max)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    if "cpu" in pod_level or "memory" in pod_level:
        total = Requests(
            _cpu(pod_level["cpu"]) if "cpu" in pod_level else total.cpu_millis,
            _memory(pod_level["memory"]) if "memory" in pod_level else total.memory_bytes,
            total.accelerators,
        )
    overhead = spec.get("overhead") or {}
    if overhead:
        total = total.plus(
            Requests(
                _cpu(overhead.get("cpu", "0")),
                _memory(overhead.get("memory", "0")),
                {k: _int(v) for k, v in overhead.items() if k in ACCELERATOR_RESOURCES},
            )
        )
    return total


def template_accelerator_field(
    pod_spec: Mapping[str, Any], names: Iterable[str] = ACCELERATOR_RESOURCES
) -> str | None:
    """The first field of a Workload's pod template that asks for an accelerator, or None.

    A Workload's accelerators come only from `spec.acceleratorsPerReplica`: gpufleet places
    on that number, and a template asking for more in another container would get it on a
    node where the core counted less.
    """
    wanted = tuple(names)
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(pod_spec.get(kind) or []):
            resources = c.get("resources") or {} if isinstance(c, Mapping) else {}
            for part in ("limits", "requests"):
                for name in wanted:
                    if name in (resources.get(part) or {}):
                        return f"spec.template.spec.{kind}[{i}].resources.{part}[{name!r}]"
    for part in ("requests", "limits"):
        for name in wanted:
            if name in ((pod_spec.get("resources") or {}).get(part) or {}):
                return f"spec.template.spec.resources.{part}[{name!r}]"
            if name in (pod_spec.get("overhead") or {}):
                return f"spec.template.spec.overhead[{name!r}]"
    return None


def replica_requests(
    pod_spec: Mapping[str, Any], cpu: int | str | None, memory: int | str | None
) -> Requests:
    """A Workload replica's whole pod as kube-scheduler counts it: the template, with the
    Workload's `cpu` and `memory` as its first container's requests (as dispatch sets them)."""
    containers = list(pod_spec.get("containers") or [{}])
    main = dict(containers[0])
    resources = dict(main.get("resources") or {})
    requests = dict(resources.get("requests") or {})
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    resources["requests"] = requests
    main["resources"] = resources
    return pod_requests({**pod_spec, "containers": [main, *containers[1:]]})
