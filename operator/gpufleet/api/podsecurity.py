"""The Pod Security Standards (baseline, restricted) as pure checks on a pod spec.

The API server's PodSecurity admission (k8s.io/pod-security-admission, policy
version ``PSS_VERSION``) answers allowed/forbidden for a whole pod; this module
answers the same question before any pod exists, and names the exact field
that breaks each control, so a Workload can be refused with
``spec.template.spec.containers[0].securityContext.privileged`` instead of a
403 from a member cluster nobody is watching. No I/O: it runs in the
operator's admission gate on every new template.

The controls are written from the published standard for ``PSS_VERSION``; the
cluster test ``tests/security/test_pod_security_cluster.py`` holds them to the
real kube-apiserver by dry-running every corpus template (and generated ones)
in namespaces labelled with each level and comparing verdicts. Where this
module is unsure it is stricter than the server, never looser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["privileged", "baseline", "restricted"]
# Loosest first: a level's index orders them.
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
PSS_VERSION = "v1.37"

LABEL_PREFIX = "pod-security.kubernetes.io/"


def stricter(a: Level, b: Level) -> Level:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


def looser_than(a: Level, b: Level) -> bool:
    """True when level ``a`` allows something ``b`` forbids."""
    return LEVELS.index(a) < LEVELS.index(b)


def namespace_labels(level: Level) -> dict[str, str]:
    """The Pod Security labels of a namespace enforced (and warned, audited) at ``level``."""
    out: dict[str, str] = {}
    for mode in ("enforce", "warn", "audit"):
        out[f"{LABEL_PREFIX}{mode}"] = level
        out[f"{LABEL_PREFIX}{mode}-version"] = PSS_VERSION
    return out


def enforced_level(labels: dict[str, str] | None) -> Level:
    """The level a namespace's labels enforce; no (or an unknown) label means privileged.

    kube-apiserver's default, without an AdmissionConfiguration saying otherwise, is
    privileged; an unparsable value is treated the same, which only ever makes gpufleet
    refuse more.
    """
    value = (labels or {}).get(f"{LABEL_PREFIX}enforce", "privileged")
    for level in LEVELS:
        if value == level:
            return level
    return "privileged"


@dataclass(frozen=True)
class Violation:
    """One control a pod breaks: the field, the control's name, and what is allowed."""

    path: str
    control: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (Pod Security {self.control})"


