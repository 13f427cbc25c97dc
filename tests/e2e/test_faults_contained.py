"""Issue 17 against real control planes: faults at a member site, and hostile objects.

Every test reads the clusters' own objects: a workload never has live pods at two sites,
no pod runs outside its workload's residency, and a healthy workload submitted during
the fault is admitted. Figures (detection after a pause and after a kill, re-placement
after `declare-lost`) are printed; `-s` shows them.
"""

from __future__ import annotations

import base64
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from e2e.operator_harness import Fleet, OperatorProcess, queue_obj, wait_for, workload_obj
from gpufleet.dev import clusters
from gpufleet.dev.clusters import RunningFleet
from gpufleet.dev.register import flat_kubeconfig
from gpufleet.fleetfile import load_fleet

SITE = "localzone-ams"
OTHERS = ("onprem-fra", "factory-osl")
JURISDICTION = {"onprem-fra": "DE", SITE: "NL", "factory-osl": "NO"}
FENCE = 10
GRACE = 5
DISCONNECT_AFTER = 10
PROBE_INTERVAL = 5  # the connection's probe interval (sites/connection.py)
MEASUREMENTS = 5
CLASSES = ("nvidia-h100", "nvidia-h200")


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faulty(
    op_fleet: RunningFleet,
    fleet: Fleet,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator with short fence times, and ams's fence agent running."""
    member = op_fleet.clusters[SITE]
    logs = tmp_path_factory.mktemp("faults")
    operator.stop()
    operator.start(
        extra=[
            "--fence-seconds",
            str(FENCE),
            "--site-loss-grace",
            str(GRACE),
            "--disconnect-after",
            str(DISCONNECT_AFTER),
        ]
    )
    agent_log = open(logs / "agent.log", "wb")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpufleet.cli",
            "agent",
            "--kubeconfig",
            str(member.kubeconfig),
            "--fence-seconds",
            str(FENCE),
        ],
        stdout=agent_log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield operator
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        agent_log.close()
        _revive(op_fleet)
        operator.stop()
        operator.start()


class Watch:
    """Polls every cluster's gpufleet pods once a second, in a thread, and records every
    moment a workload had live pods at two sites or a pod outside its residency. A cluster
    that does not answer within 2 s is skipped for that poll (a paused or dead API server)."""

    def __init__(self, fleet: Fleet, namespace: str) -> None:
        self.fleet = fleet
        self.namespace = namespace
        self.two_sites: list[str] = []
        self.outside: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.poll()

    def poll(self) -> None:
        where: dict[str, set[str]] = {}
        for site in (SITE, *OTHERS):
            try:
                pods = client.CoreV1Api(self.fleet.clients[site]).list_namespaced_pod(
                    self.namespace, label_selector="gpufleet.io/managed-by", _request_timeout=2
                )
            except Exception:  # noqa: BLE001 - that cluster does not answer now
                continue
            for p in pods.items:
                if p.metadata.deletion_timestamp is not None or p.status.phase in (
                    "Succeeded",
                    "Failed",
                ):
                    continue
                name = p.metadata.labels.get("gpufleet.io/workload", "")
                where.setdefault(name, set()).add(site)
                self._residency(name, site)
        self.polls += 1
        for name, sites in where.items():
            if len(sites) > 1:
                self.two_sites.append(f"{time.strftime('%T')} {name} at {sorted(sites)}")

    def _residency(self, name: str, site: str) -> None:
        try:
            w = self.fleet.workload(self.namespace, name)
        except Exception:  # noqa: BLE001 - deleted meanwhile
            return
        allowed = ((w.get("spec") or {}).get("residency") or {}).get("jurisdictions")
        if allowed and JURISDICTION[site] not in allowed:
            self.outside.append(f"{name} at {site} ({JURISDICTION[site]}), allows {allowed}")


@pytest.fixture
def queue(fleet: Fleet, team: str) -> Iterator[str]:
    name = f"q-{team}"
    fleet.apply(
        queue_obj(
            name,
            [team],
            [{"acceleratorClass": c, "deserved": 16} for c in CLASSES],
        )
    )
    yield name
    fleet.hub.kubectl("delete", "queue", name, "--wait=false", check=False)


