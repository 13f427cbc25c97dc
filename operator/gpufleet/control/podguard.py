"""The security gate of the scheduling loop: templates, target namespaces, and the pods built.

Three calls from ``control/loop.py``, each one marked there:

* ``screen`` after translation: workloads whose template breaks their queue's
  policy are set aside with ``InvalidSpec`` (``observed/podpolicy.py``);
* ``refuse`` before admissions (and the evictions for them) are recorded: an admission into a namespace
  that already exists in the target cluster with a weaker Pod Security
  ``enforce`` label than the queue's level is not recorded; the workload stays
  pending with a ``NamespacePodSecurity`` verdict and a Warning Event saying
  which label to set. gpufleet never relabels a namespace it did not create
  (its member credentials cannot even patch namespaces);
* ``harden`` on every pod about to be created: the template is checked again
  (a workload admitted under older rules is not dispatched under newer ones),
  the service account token is switched off unless the queue allows it, and a
  namespace gpufleet creates carries the queue's Pod Security labels.

``GPUFLEET_UNSAFE_SKIP_TEMPLATE_CHECKS=1`` switches the template checks off (never the
namespace rules): the tests use it to show that a member's own Pod Security admission still
refuses a privileged pod in a namespace gpufleet created.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

from gpufleet import core
from gpufleet.api.podsecurity import enforced_level, looser_than, namespace_labels
from gpufleet.api.podtemplate import TemplatePolicy
from gpufleet.api.v1alpha1 import Workload
from gpufleet.control.statuses import pending_status
from gpufleet.observed.cache import CacheView
from gpufleet.observed.podpolicy import VerdictCache, refusal, screen
from gpufleet.observed.records import LABEL_MANAGED, MANAGED_BY
from gpufleet.observed.translate import Inputs
from gpufleet.sites.dispatch import PodPlan

log = logging.getLogger(__name__)
SKIP_ENV = "GPUFLEET_UNSAFE_SKIP_TEMPLATE_CHECKS"

WriteWorkload = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]
PostEvent = Callable[[dict[str, Any], str, str, str], None]


def namespace_refusal(
    view: CacheView, cluster: str, namespace: str, policy: TemplatePolicy
) -> str | None:
    """Why gpufleet may not dispatch into ``namespace`` of ``cluster``; None when it may.

    A namespace not (yet) seen is fine only once the cluster's namespaces are listed:
    gpufleet then creates it with the right labels. Until then nobody knows, so: wait.
    """
    state = view.clusters.get(cluster)
    if state is None or "namespaces" not in state.synced:
        return f"the namespaces of cluster {cluster} are not listed yet"
    labels = state.namespaces.get(namespace)
    if labels is None:
        return None
    level = enforced_level(labels)
    if not looser_than(level, policy.level):
        return None
    shown = labels.get("pod-security.kubernetes.io/enforce", "no label (privileged)")
    return (
        f"namespace {namespace} in cluster {cluster} enforces Pod Security {shown}, looser than"
        f" the queue's {policy.level}; gpufleet does not relabel namespaces it did not create."
        f" Ask the cluster's admin to run: kubectl label namespace {namespace}"
        f" pod-security.kubernetes.io/enforce={policy.level}"
    )


class PodGuard:
    def __init__(self, *, checks: bool | None = None) -> None:
        self.checks = os.environ.get(SKIP_ENV) != "1" if checks is None else checks
        if not self.checks:
            log.warning("%s=1: workload templates are NOT checked (tests only)", SKIP_ENV)
        self.cache = VerdictCache()
        self.policies: dict[str, TemplatePolicy] = {}

    def screen(self, inputs: Inputs) -> None:
        self.policies = screen(inputs, self.cache, enabled=self.checks)

    def refuse(
        self,
        view: CacheView,
        inputs: Inputs,
        result: core.CycleResult,
        write: WriteWorkload,
        event: PostEvent,
        now: float,
    ) -> set[str]:
        """The admissions not to record (their target namespace is too loose), each told why."""
        refused: set[str] = set()
        for a in result.admissions:
            model = inputs.workload_models.get(a.workload)
            body = view.workloads.get(a.workload)
            policy = self.policies.get(model.spec.queue) if model is not None else None
            cluster = inputs.site_cluster.get(a.site)
            if model is None or body is None or policy is None or cluster is None:
                continue
            why = namespace_refusal(view, cluster, model.metadata.namespace or "", policy)
            if why is None:
                continue
            refused.add(a.workload)
            verdict = core.SiteVerdict(
                site=a.site,
                rule="NamespacePodSecurity",
                message=why,
                nearest_change=f"label the namespace pod-security.kubernetes.io/enforce={policy.level}",
            )
            patch = pending_status(body, [verdict], None, now)
            if patch is not None and write(body, patch) is not None:
                event(body, "Warning", "NamespacePodSecurity", why)
        return refused

    def harden(self, body: dict[str, Any], plans: list[PodPlan]) -> list[PodPlan]:
        """The plans to create, made safe; none when the workload may not be dispatched."""
        if not plans:
            return plans
        try:
            model = Workload.model_validate(body)
        except ValueError:
            return []
        policy = self.policies.get(model.spec.queue)
        if policy is None:
            log.warning("not dispatching %s: its queue is unknown", plans[0].namespace)
            return []
        if self.checks:
            findings = self.cache.check(model, policy)
            if findings:
                log.warning(
                    "not dispatching %s/%s: %s",
                    plans[0].namespace,
                    model.metadata.name,
                    refusal(findings).message,
                )
                return []
        labels = {**namespace_labels(policy.level), LABEL_MANAGED: MANAGED_BY}
        out = []
        for plan in plans:
            manifest = copy.deepcopy(plan.manifest)
            if not policy.automount_token:
                manifest["spec"]["automountServiceAccountToken"] = False
            out.append(dataclasses.replace(plan, manifest=manifest, namespace_labels=labels))
        return out