# -- the values each control allows (PSS_VERSION) -------------------------------------------

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_ADD_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
        "image",
    }
)
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def containers(spec: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, container) of every container, init container and ephemeral container."""
    for kind in CONTAINER_LISTS:
        for i, c in enumerate(_list(spec.get(kind))):
            yield f"{prefix}.{kind}[{i}]", _dict(c)


def check(
    spec: dict[str, Any],
    level: Level,
    *,
    annotations: dict[str, str] | None = None,
    prefix: str = "spec",
    annotations_prefix: str = "metadata.annotations",
) -> list[Violation]:
    """Every violation of ``level`` in the pod spec ``spec``; empty means allowed.

    ``prefix`` is where ``spec`` sits in the object shown to the user (for a Workload,
    ``spec.template.spec``).
    """
    if level == "privileged":
        return []
    out: list[Violation] = []
    _baseline(spec, annotations or {}, prefix, annotations_prefix, out)
    if level == "restricted":
        _restricted(spec, prefix, out)
    return out


def _baseline(
    spec: dict[str, Any],
    annotations: dict[str, str],
    p: str,
    ap: str,
    out: list[Violation],
) -> None:
    add = out.append
    psc = _dict(spec.get("securityContext"))
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            add(Violation(f"{p}.{field}", "hostNamespaces", "must be unset or false"))
    if _dict(psc.get("windowsOptions")).get("hostProcess") is True:
        add(
            Violation(
                f"{p}.securityContext.windowsOptions.hostProcess",
                "hostProcess",
                "must be unset or false",
            )
        )
    for i, vol in enumerate(_list(spec.get("volumes"))):
        if "hostPath" in _dict(vol):
            add(Violation(f"{p}.volumes[{i}].hostPath", "hostPathVolumes", "must not be used"))
    _seccomp_baseline(psc, f"{p}.securityContext", out)
    _selinux(psc, f"{p}.securityContext", out)
    _apparmor(psc, f"{p}.securityContext", out)
    for i, sysctl in enumerate(_list(psc.get("sysctls"))):
        name = _dict(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            add(
                Violation(
                    f"{p}.securityContext.sysctls[{i}].name",
                    "sysctls",
                    f"{name!r} is not a safe sysctl ({', '.join(sorted(SAFE_SYSCTLS))})",
                )
            )
    for key, value in sorted(annotations.items()):
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            add(
                Violation(
                    f"{ap}[{key!r}]",
                    "appArmorProfile",
                    "must be runtime/default or localhost/<profile>",
                )
            )
    for path, c in containers(spec, p):
        sc = _dict(c.get("securityContext"))
        scp = f"{path}.securityContext"
        if sc.get("privileged") is True:
            add(Violation(f"{scp}.privileged", "privileged", "must be unset or false"))
        if _dict(sc.get("windowsOptions")).get("hostProcess") is True:
            add(
                Violation(
                    f"{scp}.windowsOptions.hostProcess", "hostProcess", "must be unset or false"
                )
            )
        for j, cap in enumerate(_list(_dict(sc.get("capabilities")).get("add"))):
            if cap not in BASELINE_CAPABILITIES:
                add(
                    Violation(
                        f"{scp}.capabilities.add[{j}]",
                        "capabilities",
                        f"{cap!r} may not be added (baseline allows"
                        f" {', '.join(sorted(BASELINE_CAPABILITIES))})",
                    )
                )
        for j, port in enumerate(_list(c.get("ports"))):
            host_port = _dict(port).get("hostPort")
            if host_port not in (None, 0):
                add(Violation(f"{path}.ports[{j}].hostPort", "hostPorts", "must be unset or 0"))
        # Since v1.35 a pod in its own user namespace (hostUsers: false) may unmask /proc.
        if sc.get("procMount") not in (None, "Default") and spec.get("hostUsers") is not False:
            add(
                Violation(
                    f"{scp}.procMount",
                    "procMount",
                    "must be unset or Default (unless spec.hostUsers is false)",
                )
            )
        _seccomp_baseline(sc, scp, out)
        _selinux(sc, scp, out)
        _apparmor(sc, scp, out)
        _host_probes(c, path, out)


def _seccomp_baseline(sc: dict[str, Any], path: str, out: list[Violation]) -> None:
    if _dict(sc.get("seccompProfile")).get("type") == "Unconfined":
        out.append(
            Violation(f"{path}.seccompProfile.type", "seccompProfile", "must not be Unconfined")
        )


def _selinux(sc: dict[str, Any], path: str, out: list[Violation]) -> None:
    opts = _dict(sc.get("seLinuxOptions"))
    if opts.get("type", "") not in SELINUX_TYPES:
        out.append(
            Violation(
                f"{path}.seLinuxOptions.type",
                "seLinuxOptions",
                f"must be one of {', '.join(sorted(t for t in SELINUX_TYPES if t))} or unset",
            )
        )
    for field in ("user", "role"):
        if opts.get(field, "") != "":
            out.append(
                Violation(f"{path}.seLinuxOptions.{field}", "seLinuxOptions", "must be unset")
            )


def _apparmor(sc: dict[str, Any], path: str, out: list[Violation]) -> None:
    kind = _dict(sc.get("appArmorProfile")).get("type")
    if kind is not None and kind not in ("RuntimeDefault", "Localhost"):
        out.append(
            Violation(
                f"{path}.appArmorProfile.type",
                "appArmorProfile",
                "must be RuntimeDefault, Localhost or unset",
            )
        )


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _host_probes(c: dict[str, Any], path: str, out: list[Violation]) -> None:
    handlers: list[tuple[str, Any]] = [(probe, c[probe]) for probe in _PROBES if probe in c]
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        handlers += [(f"lifecycle.{hook}", h) for hook, h in lifecycle.items()]
    for where, handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            host = _dict(_dict(handler).get(action)).get("host")
            if host not in (None, ""):
                out.append(
                    Violation(
                        f"{path}.{where}.{action}.host",
                        "hostProbesAndHostLifecycle",
                        "must be unset",
                    )
                )


def _restricted(spec: dict[str, Any], p: str, out: list[Violation]) -> None:
    add = out.append
    psc = _dict(spec.get("securityContext"))
    windows = _dict(spec.get("os")).get("name") == "windows"
    for i, vol in enumerate(_list(spec.get("volumes"))):
        sources = [k for k in _dict(vol) if k != "name"]
        for source in sources:
            if source not in RESTRICTED_VOLUME_SOURCES and source != "hostPath":
                add(
                    Violation(
                        f"{p}.volumes[{i}].{source}",
                        "restrictedVolumes",
                        f"{source} volumes are not allowed (restricted allows"
                        f" {', '.join(sorted(RESTRICTED_VOLUME_SOURCES))})",
                    )
                )
    pod_non_root = psc.get("runAsNonRoot")
    if pod_non_root is False:
        add(Violation(f"{p}.securityContext.runAsNonRoot", "runAsNonRoot", "must be true"))
    if psc.get("runAsUser") == 0:
        add(Violation(f"{p}.securityContext.runAsUser", "runAsUser", "must not be 0"))
    pod_seccomp = _dict(psc.get("seccompProfile")).get("type")
    for path, c in containers(spec, p):
        sc = _dict(c.get("securityContext"))
        scp = f"{path}.securityContext"
        if not windows and sc.get("allowPrivilegeEscalation") is not False:
            add(
                Violation(
                    f"{scp}.allowPrivilegeEscalation", "allowPrivilegeEscalation", "must be false"
                )
            )
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            add(
                Violation(
                    f"{scp}.runAsNonRoot",
                    "runAsNonRoot",
                    "must be true here or in spec.securityContext",
                )
            )
        if sc.get("runAsUser") == 0:
            add(Violation(f"{scp}.runAsUser", "runAsUser", "must not be 0"))
        # Restricted does not take baseline's user-namespace exception.
        if sc.get("procMount") not in (None, "Default") and spec.get("hostUsers") is False:
            add(Violation(f"{scp}.procMount", "procMount", "must be unset or Default"))
        if not windows:
            seccomp = _dict(sc.get("seccompProfile")).get("type")
            effective = seccomp if seccomp is not None else pod_seccomp
            if effective not in ("RuntimeDefault", "Localhost") and seccomp != "Unconfined":
                add(
                    Violation(
                        f"{scp}.seccompProfile.type",
                        "seccompProfile",
                        "must be RuntimeDefault or Localhost here or in spec.securityContext",
                    )
                )
            caps = _dict(sc.get("capabilities"))
            if "ALL" not in _list(caps.get("drop")):
                add(Violation(f"{scp}.capabilities.drop", "capabilities", "must include ALL"))
            for j, cap in enumerate(_list(caps.get("add"))):
                if cap not in RESTRICTED_ADD_CAPABILITIES and cap in BASELINE_CAPABILITIES:
                    add(
                        Violation(
                            f"{scp}.capabilities.add[{j}]",
                            "capabilities",
                            f"{cap!r} may not be added (restricted allows only NET_BIND_SERVICE)",
                        )
                    )
    # Unconfined at the pod level is already a baseline violation; other values are refused by
    # validation, and named here so the refusal still points at the field.
    if not windows and pod_seccomp not in (None, "RuntimeDefault", "Localhost", "Unconfined"):
        add(
            Violation(
                f"{p}.securityContext.seccompProfile.type",
                "seccompProfile",
                "must be RuntimeDefault or Localhost",
            )
        )
