"""The admission gate for pod templates: each queue's policy, and the workloads that break it.

Pure. After translation, every workload not yet placed is checked against its
queue's :class:`TemplatePolicy` (Pod Security level inherited down the queue
tree, service accounts, token); one that fails is taken out of the core's
input and set aside with an ``InvalidSpec`` verdict naming the field and rule,
so it is never admitted and never reaches a member. Verdicts are cached per
workload generation and policy, so an unchanged workload is not checked again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpufleet import core
from gpufleet.api.podsecurity import LEVELS, Level, looser_than, stricter
from gpufleet.api.podtemplate import ACCELERATOR_RESOURCES, Finding, TemplatePolicy, check_workload
from gpufleet.api.v1alpha1 import Queue, Workload
from gpufleet.observed.translate import Inputs

DEFAULT_LEVEL: Level = "baseline"
_MAX_CACHED = 50_000


@dataclass
class VerdictCache:
    """Findings by (workload, uid, generation, policy); kept by the caller across cycles.

    The key is read off the metadata (a dictionary lookup): the generation changes with every
    spec change and with nothing else, and the name and uid pin the object. Hashing the
    template instead was measured to cost more than checking it again.
    """

    entries: dict[tuple[str, str, str, TemplatePolicy], tuple[Finding, ...]] = field(
        default_factory=dict
    )
    hits: int = 0
    misses: int = 0

    def check(self, workload: Workload, policy: TemplatePolicy) -> tuple[Finding, ...]:
        meta = workload.metadata
        name = meta.name or ""
        version = str(meta.generation) if meta.generation is not None else ""
        if not version:
            # Without a generation (objects built by hand), nothing says the spec is unchanged.
            self.misses += 1
            return self._check(workload, name, policy)
        key = (f"{meta.namespace}/{name}", meta.uid or "", version, policy)
        found = self.entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        if len(self.entries) >= _MAX_CACHED:
            self.entries.clear()
        found = self._check(workload, name, policy)
        self.entries[key] = found
        return found

    @staticmethod
    def _check(workload: Workload, name: str, policy: TemplatePolicy) -> tuple[Finding, ...]:
        template = workload.spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
        return tuple(check_workload(name, template, policy))


def queue_policies(
    queues: Mapping[str, Queue], accelerator_resources: frozenset[str] = ACCELERATOR_RESOURCES
) -> tuple[dict[str, TemplatePolicy], dict[str, str]]:
    """Each queue's effective policy, and the queues whose level is looser than their parent's.

    A queue without ``podSecurity`` inherits its parent's level (``baseline`` at a root).
    A queue that asks for a looser level than its parent is refused (the second map, by
    queue, is its message) and gets its parent's level: the tree fails closed.
    """
    levels: dict[str, Level] = {}
    refused: dict[str, str] = {}

    def level_of(name: str, seen: frozenset[str]) -> Level:
        if name in levels:
            return levels[name]
        queue = queues[name]
        parent = queue.spec.parent
        inherited: Level | None = None
        if parent is not None and parent in queues and parent not in seen:
            inherited = level_of(parent, seen | {name})
        own = queue.spec.pod_security
        if own is None:
            level = inherited or DEFAULT_LEVEL
        elif inherited is not None and looser_than(own, inherited):
            refused[name] = (
                f"spec.podSecurity: {own} is looser than {inherited}, the level of parent queue"
                f" {parent!r}; {inherited} applies until podSecurity is {inherited} or stricter"
            )
            level = inherited
        else:
            level = own
        levels[name] = level
        return level

    out: dict[str, TemplatePolicy] = {}
    for name, queue in queues.items():
        spec = queue.spec
        out[name] = TemplatePolicy(
            level=level_of(name, frozenset()),
            service_accounts=frozenset(spec.service_accounts or ()),
            automount_token=spec.automount_service_account_token,
            accelerator_resources=accelerator_resources,
        )
    return out, refused


def screen(
    inputs: Inputs, cache: VerdictCache, *, enabled: bool = True
) -> dict[str, TemplatePolicy]:
    """Set aside the workloads whose template their queue's policy refuses; return the policies.

    Placed workloads are not re-judged here (they were admitted under the rules of their
    time); dispatch checks them again before creating any pod.
    """
    resources = ACCELERATOR_RESOURCES | {p.spec.resource_name for p in inputs.pool_models.values()}
    policies, refused = queue_policies(inputs.queue_models, frozenset(resources))
    for name, message in refused.items():
        inputs.invalid.setdefault(("Queue", name), message)
    if not enabled:
        return policies
    keep: list[core.Workload] = []
    for w in inputs.workloads:
        model = inputs.workload_models.get(w.key)
        policy = policies.get(w.queue)
        if w.placement is not None or model is None or policy is None:
            keep.append(w)
            continue
        findings = cache.check(model, policy)
        if not findings:
            keep.append(w)
            continue
        inputs.blocked[w.key] = refusal(findings)
        inputs.invalid[("Workload", w.key)] = inputs.blocked[w.key].message
    inputs.workloads = keep
    return policies


def refusal(findings: tuple[Finding, ...]) -> core.SiteVerdict:
    first = findings[0]
    more = f" (and {len(findings) - 1} more: {'; '.join(str(f) for f in findings[1:4])})"
    return core.SiteVerdict(
        site="",
        rule="InvalidSpec",
        message=str(first) + (more if len(findings) > 1 else ""),
        nearest_change=f"change or remove {first.path}",
    )


__all__ = ["LEVELS", "VerdictCache", "queue_policies", "refusal", "screen", "stricter"]
