"""Local multi-cluster fleets: one real control plane per fleet cluster, KWOK or hollow GPU nodes.

Each cluster is created by `kwokctl --runtime binary` from the cached binaries
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok), so tests
talk to a real API server with real admission, scheduling and garbage
collection; only the kubelets are simulated: by KWOK (`kubelet: kwok` groups,
configured by `dev/kwokconfig.py`) or by hollow kubelets
(`kubelet: hollow` groups, one kubemark process per node, `dev/hollow.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpufleet.dev import hollow, prometheus
from gpufleet.dev.kwokconfig import kwokctl_config
from gpufleet.dev.nodes import iter_node_manifests
from gpufleet.dev.tools import K8S_VERSION, Toolset, cache_dir, find_tools
from gpufleet.fleetfile import ClusterSpec, Fleet

Progress = Callable[[str], None]


class FleetError(RuntimeError):
    """Something about the local fleet went wrong; the message says what to do next."""


def _quiet(_: str) -> None:
    return None


def kwok_workdir() -> Path:
    return cache_dir() / "kwok"


def state_dir() -> Path:
    return cache_dir() / "fleets"


def kwok_cluster_name(fleet_name: str, cluster: str) -> str:
    return f"gpufleet-{fleet_name}-{cluster}"


@dataclass
class Cluster:
    """A running local cluster, reachable through its kubeconfig."""

    name: str
    kwok_name: str
    kubeconfig: Path
    server: str
    site: str
    hub: bool
    nodes: int
    kubectl_path: Path = field(default_factory=lambda: Path(shutil.which("kubectl") or "kubectl"))
    # Of `nodes`, how many are hollow kubelets (the rest are KWOK's).
    hollow: int = 0

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise FleetError(
                f"kubectl {' '.join(args)} failed on {self.name}: {result.stderr.strip()}"
            )
        return result

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


@dataclass
class RunningFleet:
    name: str
    source: str
    clusters: dict[str, Cluster]

    @property
    def hub(self) -> Cluster:
        return next(c for c in self.clusters.values() if c.hub)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "clusters": {
                k: {
                    **asdict(c),
                    "kubeconfig": str(c.kubeconfig),
                    "kubectl_path": str(c.kubectl_path),
                }
                for k, c in self.clusters.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunningFleet:
        clusters = {
            k: Cluster(
                **{
                    **v,
                    "kubeconfig": Path(v["kubeconfig"]),
                    "kubectl_path": Path(v["kubectl_path"]),
                }
            )
            for k, v in data["clusters"].items()
        }
        return cls(name=data["name"], source=data["source"], clusters=clusters)


def _state_file(fleet_name: str) -> Path:
    return state_dir() / f"{fleet_name}.json"


def load_running(fleet_name: str) -> RunningFleet | None:
    path = _state_file(fleet_name)
    if not path.exists():
        return None
    return RunningFleet.from_json(json.loads(path.read_text()))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _env(tools: Toolset) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(kwok_workdir())
    env["KWOK_KUBE_VERSION"] = K8S_VERSION
    env["KWOK_RUNTIME"] = "binary"
    # kwokctl prefers a kubectl on PATH over downloading one.
    env["PATH"] = f"{tools.kubectl.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def cluster_processes(kwok_name: str) -> list[int]:
    """PIDs of processes started for a kwok cluster (their command lines name its workdir)."""
    # With its separator: gpufleet-x-fra must not match gpufleet-x-fra-2's processes.
    marker = f"{kwok_workdir() / 'clusters' / kwok_name}{os.sep}"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _kwokctl(tools: Toolset, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.kwokctl), *args],
        capture_output=True,
        text=True,
        env=_env(tools),
        timeout=timeout,
    )


def create_cluster(
    tools: Toolset, fleet_name: str, spec: ClusterSpec, runtime: str, progress: Progress = _quiet
) -> Cluster:
    kwok_name = kwok_cluster_name(fleet_name, spec.name)
    kubeconfig = state_dir() / fleet_name / f"{spec.name}.kubeconfig"
    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    kubeconfig.unlink(missing_ok=True)
    # KWOK manages only its own nodes, with its default stages but a graceful pod-delete
    # (dev/kwokconfig.py); kwokctl copies this into the cluster's own configuration.
    config = kubeconfig.parent / "kwokctl.yaml"
    config.write_text(kwokctl_config())
    args = [
        "--config",
        str(config),
        "create",
        "cluster",
        "--name",
        kwok_name,
        "--runtime",
        runtime,
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "3m",
        "--disable-qps-limits",
        # Node heartbeats of thousands of fake nodes would otherwise dominate a 2-core machine.
        "--heartbeat-factor",
        "10",
    ]
    if runtime == "binary":
        args += [
            "--etcd-binary",
            str(tools.etcd),
            "--kube-apiserver-binary",
            str(tools.kube_apiserver),
            "--kube-controller-manager-binary",
            str(tools.kube_controller_manager),
            "--kube-scheduler-binary",
            str(tools.kube_scheduler),
            "--kwok-controller-binary",
            str(tools.kwok),
        ]
    if spec.api_server_port is not None:
        if not _port_free(spec.api_server_port):
            raise FleetError(
                f"port {spec.api_server_port} (clusters[{spec.name}].apiServerPort) is already taken. "
                "Free it, pick another port in the fleet file, or remove apiServerPort to get a random one; "
                "a fleet left over from an earlier run goes with 'gpufleet dev down --all'."
            )
        args += ["--kube-apiserver-port", str(spec.api_server_port)]
    progress(f"{spec.name}: starting etcd, kube-apiserver, controller-manager, scheduler, kwok")
    result = _kwokctl(tools, *args)
    if result.returncode != 0:
        _kwokctl(tools, "delete", "cluster", "--name", kwok_name)
        raise FleetError(
            f"kwokctl could not create cluster {spec.name}:\n{result.stderr.strip()[-2000:]}\n"
            f"Logs: {kwok_workdir() / 'clusters' / kwok_name / 'logs'}"
        )
    server = _server_of(kubeconfig)
    return Cluster(
        name=spec.name,
        kwok_name=kwok_name,
        kubeconfig=kubeconfig,
        server=server,
        site=spec.site.name,
        hub=spec.hub,
        nodes=sum(g.count for g in spec.node_groups),
        kubectl_path=tools.kubectl,
        hollow=sum(g.count for g in spec.node_groups if g.kubelet == "hollow"),
    )


def _server_of(kubeconfig: Path) -> str:
    import yaml

    data = yaml.safe_load(kubeconfig.read_text())
    return str(data["clusters"][0]["cluster"]["server"])


def create_nodes(
    cluster: Cluster,
    manifests: Iterable[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
    workers: int = 16,
) -> int:
    """Create Node objects (idempotent: existing ones are left as they are)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api_client = cluster.api_client()
    # The default pool of 4 connections would serialise 16 workers.
    api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = workers
    core = client.CoreV1Api(api_client)

    def create(manifest: dict[str, Any]) -> None:
        try:
            core.create_node(manifest, _request_timeout=60)
        except ApiException as exc:
            if exc.status != 409:
                raise FleetError(
                    f"creating node {manifest['metadata']['name']} on {cluster.name}: {exc.reason}: {exc.body}"
                ) from exc
        if progress is not None:
            progress(1)

    items = list(manifests)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(create, items):
            pass
    api_client.close()
    return len(items)