def _healthy_admitted(fleet: Fleet, team: str, queue: str, avoid: str | None = None) -> str:
    """Submit a small healthy workload now; it must be admitted (not at `avoid`)."""
    name = f"healthy-{uuid.uuid4().hex[:6]}"
    fleet.apply(workload_obj(team, name, queue, gpus=1, classes=CLASSES))
    w = fleet.wait_phase(team, name, {"Admitted", "Running"}, timeout=60)
    site = str(w["status"]["placement"]["site"])
    assert site != avoid, f"{name} was placed at the site under the fault"
    return name


def _api_server_pid(op_fleet: RunningFleet, site: str) -> int:
    kwok_name = op_fleet.clusters[site].kwok_name
    for pid in clusters.cluster_processes(kwok_name):
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        if Path(argv0).name == "kube-apiserver":
            return pid
    raise AssertionError(f"no kube-apiserver running for {site}")


def _revive(op_fleet: RunningFleet) -> None:
    """What `gpufleet dev up --reuse` does: restart a cluster whose processes died."""
    for pid in _stopped_pids(op_fleet):
        os.kill(pid, signal.SIGCONT)
    clusters.up(
        load_fleet(Path(op_fleet.source)), source=op_fleet.source, name=op_fleet.name, reuse=True
    )


def _stopped_pids(op_fleet: RunningFleet) -> list[int]:
    out = []
    for pid in clusters.cluster_processes(op_fleet.clusters[SITE].kwok_name):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if state == "T":
            out.append(pid)
    return out


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None
    )


def _connected(fleet: Fleet) -> str | None:
    c = _condition(fleet.site(SITE), "Connected")
    return None if c is None else str(c["status"])


def _live_pods(fleet: Fleet, site: str, ns: str, name: str) -> list[Any]:
    sel = f"gpufleet.io/workload={name},gpufleet.io/workload-namespace={ns}"
    pods = client.CoreV1Api(fleet.clients[site]).list_namespaced_pod(
        ns, label_selector=sel, _request_timeout=5
    )
    return [
        p
        for p in pods.items
        if p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")
    ]


def _at_ams(fleet: Fleet, team: str, queue: str) -> None:
    # H200 first: only ams has it in the EU; fra's H100 is where they can move.
    common: dict[str, Any] = {
        "gpus": 8,
        "classes": ("nvidia-h200", "nvidia-h100"),
        "residency": {"regions": ["EU"]},
        "sitePreferences": [SITE],
    }
    fleet.apply(
        workload_obj(team, "movable", queue, onSiteLoss="Requeue", **common),
        workload_obj(team, "patient", queue, onSiteLoss="Wait", **common),
    )
    for name in ("movable", "patient"):
        w = fleet.wait_phase(team, name, {"Running"}, timeout=90)
        assert w["status"]["placement"]["site"] == SITE


def _measure(
    fleet: Fleet, fault: Callable[[], None], undo: Callable[[], None], label: str
) -> list[float]:
    """Time from each fault to Connected=False on the Site, MEASUREMENTS times."""
    times = []
    for i in range(MEASUREMENTS):
        wait_for(f"{SITE} connected before fault {i + 1}", lambda: _connected(fleet) == "True", 120)
        started = time.monotonic()
        fault()
        wait_for(
            f"{SITE} marked disconnected after {label} {i + 1}",
            lambda: _connected(fleet) == "False",
            timeout=DISCONNECT_AFTER + PROBE_INTERVAL + 30,
            interval=0.25,
        )
        times.append(time.monotonic() - started)
        if i < MEASUREMENTS - 1:
            undo()
    print(
        f"\n{label}: Connected=False after {', '.join(f'{t:.1f}' for t in times)} s;"
        f" median {statistics.median(times):.1f} s (threshold {DISCONNECT_AFTER} s"
        f" + probe {PROBE_INTERVAL} s)"
    )
    return times


# -- member API server paused ----------------------------------------------------------------


