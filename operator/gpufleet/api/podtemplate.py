"""What a Workload's pod template may contain, checked before admission. Pure.

Three kinds of rules, each naming the field that broke it (docs/security.md has
the table):

* **Pod Security** of the queue's level (``gpufleet.api.podsecurity``).
* **What the API server would refuse** when the pod is built: names and label
  values derived from the Workload (a name over 63 bytes cannot be a label
  value), container, volume and port names, duplicates, ephemeral containers.
  A pod the member refuses would hold its GPUs and quota forever while every
  cycle logs a 422, so these are refused before admission.
* **gpufleet's own rules**: fields that would steer the pod around the
  placement (``nodeName``, ``nodeSelector``, ``affinity``, tolerations, the
  scheduler, priority), gpufleet's own labels and annotations, accelerators
  and device claims outside ``spec.acceleratorsPerReplica``, service accounts
  outside the queue's list and service account tokens the queue does not allow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gpufleet.api import podsecurity
from gpufleet.api.podsecurity import Level

# Resource names that are accelerators, whoever advertises them; pools add their own.
ACCELERATOR_RESOURCES = frozenset(
    {"nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron", "google.com/tpu", "intel.com/gpu"}
)
# Every pod gpufleet creates carries labels and annotations under this prefix; a template
# that sets them could pass for another workload's pod or another operator's.
RESERVED_PREFIX = "gpufleet.io"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024

# Steering fields: the placement is gpufleet's decision, recorded on the Workload; a pod
# field that changes where or whether it runs would make that record a lie.
STEERING_FIELDS: dict[str, str] = {
    "nodeName": "gpufleet binds every replica to the node it chose",
    "nodeSelector": "the node is chosen by gpufleet from the queue's sites and pools",
    "affinity": "the node is chosen by gpufleet; topology goes in spec.topology",
    "tolerations": "gpufleet's placement decides the node; tolerations would let a pod stay on"
    " nodes tainted against it",
    "topologySpreadConstraints": "topology goes in spec.topology",
    "schedulerName": "gpufleet is the scheduler of its pods",
    "schedulingGates": "gpufleet binds its pods; a gate would hold a placed pod forever",
    "priorityClassName": "priority goes in spec.priority; a member's priority classes are its"
    " admin's (system-node-critical would make the pod unevictable)",
    "priority": "priority goes in spec.priority",
    "preemptionPolicy": "preemption is decided by gpufleet",
    "overhead": "set by the member's RuntimeClass admission, never by a template",
    "resourceClaims": "devices are requested through spec.acceleratorsPerReplica",
    "ephemeralContainers": "the API server refuses ephemeral containers on create",
}


@dataclass(frozen=True)
class TemplatePolicy:
    """A queue's rules for templates: the effective level and its service-account rules."""

    level: Level = "baseline"
    service_accounts: frozenset[str] = frozenset()
    automount_token: bool = False
    accelerator_resources: frozenset[str] = field(default=ACCELERATOR_RESOURCES)


@dataclass(frozen=True)
class Finding:
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.rule})"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_workload(
    name: str, template: dict[str, Any] | None, policy: TemplatePolicy
) -> list[Finding]:
    """Every reason the Workload ``name`` with ``template`` may not be admitted; empty if none."""
    out: list[Finding] = []
    add = out.append
    template = _dict(template)
    meta = _dict(template.get("metadata"))
    spec = _dict(template.get("spec"))
    pfx = "spec.template.spec"

    # Names derived from the Workload: its name is the value of gpufleet.io/workload.
    if len(name.encode()) > 63 or not _LABEL_VALUE.match(name):
        add(
            Finding(
                "metadata.name",
                "LabelValue",
                f"{len(name.encode())} bytes: a Workload name becomes the value of the pod label"
                " gpufleet.io/workload, which holds at most 63",
            )
        )
    size = len(json.dumps(template, separators=(",", ":")).encode())
    if size > MAX_TEMPLATE_BYTES:
        add(
            Finding(
                "spec.template",
                "TooLarge",
                f"{size} bytes; at most {MAX_TEMPLATE_BYTES} (every replica's pod carries it)",
            )
        )

    for kind in ("labels", "annotations"):
        for key in sorted(_dict(meta.get(kind))):
            prefix = key.split("/", 1)[0] if "/" in key else ""
            if prefix == RESERVED_PREFIX or prefix.endswith("." + RESERVED_PREFIX):
                add(
                    Finding(
                        f"spec.template.metadata.{kind}[{key!r}]",
                        "ReservedKey",
                        f"{RESERVED_PREFIX}/ {kind} are set by gpufleet only",
                    )
                )
    annotations = _dict(meta.get("annotations"))
    ann_bytes = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if ann_bytes > MAX_ANNOTATION_BYTES:
        add(
            Finding(
                "spec.template.metadata.annotations",
                "TooLarge",
                f"{ann_bytes} bytes; the API server allows {MAX_ANNOTATION_BYTES}",
            )
        )

    for key, why in STEERING_FIELDS.items():
        if key in spec and spec[key] not in (None, [], {}, ""):
            add(Finding(f"{pfx}.{key}", "SteeringField", f"may not be set: {why}"))

    _service_account(spec, pfx, policy, out)
    _containers(spec, pfx, policy, out)
    _volumes(spec, pfx, policy, out)

    for v in podsecurity.check(
        spec,
        policy.level,
        annotations={str(k): str(v) for k, v in annotations.items()},
        prefix=pfx,
        annotations_prefix="spec.template.metadata.annotations",
    ):
        add(Finding(v.path, f"PodSecurity:{policy.level}:{v.control}", v.message))
    return out


