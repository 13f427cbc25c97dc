"""The hand-off, judged from the clusters' own record (e2e/pod_log.py)."""

from __future__ import annotations

from dataclasses import dataclass

from e2e.operator_harness import wait_for
from e2e.pod_log import PodEntry, PodLog


@dataclass(frozen=True)
class HandOff:
    """One preemptor pod and the victim pods that were on its node."""

    node: str
    preemptor: PodEntry
    victims: tuple[PodEntry, ...]

    def line(self) -> str:
        v = max(self.victims, key=lambda e: e.gone_at or 0)
        asked = v.delete_asked_at or 0
        return (
            f"{self.node}: victim {v.key} delete seen {asked:.1f}, grace {v.deletion_grace}s,"
            f" gone {v.gone_at:.1f} (+{(v.gone_at or 0) - asked:.1f}s, rv {v.gone_rv});"
            f" preemptor {self.preemptor.key} created {self.preemptor.created_at:.0f}"
            f" (seen {self.preemptor.seen_at:.1f}, +{self.preemptor.seen_at - (v.gone_at or 0):.1f}s"
            f" after the victim was gone; rv {self.preemptor.created_rv})"
        )


def assert_handed_off(
    log: PodLog, victims: list[str], preemptors: list[str], grace: int
) -> list[HandOff]:
    """Every victim pod was deleted with `grace`; every preemptor pod was created after
    every victim pod on its node was gone, in its cluster's own order of events."""

    def settled() -> tuple[list[PodEntry], list[PodEntry]] | None:
        v = [e for w in victims for e in log.of(w) if e.delete_asked_at is not None]
        p = [e for w in preemptors for e in log.of(w)]
        return (v, p) if v and p and all(e.gone_rv is not None for e in v) else None

    gone, created = wait_for("the victims' pods to be gone in the pod log", settled, timeout=120)
    wrong_grace = [(e.key, e.deletion_grace) for e in gone if e.deletion_grace != grace]
    assert not wrong_grace, f"victim pods not deleted with grace {grace}s: {wrong_grace}"
    out = []
    for p in created:
        on_node = tuple(v for v in gone if v.cluster == p.cluster and v.node == p.node)
        if not on_node:
            continue
        early = [v.key for v in on_node if (v.gone_rv or 0) > p.created_rv]
        assert not early, f"{p.key} was created on {p.node} before {early} were gone"
        out.append(HandOff(p.node or "", p, on_node))
    assert out, "no preemptor pod landed where a victim had been: nothing was handed off"
    for h in out:
        print("hand-off:", h.line())
    return out