def test_a_paused_member_api_server_is_detected_on_time_and_fences_nothing(
    op_fleet: RunningFleet, fleet: Fleet, faulty: OperatorProcess, team: str, queue: str
) -> None:
    _at_ams(fleet, team, queue)
    before = {
        p.metadata.uid for n in ("movable", "patient") for p in _live_pods(fleet, SITE, team, n)
    }
    pid = _api_server_pid(op_fleet, SITE)
    with Watch(fleet, team) as watch:

        def pause() -> None:
            os.kill(pid, signal.SIGSTOP)

        def resume() -> None:
            # Paused at least DISCONNECT_AFTER >= FENCE: the agent must not take its own
            # blindness for the operator's silence when the API server answers again.
            os.kill(pid, signal.SIGCONT)

        times = _measure(fleet, pause, resume, "pause (SIGSTOP of kube-apiserver)")
        _healthy_admitted(fleet, team, queue, avoid=SITE)
        os.kill(pid, signal.SIGCONT)
        wait_for("the site to reconnect", lambda: _connected(fleet) == "True", 60)
        # Give the agent a whole fence time after its API server came back: the operator
        # renews within a probe interval, so nothing may be fenced.
        deadline = time.monotonic() + FENCE + PROBE_INTERVAL
        while time.monotonic() < deadline:
            after = {
                p.metadata.uid
                for n in ("movable", "patient")
                for p in _live_pods(fleet, SITE, team, n)
            }
            assert after == before, "pods at the paused site were stopped or replaced"
            time.sleep(1)
    assert watch.polls > 20
    assert watch.two_sites == []
    assert watch.outside == []
    assert statistics.median(times) <= DISCONNECT_AFTER + PROBE_INTERVAL + 2  # a status write


# -- member API server killed, its pods left running -------------------------------------------


def test_a_killed_member_api_server_moves_nothing_until_declared_lost(
    op_fleet: RunningFleet, fleet: Fleet, faulty: OperatorProcess, team: str, queue: str
) -> None:
    _at_ams(fleet, team, queue)

    def kill() -> None:
        os.kill(_api_server_pid(op_fleet, SITE), signal.SIGKILL)

    def revive() -> None:
        _revive(op_fleet)

    with Watch(fleet, team) as watch:
        times = _measure(fleet, kill, revive, "kill (SIGKILL of kube-apiserver)")
        # Dead for good now, its pods running on (KWOK, like a kubelet, keeps them).
        _healthy_admitted(fleet, team, queue, avoid=SITE)

        def unconfirmed() -> bool:
            c = _condition(fleet.workload(team, "movable"), "SiteReachable")
            return c is not None and c["reason"] == "FenceUnconfirmed"

        wait_for("the movable workload to say it waits for evidence", unconfirmed, timeout=90)
        # Well past fence + grace: still where it was, nothing at another site.
        assert fleet.workload(team, "movable")["status"]["placement"]["site"] == SITE
        for site in OTHERS:
            assert not _live_pods(fleet, site, team, "movable")
        declared = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gpufleet.cli",
                "site",
                "declare-lost",
                SITE,
                "--reason",
                "test: control plane killed, nodes powered off",
                "--kubeconfig",
                str(op_fleet.hub.kubeconfig),
            ],
            check=True,
        )
        site = fleet.site(SITE)
        assert site["spec"]["lossDeclaration"]["by"]

        def moved() -> str | None:
            placement = (fleet.workload(team, "movable").get("status") or {}).get("placement")
            if not placement or placement["site"] == SITE:
                return None
            return (
                placement["site"] if _live_pods(fleet, placement["site"], team, "movable") else None
            )

        new_site = wait_for(
            "the movable workload to be placed again", moved, timeout=60, interval=0.25
        )
        replaced = time.monotonic() - declared
        print(f"\nre-placed at {new_site} {replaced:.1f} s after declare-lost")
        # Only the declared site's own pods could overlap now (the person stopped them):
        # nothing the operator decided before the declaration ran twice.
        overlaps_before_return = list(watch.two_sites)
        patient = fleet.workload(team, "patient")
        assert patient["status"]["placement"]["site"] == SITE  # onSiteLoss: Wait stays
        revive()
        wait_for("the site to reconnect", lambda: _connected(fleet) == "True", 90)
        wait_for(
            "the old pods at the returned site to be removed",
            lambda: not _live_pods(fleet, SITE, team, "movable"),
            timeout=30,
        )
        wait_for(
            "the patient workload to run at its site again",
            lambda: fleet.phase(team, "patient") == "Running",
            timeout=60,
        )
    assert overlaps_before_return == []
    # After the return, ams's objects may have said Running for the old pods until the
    # operator's first sweep: those are the pods the declaration said were stopped.
    for line in watch.two_sites:
        assert "movable" in line, line
    assert watch.outside == []
    assert statistics.median(times) <= DISCONNECT_AFTER + PROBE_INTERVAL + 2