def wait_nodes_ready(
    cluster: Cluster,
    expected: int,
    timeout: float = 300,
    selector: str = "type=kwok",
    since: float | None = None,
) -> None:
    """Wait until `expected` nodes matching `selector` are Ready.

    With `since` (a Unix time), a node counts only once it has reported Ready after
    it: a restarted kubelet's Node still says Ready from before (the node monitor's
    grace period is long in these fleets), until the new process heartbeats.
    """
    from kubernetes import client

    api_client = cluster.api_client()
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    ready = 0
    try:
        while time.monotonic() < deadline:
            nodes = core.list_node(label_selector=selector).items
            ready = sum(
                1
                for n in nodes
                if any(
                    c.type == "Ready"
                    and c.status == "True"
                    and (
                        since is None
                        or (c.last_heartbeat_time and c.last_heartbeat_time.timestamp() >= since)
                    )
                    for c in (n.status.conditions or [])
                )
            )
            if ready >= expected:
                return
            time.sleep(1)
    finally:
        api_client.close()
    where = (
        f"the hollow kubelets' logs in {hollow.hollow_dir(state_dir(), _fleet_of(cluster))}"
        if selector == hollow.HOLLOW_SELECTOR
        else "the kwok-controller log"
    )
    raise FleetError(
        f"{cluster.name}: only {ready}/{expected} nodes ({selector}) became Ready within {timeout:.0f}s; see {where}"
    )


