"""Hollow kubelets: one kubemark process per node of a fleet's `kubelet: hollow` groups.

A hollow node is the real kubelet of the control plane's release with a fake
container runtime and a fake cAdvisor (`kubemark --morph=kubelet`). It registers
its own Node (no KWOK annotation, so KWOK leaves it alone), reports the group's
accelerators as extended resources, and admits or refuses pods bound to it as a
real node does: a pod that does not fit ends Failed with reason `OutOf<resource>`.

Each process runs detached from the command that started it, with its log, pid
file and start arguments under the fleet's state directory
(`<cache>/fleets/<fleet>/hollow/`); `down` stops every kubemark process whose
kubeconfig lies in that directory, so none survives its fleet, and removes what
kubemark leaves in /tmp (its root directory and its fake runtime's socket; kubemark
fixes both paths).

Graceful pod deletion: the fake runtime stops a container at once, so a deleted
pod would vanish within a second whatever its grace period. In a cluster with
hollow groups the dev tooling installs a MutatingAdmissionPolicy (in the API
server; no webhook, no extra process) that gives every container without a
preStop hook `preStop: {sleep: {seconds: <terminationGracePeriodSeconds>}}`.
The kubelet itself runs sleep hooks, bounded by the deletion's grace period, so
a deleted pod stays Terminating, its containers counted on the node by the
kubelet and the scheduler, until min(grace period, terminationGracePeriodSeconds)
has passed: what a workload that uses all of its SIGTERM window does. See
docs/dev-fleets.md for what this does and does not model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpufleet.dev.nodes import node_labels, node_name
from gpufleet.dev.tools import Toolset
from gpufleet.fleetfile import ClusterSpec, NodeGroup

HOLLOW_SELECTOR = "type=hollow"
POLICY_NAME = "gpufleet-dev-graceful-termination"

# Every container without a preStop hook sleeps through its pod's grace period when
# deleted. An ApplyConfiguration merges into `containers` by name, so containers
# with their own preStop hook are left as they are. The sleep may not exceed
# terminationGracePeriodSeconds (API validation); the kubelet cuts it at the
# deletion's grace period, so a delete with a shorter grace period waits that long.
GRACEFUL_TERMINATION_POLICY: list[dict[str, Any]] = [
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "has-grace-period",
                    "expression": "has(object.spec.terminationGracePeriodSeconds) && "
                    "object.spec.terminationGracePeriodSeconds > 0",
                },
                {
                    "name": "a-container-without-prestop",
                    "expression": "object.spec.containers.exists(c, "
                    "!has(c.lifecycle) || !has(c.lifecycle.preStop))",
                },
            ],
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {
                        "expression": (
                            "Object{spec: Object.spec{containers: object.spec.containers"
                            ".filter(c, !has(c.lifecycle) || !has(c.lifecycle.preStop))"
                            ".map(c, Object.spec.containers{name: c.name, "
                            "lifecycle: Object.spec.containers.lifecycle{"
                            "preStop: Object.spec.containers.lifecycle.preStop{"
                            "sleep: Object.spec.containers.lifecycle.preStop.sleep{"
                            "seconds: object.spec.terminationGracePeriodSeconds}}}})}}"
                        )
                    },
                }
            ],
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME},
    },
]


class HollowError(RuntimeError):
    """A hollow node could not be started or did not register; the message says where to look."""


@dataclass
class HollowNode:
    """How one hollow node is started; kept as JSON beside its log and pid file."""

    fleet: str
    cluster: str
    name: str
    kubeconfig: str
    extended_resources: str
    node_labels: str
    max_pods: int

    def argv(self, kubemark: Path, port: int) -> list[str]:
        return [
            str(kubemark),
            "--morph=kubelet",
            f"--name={self.name}",
            f"--kubeconfig={self.kubeconfig}",
            f"--extended-resources={self.extended_resources}",
            # The host has no image service; the fake one "pulls" any image at once.
            "--use-host-image-service=false",
            f"--node-labels={self.node_labels}",
            f"--max-pods={self.max_pods}",
            # Many kubelets share one host, and a kubelet that cannot bind its port
            # exits: each serves its API on a free port of its own (10250 for all of
            # them otherwise), and none serves the read-only port (10255). Every other
            # endpoint is a unix socket under the kubelet's own root directory.
            f"--kubelet-port={port}",
            "--kubelet-read-only-port=0",
        ]


# kubemark makes its kubelet's root directory (static pods, pod logs, volumes; its
# mounter is a fake) as /tmp/hollow-kubelet.<random> and logs where.
_ROOT_DIR = re.compile(r"Using (/tmp/hollow-kubelet\.[0-9]+) as root dir for hollow-kubelet")


def hollow_dir(state: Path, fleet_name: str) -> Path:
    return state / fleet_name / "hollow"


def hollow_nodes_of(
    fleet_name: str, spec: ClusterSpec, kubeconfig: Path
) -> Iterable[tuple[NodeGroup, HollowNode]]:
    for group in spec.node_groups:
        if group.kubelet != "hollow":
            continue
        for i in range(group.count):
            labels = node_labels(spec, group, i)
            yield (
                group,
                HollowNode(
                    fleet=fleet_name,
                    cluster=spec.name,
                    name=node_name(group, i),
                    kubeconfig=str(kubeconfig),
                    extended_resources=f"{group.resource_name}={group.accelerators_per_node}",
                    node_labels=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                    max_pods=group.pods,
                ),
            )


def _free_port() -> int:
    # The kernel picks a free port; the kubelet binds it a moment later. Another
    # process taking it in between makes that kubelet exit, which `up --reuse` repairs.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def process_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the command name in parentheses, which may itself hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _is_hollow_of(cmdline: list[str], fleet_dir: Path) -> bool:
    marker = f"--kubeconfig={fleet_dir}{os.sep}"
    return (
        bool(cmdline)
        and Path(cmdline[0]).name.startswith("kubemark")
        and any(arg.startswith(marker) for arg in cmdline)
    )


def fleet_processes(state: Path, fleet_name: str) -> dict[int, str]:
    """Live kubemark processes of a fleet (their kubeconfig is in its state dir): pid -> node."""
    fleet_dir = state / fleet_name
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        cmdline = process_cmdline(pid)
        if _is_hollow_of(cmdline, fleet_dir) and not _is_zombie(pid):
            name = next((a.split("=", 1)[1] for a in cmdline if a.startswith("--name=")), "?")
            found[pid] = name
    return found


def start(tools: Toolset, state: Path, node: HollowNode) -> int:
    """Start one hollow kubelet, detached; returns its pid."""
    kubemark = tools.require_kubemark()
    base = hollow_dir(state, node.fleet)
    base.mkdir(parents=True, exist_ok=True)
    (base / f"{node.name}.json").write_text(json.dumps(asdict(node), indent=2))
    argv = node.argv(kubemark, _free_port())
    with (base / f"{node.name}.log").open("ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: it outlives `gpufleet dev up` and a Ctrl-C there.
            start_new_session=True,
        )
    (base / f"{node.name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def alive(state: Path, fleet_name: str, node: str) -> bool:
    """The node's recorded process is running (and is that node's kubemark, not a reused pid)."""
    pidfile = hollow_dir(state, fleet_name) / f"{node}.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    cmdline = process_cmdline(pid)
    return (
        _is_hollow_of(cmdline, state / fleet_name)
        and f"--name={node}" in cmdline
        and not _is_zombie(pid)
    )


def recorded_nodes(state: Path, fleet_name: str) -> list[HollowNode]:
    base = hollow_dir(state, fleet_name)
    if not base.exists():
        return []
    return [HollowNode(**json.loads(p.read_text())) for p in sorted(base.glob("*.json"))]


def restart_dead(tools: Toolset, state: Path, fleet_name: str) -> list[HollowNode]:
    """Start again every recorded hollow node of the fleet whose process has gone."""
    restarted = []
    for node in recorded_nodes(state, fleet_name):
        if not alive(state, fleet_name, node.name):
            start(tools, state, node)
            restarted.append(node)
    return restarted


def remove_stale_runtime_sockets() -> int:
    """Remove kubemark fake-runtime sockets in /tmp that nothing listens on any more.

    kubemark binds /tmp/kubelet_remote_<random>.sock (through a temporary name, so
    the socket cannot be traced back to its process) and never removes it. A socket
    file whose listener has gone refuses connections; one that is alive, another
    fleet's, accepts and is left alone.
    """
    removed = 0
    # Where kubemark itself puts them; removed on down.
    for path in Path("/tmp").glob("kubelet_remote_*.sock"):  # nosec B108
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
            except OSError:
                continue
    return removed


def root_dirs(state: Path, fleet_name: str, nodes: Iterable[str]) -> set[Path]:
    """Root directories the nodes' kubelets made in /tmp, each start's (read from their logs)."""
    found: set[Path] = set()
    for node in nodes:
        with contextlib.suppress(OSError):
            log = (hollow_dir(state, fleet_name) / f"{node}.log").read_text(errors="replace")
            found.update(Path(m) for m in _ROOT_DIR.findall(log))
    return found


def stop_fleet(state: Path, fleet_name: str, *, cluster: str | None = None) -> int:
    """Stop the fleet's kubemark processes (or one cluster's); returns how many were running.

    SIGTERM first, SIGKILL for any still there after 10 s. What kubemark leaves in
    /tmp goes too: the fake runtime's sockets and the kubelets' root directories.
    """
    procs = fleet_processes(state, fleet_name)
    recorded = [n.name for n in recorded_nodes(state, fleet_name) if cluster in (None, n.cluster)]
    if cluster is not None:
        procs = {pid: name for pid, name in procs.items() if name in recorded}
    leftovers = root_dirs(state, fleet_name, recorded)
    for pid in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    left = set(procs)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            # A kubelet started by this very process (tests) is our child: reap it.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if _is_zombie(pid):
                left.discard(pid)
        if left:
            time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    remove_stale_runtime_sockets()
    for root in leftovers:
        shutil.rmtree(root, ignore_errors=True)
    return len(procs)