# -- two Sites on one cluster; a local Site over another's nodes --------------------------------


def _member_secret(op_fleet: RunningFleet, name: str) -> dict[str, Any]:
    data = base64.b64encode(flat_kubeconfig(op_fleet.clusters[SITE]).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "gpufleet-system"},
        "type": "Opaque",
        "data": {"kubeconfig": data},
    }


def _site_obj(name: str, jurisdiction: str, nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name},
        "spec": {"type": "OnPrem", "jurisdiction": jurisdiction, "regions": ["EU"], "nodes": nodes},
    }


def _pool_obj(name: str, site: str, cls: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "gpufleet.io/v1alpha1",
        "kind": "GpuPool",
        "metadata": {"name": name},
        "spec": {
            "site": site,
            "acceleratorClass": cls,
            "resourceName": "nvidia.com/gpu",
            "nodeSelector": selector,
        },
    }


def _valid_reason(fleet: Fleet, plural: str, name: str) -> str | None:
    got = fleet.hub.kubectl("get", plural, name, "-o", "yaml", check=False)
    if got.returncode != 0:
        return None
    c = _condition(yaml.safe_load(got.stdout), "Valid")
    return None if c is None or c["status"] != "False" else str(c["reason"])


def _delete(fleet: Fleet, *objects: tuple[str, str]) -> None:
    for plural, name in objects:
        fleet.hub.kubectl("delete", plural, name, "--wait=false", "--ignore-not-found", check=False)


def test_a_second_site_on_a_claimed_cluster_is_refused_and_sweeps_nothing(
    op_fleet: RunningFleet, fleet: Fleet, operator: OperatorProcess, team: str, queue: str
) -> None:
    fleet.apply(workload_obj(team, "dutch", queue, gpus=8, classes=CLASSES, sitePreferences=[SITE]))
    fleet.wait_phase(team, "dutch", {"Running"}, timeout=90)
    uids = {p.metadata.uid for p in _live_pods(fleet, SITE, team, "dutch")}
    try:
        with Watch(fleet, team) as watch:
            fleet.apply(
                _member_secret(op_fleet, "ams-again"),
                _site_obj(
                    "ams-fr",
                    "FR",
                    {"member": {"kubeconfigSecretRef": {"name": "ams-again", "key": "kubeconfig"}}},
                ),
                _pool_obj("ams-fr-h200", "ams-fr", "nvidia-h200", {}),
            )
            wait_for(
                "the second Site to be refused",
                lambda: _valid_reason(fleet, "sites", "ams-fr") == "ClusterClaimed",
                timeout=60,
            )
            fleet.apply(
                workload_obj(
                    team,
                    "french",
                    queue,
                    gpus=8,
                    classes=CLASSES,
                    residency={"jurisdictions": ["FR"]},
                )
            )
            _healthy_admitted(fleet, team, queue)
            # A while for the two connections' sweeps to fight, if they did.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                assert {p.metadata.uid for p in _live_pods(fleet, SITE, team, "dutch")} == uids
                time.sleep(1)
            assert fleet.phase(team, "french") == "Pending"
        assert watch.two_sites == []
        assert watch.outside == []
    finally:
        _delete(fleet, ("gpupools", "ams-fr-h200"), ("sites", "ams-fr"))
        fleet.hub.kubectl(
            "delete",
            "secret",
            "ams-again",
            "-n",
            "gpufleet-system",
            "--ignore-not-found",
            check=False,
        )