def _fleet_of(cluster: Cluster) -> str:
    # The kubeconfig lives in <state>/<fleet>/<cluster>.kubeconfig.
    return cluster.kubeconfig.parent.name


def install_graceful_termination(cluster: Cluster, timeout: float = 60) -> None:
    """Install hollow.GRACEFUL_TERMINATION_POLICY and wait until the API server applies it.

    The API server loads admission policies asynchronously; a server-side dry run of
    a pod shows when the mutation is in force, so no pod created afterwards misses it.
    """
    manifests = {"apiVersion": "v1", "kind": "List", "items": hollow.GRACEFUL_TERMINATION_POLICY}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifests))
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gpufleet-policy-probe", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }
    deadline = time.monotonic() + timeout
    while True:
        result = cluster.kubectl(
            "create",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(probe),
            check=False,
        )
        if result.returncode == 0:
            container = json.loads(result.stdout)["spec"]["containers"][0]
            if container.get("lifecycle", {}).get("preStop", {}).get("sleep"):
                return
        elif "serviceaccount" not in result.stderr:
            # A fresh control plane creates the namespace's default ServiceAccount a moment
            # after it starts; until then the dry run is refused. Anything else is an error.
            raise FleetError(f"{cluster.name}: policy probe failed: {result.stderr.strip()}")
        if time.monotonic() > deadline:
            raise FleetError(
                f"{cluster.name}: the MutatingAdmissionPolicy {hollow.POLICY_NAME} was not in "
                f"force after {timeout:.0f}s (a dry-run pod came back without a preStop sleep)"
            )
        time.sleep(0.5)