def _service_account(
    spec: dict[str, Any], pfx: str, policy: TemplatePolicy, out: list[Finding]
) -> None:
    for key in ("serviceAccountName", "serviceAccount"):
        sa = spec.get(key)
        if sa in (None, "", "default"):
            continue
        if not isinstance(sa, str) or len(sa) > 253 or not _DNS_SUBDOMAIN.match(sa):
            out.append(Finding(f"{pfx}.{key}", "DNSSubdomain", "must be a DNS-1123 subdomain"))
        elif sa not in policy.service_accounts:
            allowed = ", ".join(sorted(policy.service_accounts)) or "none"
            out.append(
                Finding(
                    f"{pfx}.{key}",
                    "ServiceAccountNotAllowed",
                    f"{sa!r} is not in the queue's spec.serviceAccounts ({allowed})",
                )
            )
    if spec.get("automountServiceAccountToken") is True and not policy.automount_token:
        out.append(
            Finding(
                f"{pfx}.automountServiceAccountToken",
                "ServiceAccountToken",
                "the queue's spec.automountServiceAccountToken is false",
            )
        )


def _containers(spec: dict[str, Any], pfx: str, policy: TemplatePolicy, out: list[Finding]) -> None:
    seen: dict[str, str] = {}
    for kind in ("initContainers", "containers"):
        raw = spec.get(kind)
        if raw is not None and not isinstance(raw, list):
            out.append(Finding(f"{pfx}.{kind}", "Type", "must be a list"))
            continue
        for i, c in enumerate(_list(raw)):
            path = f"{pfx}.{kind}[{i}]"
            if not isinstance(c, dict):
                out.append(Finding(path, "Type", "must be an object"))
                continue
            cname = c.get("name")
            if not isinstance(cname, str) or len(cname) > 63 or not _DNS_LABEL.match(cname):
                out.append(
                    Finding(
                        f"{path}.name",
                        "DNSLabel",
                        f"{cname!r} is not a DNS-1123 label (lower case alphanumerics and '-',"
                        " at most 63)",
                    )
                )
            elif cname in seen:
                out.append(Finding(f"{path}.name", "Duplicate", f"{cname!r} is also {seen[cname]}"))
            else:
                seen[cname] = path
            proc_mount = _dict(c.get("securityContext")).get("procMount")
            if proc_mount not in (None, "Default") and spec.get("hostUsers") is not False:
                out.append(
                    Finding(
                        f"{path}.securityContext.procMount",
                        "Invalid",
                        f"{proc_mount!r} needs spec.hostUsers: false (the API server refuses it)",
                    )
                )
            image = c.get("image")
            if not isinstance(image, str) or not image.strip() or image != image.strip():
                out.append(
                    Finding(f"{path}.image", "Required", "must be a non-empty image reference")
                )
            resources = _dict(c.get("resources"))
            for part in ("requests", "limits"):
                for rname in sorted(_dict(resources.get(part))):
                    if rname in policy.accelerator_resources:
                        out.append(
                            Finding(
                                f"{path}.resources.{part}[{rname!r}]",
                                "Accelerators",
                                "accelerators are requested with spec.acceleratorsPerReplica;"
                                " gpufleet sets them on the pod",
                            )
                        )
            if resources.get("claims"):
                out.append(
                    Finding(
                        f"{path}.resources.claims",
                        "SteeringField",
                        "devices are requested through spec.acceleratorsPerReplica",
                    )
                )
            ports: set[str] = set()
            for j, port in enumerate(_list(c.get("ports"))):
                port = _dict(port)
                number = port.get("containerPort")
                if (
                    not isinstance(number, int)
                    or isinstance(number, bool)
                    or not 0 < number < 65536
                ):
                    out.append(
                        Finding(f"{path}.ports[{j}].containerPort", "Range", "must be 1-65535")
                    )
                pname = port.get("name")
                if pname is not None:
                    if (
                        not isinstance(pname, str)
                        or len(pname) > 15
                        or not _PORT_NAME.match(pname)
                        or not re.search("[a-z]", pname)
                        or "--" in pname
                    ):
                        out.append(
                            Finding(
                                f"{path}.ports[{j}].name",
                                "IANASvcName",
                                "must be at most 15 lower-case alphanumerics and '-', with a letter",
                            )
                        )
                    elif pname in ports:
                        out.append(Finding(f"{path}.ports[{j}].name", "Duplicate", f"{pname!r}"))
                    else:
                        ports.add(pname)


def _volumes(spec: dict[str, Any], pfx: str, policy: TemplatePolicy, out: list[Finding]) -> None:
    names: set[str] = set()
    for i, vol in enumerate(_list(spec.get("volumes"))):
        vol = _dict(vol)
        vname = vol.get("name")
        path = f"{pfx}.volumes[{i}]"
        if not isinstance(vname, str) or len(vname) > 63 or not _DNS_LABEL.match(vname):
            out.append(Finding(f"{path}.name", "DNSLabel", f"{vname!r} is not a DNS-1123 label"))
        elif vname in names:
            out.append(Finding(f"{path}.name", "Duplicate", f"{vname!r}"))
        else:
            names.add(vname)
        if policy.automount_token:
            continue
        # A projected token is a service account token by another door.
        for j, source in enumerate(_list(_dict(vol.get("projected")).get("sources"))):
            if "serviceAccountToken" in _dict(source):
                out.append(
                    Finding(
                        f"{path}.projected.sources[{j}].serviceAccountToken",
                        "ServiceAccountToken",
                        "the queue's spec.automountServiceAccountToken is false",
                    )
                )