def test_a_local_site_over_another_sites_nodes_uses_none_of_them(
    fleet: Fleet, operator: OperatorProcess, team: str, queue: str
) -> None:
    # Every hub node is onprem-fra's; this French Site claims the same ones.
    try:
        with Watch(fleet, team) as watch:
            fleet.apply(
                _site_obj("fr-local", "FR", {"local": {"nodeSelector": {"matchLabels": {}}}}),
                _pool_obj("fr-local-h100", "fr-local", "nvidia-h100", {}),
            )
            for plural, name in (("sites", "fr-local"), ("sites", "onprem-fra")):
                wait_for(
                    f"{name} to say its nodes overlap",
                    lambda p=plural, n=name: _valid_reason(fleet, p, n) == "NodesOverlap",
                    timeout=60,
                )
            fleet.apply(
                workload_obj(
                    team,
                    "french",
                    queue,
                    gpus=8,
                    classes=CLASSES,
                    residency={"jurisdictions": ["FR"]},
                )
            )
            _healthy_admitted(fleet, team, queue, avoid="onprem-fra")
            assert fleet.phase(team, "french") == "Pending"
        assert watch.two_sites == []
        assert watch.outside == []
    finally:
        _delete(fleet, ("gpupools", "fr-local-h100"), ("sites", "fr-local"))
        wait_for(
            "onprem-fra valid again",
            lambda: _valid_reason(fleet, "sites", "onprem-fra") is None,
            timeout=60,
        )


# -- hostile Queues and a pool at a missing Site ------------------------------------------------


@pytest.mark.parametrize("fault", ["cycle", "child-under-busy-leaf", "orphan", "pool-no-site"])
def test_one_bad_object_is_set_aside_and_the_fleet_keeps_scheduling(
    fleet: Fleet, operator: OperatorProcess, team: str, queue: str, fault: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    expected: list[tuple[str, str, str]] = []
    made: list[tuple[str, str]] = []
    resources = [{"acceleratorClass": c, "deserved": 8} for c in CLASSES]
    if fault == "cycle":
        a, b = f"loop-a-{tag}", f"loop-b-{tag}"
        fleet.apply(
            queue_obj(a, [team], resources, parent=b), queue_obj(b, [team], resources, parent=a)
        )
        expected = [("queues", a, "ParentCycle"), ("queues", b, "ParentCycle")]
        made = [("queues", a), ("queues", b)]
    elif fault == "child-under-busy-leaf":
        leaf = f"leaf-{tag}"
        fleet.apply(queue_obj(leaf, [team], resources))
        fleet.apply(workload_obj(team, f"busy-{tag}", leaf, gpus=1, classes=CLASSES))
        fleet.wait_phase(team, f"busy-{tag}", {"Admitted", "Running"}, timeout=60)
        child = f"child-{tag}"
        fleet.apply(queue_obj(child, [team], resources, parent=leaf))
        expected = [("queues", child, "ParentHasWorkloads")]
        made = [("queues", child), ("queues", leaf)]
    elif fault == "orphan":
        orphan = f"orphan-{tag}"
        fleet.apply(queue_obj(orphan, [team], resources, parent=f"nowhere-{tag}"))
        fleet.apply(workload_obj(team, f"o-{tag}", orphan, gpus=1, classes=CLASSES))
        expected = [("queues", orphan, "ParentNotFound")]
        made = [("queues", orphan)]
    else:
        pool = f"pool-{tag}"
        fleet.apply(_pool_obj(pool, f"nowhere-{tag}", "nvidia-h100", {}))
        expected = [("gpupools", pool, "SiteNotFound")]
        made = [("gpupools", pool)]
    try:
        with Watch(fleet, team) as watch:
            for plural, name, reason in expected:
                wait_for(
                    f"{plural}/{name} to be set aside ({reason})",
                    lambda p=plural, n=name, r=reason: _valid_reason(fleet, p, n) == r,
                    timeout=60,
                )
            _healthy_admitted(fleet, team, queue)
            if fault == "orphan":
                # Not admitted as if its queue were a root without limits.
                w = fleet.workload(team, f"o-{tag}")
                assert (w.get("status") or {}).get("phase", "Pending") == "Pending"
                verdicts = (w.get("status") or {}).get("verdicts") or []
                assert [v["rule"] for v in verdicts] == ["QueueSetAside"]
        assert watch.two_sites == []
        assert watch.outside == []
    finally:
        fleet.delete_all_workloads(team)
        _delete(fleet, *made)


def test_the_operator_log_shows_no_lost_cycle(faulty: OperatorProcess) -> None:
    """Run last in this module: not one cycle failed as a whole."""
    logs = sorted(faulty.log_dir.glob("operator-*.log"))
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert "the fleet could not be scheduled" not in text
    assert "scheduling cycle failed" not in text
