"""A fake `FleetView` (plain lists the tests mutate between scrapes) and a small fleet."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpufleet.metrics import (
    PoolState,
    QueueShare,
    SiteConnection,
    SiteState,
    WorkloadGroup,
    WorkloadPhase,
)


@dataclass
class FakeFleet:
    """Plain lists the tests mutate between scrapes."""

    site_states: list[SiteState] = field(default_factory=list)
    pool_states: list[PoolState] = field(default_factory=list)
    shares: list[QueueShare] = field(default_factory=list)
    groups: list[WorkloadGroup] = field(default_factory=list)

    def sites(self) -> list[SiteState]:
        return self.site_states

    def pools(self) -> list[PoolState]:
        return self.pool_states

    def queue_shares(self) -> list[QueueShare]:
        return self.shares

    def workload_groups(self) -> list[WorkloadGroup]:
        return self.groups


def small_fleet() -> FakeFleet:
    return FakeFleet(
        site_states=[
            SiteState(
                name="factory-muc",
                connection=SiteConnection.CONNECTED,
                power_in_use_watts=42_000,
                power_budget_watts=500_000,
            ),
            SiteState(
                name="onprem-par",
                connection=SiteConnection.DISCONNECTED,
                power_in_use_watts=0,
            ),
        ],
        pool_states=[
            PoolState(
                name="h200-a",
                site="factory-muc",
                accelerator_class="nvidia-h200",
                capacity=64,
                allocated=40,
                free=24,
            ),
            PoolState(
                name="h100-a",
                site="onprem-par",
                accelerator_class="nvidia-h100",
                capacity=16,
                allocated=0,
                free=8,
            ),
        ],
        shares=[
            QueueShare(
                queue="vision",
                accelerator_class="nvidia-h200",
                deserved=16,
                fair_share=24.5,
                allocated=32,
                pending=8,
            ),
            QueueShare(
                queue="nlp",
                accelerator_class="nvidia-h200",
                deserved=16,
                fair_share=16,
                allocated=8,
                pending=32,
            ),
        ],
        groups=[
            WorkloadGroup(queue="vision", phase=WorkloadPhase.RUNNING, count=4),
            WorkloadGroup(
                queue="nlp", phase=WorkloadPhase.PENDING, count=3, oldest_since=1_700_000_000
            ),
        ],
    )
