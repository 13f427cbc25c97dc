"""A fleet under faults and hostile edits, driven by hypothesis: the operator's real loop
(translate, lifecycle, core, appliers) against fake clusters whose pods are the truth.

The clusters are modelled, not run: each holds pods as objects (what its API server
would serve) and whether their containers run (what the kubelet does, API server or not).
The operator sees a cluster only while its API server is up and the link to it is up; the
member's fence agent sees its own API server only. Faults: links cut and restored, member
control planes killed and brought back (their pods keep running), the agent fencing after
silence it saw, a person declaring a site lost (after stopping it, as the command asks),
operator restarts (a new cache, rebuilt from the clusters), relabels, and hostile Queue
and Site edits. After every step, from the clusters' truth:

* no workload has running containers at two sites (two clusters);
* no running container is on a node outside its workload's residency (by the node's real
  jurisdiction, whatever Site claims it);
* a canary workload submitted to a healthy queue is admitted in the next cycle, whatever
  else is broken.

`make test` runs it under HYPOTHESIS_PROFILE=ci (1,000 sequences); `thorough` runs 5,000
(`HYPOTHESIS_PROFILE=thorough pytest tests/control/test_fleet_machine.py`, ~15 min).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gpufleet.control import loop as loop_module
from gpufleet.control.loop import SchedulingLoop
from gpufleet.control.writer import ConflictError
from gpufleet.observed.cache import HUB, FenceRecord, FleetCache
from gpufleet.observed.records import NodeRecord, PodRecord

API = "gpufleet.io/v1alpha1"
MEMBERS = ("ams", "par")
# Where a node really is: a member cluster's nodes are where the cluster is; the hub's are
# in Germany. A Site may claim nodes by any selector; claiming one is not being there.
PLACE = {HUB: "DE", "ams": "NL", "par": "FR"}
RESIDENCIES = {
    "EU": {"regions": ["EU"]},
    "FR": {"jurisdictions": ["FR"]},
    "NL": {"jurisdictions": ["NL"]},
    "any": None,
}


@dataclass
class Pod:
    record: PodRecord
    running: bool = True  # its containers, as the kubelet runs them


@dataclass
class Cluster:
    identity: str
    nodes: dict[str, dict[str, str]]  # name -> labels
    pods: dict[str, Pod] = field(default_factory=dict)
    api_up: bool = True
    link_up: bool = True  # from the operator
    lease_version: int = 1
    fence_record: FenceRecord | None = None
    agent_silence: int = 0  # renewal-free looks the agent made while it could read

    @property
    def visible(self) -> bool:
        return self.api_up and self.link_up


class Hub:
    """The hub's gpufleet objects: merge-patched statuses with resourceVersions (CAS)."""

    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, kind: str, key: str, body: dict[str, Any]) -> None:
        self.rv += 1
        body["metadata"]["resourceVersion"] = str(self.rv)
        body["metadata"]["generation"] = body["metadata"].get("generation", 0) + 1
        self.objects[(kind, key)] = body

    def patch_status(
        self, kind: str, body: dict[str, Any], status: dict[str, Any], *, cas: bool = True
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        current = self.objects.get((kind, key))
        if current is None:
            raise ConflictError(f"{key} is gone")
        if cas and current["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            raise ConflictError(f"{key} changed")
        merged = {**(current.get("status") or {}), **status}
        self.rv += 1
        written = {
            **current,
            "metadata": {**current["metadata"], "resourceVersion": str(self.rv)},
            "status": {k: v for k, v in merged.items() if v is not None},
        }
        self.objects[(kind, key)] = written
        return written

    def event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        pass


def then_cycle(step: Any) -> Any:
    """The operator runs all along: every operation is followed by one of its cycles, so a
    short sequence reaches deep states (a cut, a requeue, a placement elsewhere)."""

    def run(self: FleetMachine, *args: Any, **kwargs: Any) -> None:
        step(self, *args, **kwargs)
        self._cycle()

    run.__name__ = step.__name__
    run.__doc__ = step.__doc__
    return run


class FleetMachine(RuleBasedStateMachine):
    @initialize()
    def fleet(self) -> None:
        self.now = time.time()
        self.hub = Hub()
        self.clusters: dict[str, Cluster] = {
            HUB: Cluster(
                "uid-hub",
                {
                    "fra-0": {"site": "fra", "pool": "gpu"},
                    "fra-1": {"site": "fra", "pool": "gpu"},
                    # Out of reach of the hostile Sites and relabels: the canary's own node.
                    "canary-0": {"site": "fra-canary", "pool": "canary"},
                },
            ),
            "ams": Cluster("uid-ams", {"ams-0": {"pool": "gpu"}, "ams-1": {"pool": "gpu"}}),
            "par": Cluster("uid-par", {"par-0": {"pool": "gpu"}, "par-1": {"pool": "gpu"}}),
        }
        self._site(
            "fra",
            "DE",
            local={
                "matchExpressions": [
                    {"key": "site", "operator": "In", "values": ["fra", "fra-canary"]}
                ]
            },
        )
        self._site("ams", "NL")
        self._site("par", "FR")
        for site in ("fra", "ams", "par"):
            self._pool(f"{site}-gpu", site, "nvidia-h100", {"pool": "gpu"})
        self._pool("canary", "fra", "nvidia-l4", {"pool": "canary"})
        self._queue("team", classes=("nvidia-h100",))
        self._queue("canary", classes=("nvidia-l4",))
        self.workloads: list[str] = []
        self.canaries = 0
        self.declared: set[str] = set()
        self._start_operator()

    # -- the objects --------------------------------------------------------------------
    def _site(self, name: str, jurisdiction: str, local: dict[str, Any] | None = None) -> None:
        nodes: dict[str, Any] = (
            {"local": {"nodeSelector": local}}
            if local is not None
            else {"member": {"kubeconfigSecretRef": {"name": name, "key": "kubeconfig"}}}
        )
        self.hub.put(
            "Site",
            name,
            {
                "apiVersion": API,
                "kind": "Site",
                "metadata": {
                    "name": name,
                    "creationTimestamp": _rfc(self.now + len(self.hub.objects)),
                },
                "spec": {
                    "type": "OnPrem",
                    "jurisdiction": jurisdiction,
                    "regions": ["EU"] if jurisdiction in ("DE", "NL", "FR") else [],
                    "nodes": nodes,
                },
            },
        )

    def _pool(self, name: str, site: str, cls: str, selector: dict[str, str]) -> None:
        self.hub.put(
            "GpuPool",
            name,
            {
                "apiVersion": API,
                "kind": "GpuPool",
                "metadata": {"name": name},
                "spec": {
                    "site": site,
                    "acceleratorClass": cls,
                    "resourceName": "nvidia.com/gpu",
                    "nodeSelector": selector,
                },
            },
        )

    def _queue(
        self, name: str, parent: str | None = None, classes: tuple[str, ...] = ("nvidia-h100",)
    ) -> None:
        spec: dict[str, Any] = {
            "namespaces": ["ns"],
            "resources": [{"acceleratorClass": c, "deserved": 16} for c in classes],
        }
        if parent is not None:
            spec["parent"] = parent
        self.hub.put(
            "Queue",
            name,
            {"apiVersion": API, "kind": "Queue", "metadata": {"name": name}, "spec": spec},
        )

    def _workload(
        self,
        name: str,
        queue: str,
        cls: str,
        residency: Any,
        on_loss: str,
        prefer: str | None = None,
    ) -> None:
        spec: dict[str, Any] = {
            "queue": queue,
            "replicas": 1,
            "acceleratorsPerReplica": 8,
            "acceleratorClasses": [cls],
            "onSiteLoss": on_loss,
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        }
        if residency is not None:
            spec["residency"] = residency
        if prefer is not None:
            spec["sitePreferences"] = [prefer]
        self.hub.put(
            "Workload",
            f"ns/{name}",
            {
                "apiVersion": API,
                "kind": "Workload",
                "metadata": {
                    "name": name,
                    "namespace": "ns",
                    "uid": f"uid-{name}-{self.hub.rv}",
                    "creationTimestamp": _rfc(self.now),
                },
                "spec": spec,
            },
        )

    # -- the operator ------------------------------------------------------------------------
    def _start_operator(self) -> None:
        """A fresh process: its cache rebuilt from the clusters, its Lease clock from now."""
        self.cache = FleetCache()
        self._feed_hub_objects()
        for name, c in self.clusters.items():
            self._sync_cluster(name, c, fresh=True)
        machine = self

        class Connections:
            @property
            def connections(self) -> dict[str, Any]:
                return {
                    n: SimpleNamespace(api_client=n)
                    for n, c in machine.clusters.items()
                    if c.visible
                }

            def reconcile(self, sites: Any) -> None:
                pass

        self._stop_operator()
        self.loop = SchedulingLoop(
            self.cache,
            Connections(),  # type: ignore[arg-type]
            self.hub,  # type: ignore[arg-type]
            origin="gpufleet",
            workers=1,
            site_loss_after=90.0,
        )

    def _stop_operator(self) -> None:
        old = getattr(self, "loop", None)
        if old is not None:
            old.pool.shutdown()
            old.events.shutdown()

    def teardown(self) -> None:
        self._stop_operator()

    def _feed_hub_objects(self) -> None:
        tables = {"Site": self.cache.sites, "GpuPool": self.cache.pools, "Queue": self.cache.queues}
        for (kind, key), body in self.hub.objects.items():
            if kind == "Workload":
                self.cache.put_object("Workload", key, body)
            else:
                tables[kind][key] = body

    def _sync_cluster(self, name: str, c: Cluster, fresh: bool = False) -> None:
        """What a connection reports: health; on an answer, identity, fence record, renewal
        and a fresh list of nodes and pods."""
        state = self.cache.cluster(name)
        if not c.visible:
            if state.connected or fresh:
                self.cache.health_changed(name, False, "APIServerUnreachable", "no answer")
            return
        self.cache.cluster_identified(name, c.identity)
        if name != HUB:
            record = c.fence_record
            confirmed = (
                record is not None
                and record.complete
                and record.lease_version == str(c.lease_version)
            )
            self.cache.fence_read(name, record, confirmed)
            c.lease_version += 1  # the renewal
            c.agent_silence = 0
            self.cache.lease_renewed(name, self.now)
        if not state.connected:
            self.cache.health_changed(name, True, "Connected", "API server answers")
        for node, labels in c.nodes.items():
            self.cache.node_event(
                name,
                NodeRecord(
                    node,
                    dict(labels),
                    {"nvidia.com/gpu": "8", "cpu": "96", "memory": "1Ti", "pods": "110"},
                    True,
                    False,
                ),
                node,
            )
        for pod in c.pods.values():
            self.cache.pod_event(name, pod.record, pod.record.key)
        self.cache.resync(name, "nodes", set(c.nodes))
        self.cache.resync(name, "pods", set(c.pods))
        # No namespace exists yet in the fake clusters: gpufleet creates them, with Pod Security.
        self.cache.resync(name, "namespaces", set())

    def _cycle(self) -> None:
        self.now += 5
        for name, c in self.clusters.items():
            self._sync_cluster(name, c)
        self._feed_hub_objects()
        previous = (loop_module.create_pods, loop_module.delete_pods)
        loop_module.create_pods = self._create_pods  # type: ignore[assignment]
        loop_module.delete_pods = self._delete_pods  # type: ignore[assignment]
        try:
            self.loop.cycle()
        finally:
            loop_module.create_pods, loop_module.delete_pods = previous
        self._feed_hub_objects()

    def _create_pods(self, client: str, plans: list[Any]) -> int:
        c = self.clusters[client]
        assert c.visible, "a pod was created through a connection that cannot answer"
        for plan in plans:
            manifest = dict(plan.manifest)
            manifest["status"] = {"phase": "Running"}  # its node starts it at once
            manifest.setdefault("metadata", {}).setdefault("namespace", plan.namespace)
            record = PodRecord.from_dict(manifest)
            c.pods.setdefault(record.key, Pod(record))
        return len(plans)

    def _delete_pods(self, client: str, keys: list[str]) -> int:
        c = self.clusters[client]
        assert c.visible
        for key in keys:
            c.pods.pop(key, None)
        return len(keys)

    # -- fleet operations ----------------------------------------------------------------------
    @rule(
        residency=st.sampled_from(sorted(RESIDENCIES)),
        on_loss=st.sampled_from(["Requeue", "Wait"]),
        prefer=st.sampled_from([None, "ams", "par"]),
    )
    @then_cycle
    def submit(self, residency: str, on_loss: str, prefer: str | None) -> None:
        name = f"w{len(self.workloads)}"
        self.workloads.append(name)
        self._workload(name, "team", "nvidia-h100", RESIDENCIES[residency], on_loss, prefer)

    @rule(data=st.data())
    @then_cycle
    def finish(self, data: st.DataObject) -> None:
        """A running workload's containers exit 0 (its pods say Succeeded)."""
        running = sorted(
            (n, k)
            for n, c in self.clusters.items()
            for k, p in c.pods.items()
            if p.running and p.record.phase == "Running"
        )
        if not running:
            return
        name, key = data.draw(st.sampled_from(running))
        pod = self.clusters[name].pods[key]
        pod.running = False
        pod.record = replace(pod.record, phase="Succeeded")

    @rule()
    def cycle(self) -> None:
        self._cycle()

    @rule(member=st.sampled_from(MEMBERS))
    @then_cycle
    def cut_link(self, member: str) -> None:
        self.clusters[member].link_up = False

    @rule(member=st.sampled_from(MEMBERS))
    @then_cycle
    def restore_link(self, member: str) -> None:
        self.clusters[member].link_up = True

    @rule(member=st.sampled_from(MEMBERS))
    @then_cycle
    def kill_control_plane(self, member: str) -> None:
        """The API server dies; the kubelets keep the containers running."""
        c = self.clusters[member]
        c.api_up = False
        c.agent_silence = 0  # the agent cannot read: what it saw is void

    @rule(member=st.sampled_from(MEMBERS))
    @then_cycle
    def revive_control_plane(self, member: str) -> None:
        self.clusters[member].api_up = True

    @rule(member=st.sampled_from(MEMBERS))
    @then_cycle
    def agent_looks(self, member: str) -> None:
        """The agent's look at its Lease: silence counts only while it can read it; after
        enough (the fence time), it deletes our pods and records the fence."""
        c = self.clusters[member]
        if not c.api_up:
            c.agent_silence = 0
            return
        if c.link_up:
            c.agent_silence = 0  # the operator renews while it can reach it
            return
        c.agent_silence += 1
        if c.agent_silence >= 3:
            for pod in list(c.pods.values()):
                c.pods.pop(pod.record.key)
            c.fence_record = FenceRecord(str(c.lease_version), _rfc(self.now), True)

    @rule(member=st.sampled_from(MEMBERS))
    def agent_restarts(self, member: str) -> None:
        # A restarted agent counts from the Lease's renewTime: no earlier, no later fence.
        pass

    @precondition(lambda self: any(not c.visible for n, c in self.clusters.items() if n != HUB))
    @rule(data=st.data())
    @then_cycle
    def declare_lost(self, data: st.DataObject) -> None:
        """A person powers the silent site's nodes off, then declares it lost."""
        silent = sorted(n for n, c in self.clusters.items() if n != HUB and not c.visible)
        member = data.draw(st.sampled_from(silent))
        for pod in self.clusters[member].pods.values():
            pod.running = False  # the objects stay: its API server may be dead
        body = self.hub.objects[("Site", member)]
        body["spec"]["lossDeclaration"] = {
            "by": "oncall@example.com",
            "at": _rfc(self.now + 1),
            "method": "Manual",
        }
        self.hub.put("Site", member, body)
        self.declared.add(member)

    @rule()
    @then_cycle
    def restart_operator(self) -> None:
        self._start_operator()

    @rule(node=st.sampled_from(["fra-0", "fra-1"]), site=st.sampled_from(["fra", "retired"]))
    @then_cycle
    def relabel(self, node: str, site: str) -> None:
        """A node taken out of fra or given back (its place does not change)."""
        self.clusters[HUB].nodes[node]["site"] = site

    @rule(node=st.sampled_from(["fra-0", "fra-1"]), pool=st.sampled_from(["gpu", "gpu-b"]))
    @then_cycle
    def relabel_pool(self, node: str, pool: str) -> None:
        """A node moved between fra's GPU pools (gpu-b exists once `second_pool_at_fra`)."""
        self.clusters[HUB].nodes[node]["pool"] = pool

    @rule()
    @then_cycle
    def second_pool_at_fra(self) -> None:
        """A second pool whose selector overlaps the first on fra's nodes."""
        self._pool("fra-gpu-b", "fra", "nvidia-h100", {"site": "fra"})

    @rule()
    @then_cycle
    def hostile_local_site_over_fra(self) -> None:
        """A French local Site whose selector takes fra's German nodes."""
        self._site("fr", "FR", local={"matchLabels": {"site": "fra"}})
        self._pool("fr-gpu", "fr", "nvidia-h100", {"pool": "gpu"})

    @rule()
    @then_cycle
    def second_site_on_ams(self) -> None:
        """A French Site whose kubeconfig reaches ams's cluster."""
        if "ams-fr" not in self.clusters:
            self.clusters["ams-fr"] = self.clusters["ams"]  # the same cluster, another name
        self._site("ams-fr", "FR")
        self._pool("ams-fr-gpu", "ams-fr", "nvidia-h100", {"pool": "gpu"})

    @rule(kind=st.sampled_from(["cycle", "orphan", "child-of-busy", "self-loop-below"]))
    @then_cycle
    def hostile_queue(self, kind: str) -> None:
        if kind == "cycle":
            self._queue("loop-a", parent="loop-b")
            self._queue("loop-b", parent="loop-a")
        elif kind == "orphan":
            self._queue("orphan", parent="nowhere")
        elif kind == "child-of-busy":
            self._queue("team-child", parent="team")
        else:
            self._queue("under-loop", parent="loop-a")

    @rule(kind=st.sampled_from(["cycle", "orphan", "child-of-busy"]))
    @then_cycle
    def work_on_hostile_queue(self, kind: str) -> None:
        queue = {"cycle": "loop-a", "orphan": "orphan", "child-of-busy": "team-child"}[kind]
        name = f"w{len(self.workloads)}"
        self.workloads.append(name)
        self._workload(name, queue, "nvidia-h100", None, "Requeue")

    @rule()
    def canary_is_admitted(self) -> None:
        """A healthy workload submitted during any fault is admitted by the next cycle."""
        name = f"canary{self.canaries}"
        self.canaries += 1
        self._workload(name, "canary", "nvidia-l4", {"regions": ["EU"]}, "Wait")
        self._cycle()
        status = self.hub.objects[("Workload", f"ns/{name}")].get("status") or {}
        assert status.get("phase") in ("Admitted", "Running"), status
        del self.hub.objects[("Workload", f"ns/{name}")]
        self.cache.put_object("Workload", f"ns/{name}", None)
        self._cycle()  # its pod goes as a stray: the canary node is free again

    # -- invariants, from the clusters' truth ---------------------------------------------------
    def _running(self) -> dict[str, set[str]]:
        """workload key -> the clusters (by identity) where its containers run."""
        out: dict[str, set[str]] = {}
        for c in {id(c): c for c in self.clusters.values()}.values():
            for pod in c.pods.values():
                if pod.running and pod.record.workload_key is not None:
                    out.setdefault(pod.record.workload_key, set()).add(c.identity)
        return out

    @invariant()
    def never_running_at_two_sites(self) -> None:
        if not hasattr(self, "clusters"):
            return
        for key, where in self._running().items():
            assert len(where) <= 1, f"{key} runs in {sorted(where)}"

    @invariant()
    def no_residency_violation(self) -> None:
        if not hasattr(self, "clusters"):
            return
        names: dict[str, str] = {}
        for n, c in self.clusters.items():
            names.setdefault(c.identity, n)  # the cluster's own name, not a second Site's
        for c in {id(c): c for c in self.clusters.values()}.values():
            for pod in c.pods.values():
                key = pod.record.workload_key
                if not pod.running or key is None:
                    continue
                body = self.hub.objects.get(("Workload", key))
                if body is None:
                    continue
                residency = body["spec"].get("residency") or {}
                real = PLACE[names[c.identity]]
                if "jurisdictions" in residency:
                    assert real in residency["jurisdictions"], f"{key} on {real}"
                if "regions" in residency:
                    assert real in ("DE", "NL", "FR"), f"{key} on {real}"


def _rfc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


FleetMachine.TestCase.settings = settings(settings.default, stateful_step_count=20, deadline=None)
test_fleet_under_faults = FleetMachine.TestCase