def up(
    fleet: Fleet,
    *,
    source: str,
    name: str | None = None,
    runtime: str = "binary",
    reuse: bool = False,
    progress: Progress = _quiet,
    node_progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> RunningFleet:
    """Bring every cluster of the fleet up and create its nodes."""
    fleet_name = name or fleet.name
    existing = load_running(fleet_name)
    if existing is not None:
        alive = [c.name for c in existing.clusters.values() if cluster_processes(c.kwok_name)]
        if alive and reuse:
            progress(f"fleet {fleet_name} is already up; reusing it")
            _restart_dead_clusters(existing, progress)
            _restart_hollow(existing, progress)
            return existing
        if alive:
            raise FleetError(
                f"fleet '{fleet_name}' is still running ({', '.join(alive)}). "
                f"Use it as it is, or run 'gpufleet dev down --name {fleet_name}' first."
            )
        down(fleet_name, progress=progress)
    if runtime == "kind" and shutil.which("docker") is None:
        raise FleetError(
            "--runtime kind needs Docker; use the default --runtime binary on this machine"
        )
    tools = find_tools()
    if any(g.kubelet == "hollow" for c in fleet.clusters for g in c.node_groups):
        tools.require_kubemark()
    running = RunningFleet(name=fleet_name, source=source, clusters={})
    state_dir().mkdir(parents=True, exist_ok=True)
    try:
        for spec in fleet.clusters:
            running.clusters[spec.name] = _bring_up(
                tools, fleet_name, spec, runtime, progress, node_progress
            )
            _state_file(fleet_name).write_text(json.dumps(running.to_json(), indent=2))
        # Hollow kubelets register while the next clusters are made; wait for them last.
        for cluster in running.clusters.values():
            if cluster.hollow:
                progress(f"{cluster.name}: waiting for {cluster.hollow} hollow kubelets")
                wait_nodes_ready(
                    cluster, cluster.hollow, _hollow_timeout(cluster.hollow), hollow.HOLLOW_SELECTOR
                )
    except BaseException:
        progress("bring-up failed; tearing down what was started")
        down(fleet_name, progress=progress)
        raise
    return running


def _bring_up(
    tools: Toolset,
    fleet_name: str,
    spec: ClusterSpec,
    runtime: str,
    progress: Progress,
    node_progress: Callable[[str, int], Callable[[int], None]] | None,
    attempts: int = 2,
) -> Cluster:
    """One cluster with its nodes; a cluster whose nodes never turn Ready is made again once.

    On a loaded two-core machine a component occasionally loses the race for a randomly
    chosen port; a fresh start gets new ports.
    """
    for attempt in range(1, attempts + 1):
        cluster = create_cluster(tools, fleet_name, spec, runtime, progress)
        kwok_nodes = cluster.nodes - cluster.hollow
        if cluster.hollow:
            tools.require_kubemark()
            progress(f"{spec.name}: graceful pod termination for hollow kubelets")
            install_graceful_termination(cluster)
            progress(f"{spec.name}: starting {cluster.hollow} hollow kubelets (kubemark)")
            for _, node in hollow.hollow_nodes_of(fleet_name, spec, cluster.kubeconfig):
                hollow.start(tools, state_dir(), node)
        tick = node_progress(spec.name, kwok_nodes) if node_progress and attempt == 1 else None
        progress(f"{spec.name}: creating {kwok_nodes} KWOK GPU nodes")
        create_nodes(cluster, iter_node_manifests(spec), progress=tick)
        try:
            wait_nodes_ready(cluster, kwok_nodes, timeout=max(90.0, kwok_nodes / 10))
            return cluster
        except FleetError as exc:
            hollow.stop_fleet(state_dir(), fleet_name, cluster=spec.name)
            log = kwok_workdir() / "clusters" / cluster.kwok_name / "logs" / "kwok-controller.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
            _kwokctl(tools, "delete", "cluster", "--name", cluster.kwok_name, timeout=120)
            if attempt == attempts:
                raise FleetError(f"{exc}\nkwok-controller log (tail):\n{tail}") from exc
            progress(f"{spec.name}: nodes did not become Ready ({exc}); recreating the cluster")
    raise AssertionError("unreachable")


def _hollow_timeout(count: int) -> float:
    # About 20 s for one on an idle machine; they start in parallel and share the cores.
    return 120.0 + 5.0 * count


# The processes kwokctl starts for a cluster (`--runtime binary`), as their command lines
# name them.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)


def missing_components(kwok_name: str) -> list[str]:
    """The cluster's control-plane processes that are not running (killed, crashed)."""
    seen: set[str] = set()
    for pid in cluster_processes(kwok_name):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        except OSError:
            continue
        name = Path(argv0).name
        for component in COMPONENTS:
            if name == component or name.startswith(f"{component}-v"):
                seen.add(component)
    return [c for c in COMPONENTS if c not in seen]


def restart_cluster(tools: Toolset, cluster: Cluster, timeout: float = 180) -> None:
    """Stop what is left of a cluster's control plane and start it all again from its etcd
    data: nodes, pods and every object survive; only the processes are new."""
    _kwokctl(tools, "stop", "cluster", "--name", cluster.kwok_name, timeout=120)
    for pid in cluster_processes(cluster.kwok_name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)  # what kwokctl stop left (it stops by pid files)
    result = _kwokctl(
        tools, "start", "cluster", "--name", cluster.kwok_name, "--wait", "2m", timeout=timeout
    )
    if result.returncode != 0:
        raise FleetError(
            f"kwokctl could not start cluster {cluster.name} again:\n"
            f"{result.stderr.strip()[-2000:]}\n"
            f"Logs: {kwok_workdir() / 'clusters' / cluster.kwok_name / 'logs'}; "
            f"'gpufleet dev down --name {_fleet_of(cluster)}' and up again starts afresh."
        )
    still = missing_components(cluster.kwok_name)
    if still:
        # kwokctl reports success when a component exits right after its start; the usual
        # cause is that its port (fixed when the cluster was made) was taken meanwhile.
        logs = kwok_workdir() / "clusters" / cluster.kwok_name / "logs"
        tails = "\n".join(
            f"{c} log (tail):\n{(logs / f'{c}.log').read_text(errors='replace')[-800:]}"
            for c in still
            if (logs / f"{c}.log").exists()
        )
        raise FleetError(
            f"{cluster.name}: {', '.join(still)} exited again after the restart (a port of"
            f" its taken by another process?). Logs: {logs}; "
            f"'gpufleet dev down --name {_fleet_of(cluster)}' and up again starts afresh.\n"
            f"{tails}"
        )


def _restart_dead_clusters(running: RunningFleet, progress: Progress) -> None:
    """`up --reuse`: a cluster with a control-plane process gone is started again."""
    dead = [(c, missing_components(c.kwok_name)) for c in running.clusters.values()]
    dead = [(c, missing) for c, missing in dead if missing]
    if not dead:
        return
    tools = find_tools()
    for cluster, missing in dead:
        progress(f"{cluster.name}: {', '.join(missing)} not running; restarting its control plane")
        restart_cluster(tools, cluster)


def _restart_hollow(running: RunningFleet, progress: Progress) -> None:
    """`up --reuse`: start again the hollow kubelets that died, and wait until they are Ready."""
    if not any(c.hollow for c in running.clusters.values()):
        return
    # Heartbeat times are whole seconds.
    since = float(int(time.time()))
    restarted = hollow.restart_dead(find_tools(), state_dir(), running.name)
    if not restarted:
        return
    progress(
        f"restarted {len(restarted)} hollow kubelet(s): {', '.join(n.name for n in restarted)}"
    )
    for cluster in running.clusters.values():
        names = [n.name for n in restarted if n.cluster == cluster.name]
        if names:
            wait_nodes_ready(
                cluster,
                len(names),
                _hollow_timeout(len(restarted)),
                f"{hollow.HOLLOW_SELECTOR},kubernetes.io/hostname in ({','.join(names)})",
                since=since,
            )


def down(fleet_name: str, *, progress: Progress = _quiet) -> list[str]:
    """Delete every cluster of the fleet and make sure none of its processes is left."""
    removed: list[str] = []
    # The hollow kubelets first: with their API servers gone they would only log errors.
    stopped = hollow.stop_fleet(state_dir(), fleet_name)
    if stopped:
        progress(f"stopped {stopped} hollow kubelet(s)")
    if prometheus.stop(prometheus.directory(state_dir(), fleet_name)):
        progress("stopped prometheus")
    running = load_running(fleet_name)
    names = [c.kwok_name for c in running.clusters.values()] if running else []
    clusters_dir = kwok_workdir() / "clusters"
    if clusters_dir.exists():
        # Clusters left over from a bring-up that never recorded its state go too; not those
        # of another fleet whose name merely starts the same ("test" and "test-op").
        prefix = f"gpufleet-{fleet_name}-"
        others = tuple(f"gpufleet-{o}-" for o in _fleets_named_after(fleet_name))
        names += [
            p.name
            for p in clusters_dir.iterdir()
            if p.name.startswith(prefix) and p.name not in names and not p.name.startswith(others)
        ]
    tools: Toolset | None
    try:
        tools = find_tools()
    except RuntimeError:
        tools = None
    for kwok_name in names:
        progress(f"deleting {kwok_name}")
        if tools is not None:
            _kwokctl(tools, "delete", "cluster", "--name", kwok_name, timeout=120)
        for pid in cluster_processes(kwok_name):
            # kwokctl stops its components; anything that survived it is killed here.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(clusters_dir / kwok_name, ignore_errors=True)
        removed.append(kwok_name)
    _state_file(fleet_name).unlink(missing_ok=True)
    shutil.rmtree(state_dir() / fleet_name, ignore_errors=True)
    return removed


def _fleets_named_after(fleet_name: str) -> list[str]:
    """Other fleets whose clusters' names start like `fleet_name`'s ("test-op" for "test"):
    every fleet with a state file, or a state directory (made before its first cluster is
    created, so a fleet still coming up counts too)."""
    known = set(running_fleets())
    if state_dir().exists():
        known.update(p.name for p in state_dir().iterdir() if p.is_dir())
    return sorted(o for o in known if o.startswith(f"{fleet_name}-"))


def running_fleets() -> list[str]:
    if not state_dir().exists():
        return []
    return sorted(p.stem for p in state_dir().glob("*.json"))
