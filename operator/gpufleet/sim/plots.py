"""PNG charts of a comparison (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gpufleet.sim.engine import RunResult  # noqa: E402
from gpufleet.sim.frag import FragReport  # noqa: E402
from gpufleet.sim.metrics import PolicyMetrics  # noqa: E402


def allocation(results: Sequence[RunResult], metrics: Sequence[PolicyMetrics], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    start = min((o.job.arrival for r in results for o in r.outcomes), default=0.0)
    for result, m in zip(results, metrics, strict=True):
        tl = result.timeline
        end = start + m.horizon_seconds
        keep = tl.times <= end
        hours = (tl.times[keep] - start) / 3600
        share = tl.allocated[keep] / m.capacity_gpus
        ax.step(
            hours,
            share,
            where="post",
            linewidth=0.8,
            label=f"{m.policy} (mean {m.allocation_mean:.1%})",
        )
    if metrics:
        ax.axhline(
            metrics[0].allocation_bound,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"bound (offered load) {metrics[0].allocation_bound:.1%}",
        )
    ax.set_xlabel("hours since first arrival")
    ax.set_ylabel("GPUs allocated / capacity")
    ax.set_ylim(0, 1.05)
    ax.set_title("GPU allocation over time")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def wait_cdf(results: Sequence[RunResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results:
        waits = np.sort([o.waited for o in result.outcomes if o.end is not None])
        if waits.size == 0:
            continue
        ax.step(
            waits + 1, np.arange(1, waits.size + 1) / waits.size, where="post", label=result.policy
        )
    ax.set_xscale("log")
    ax.set_xlabel("wait + 1 s (log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("Wait time CDF")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def queue_shares(metrics: Sequence[PolicyMetrics], path: Path) -> None:
    if not metrics:
        return
    queues = list(metrics[0].queue_share)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(metrics)
    x = np.arange(len(queues))
    for i, m in enumerate(metrics):
        ax.bar(x + i * width, [m.queue_share[q] for q in queues], width, label=m.policy)
        ax.scatter(
            x + i * width,
            [m.queue_fair_share[q] for q in queues],
            marker="_",
            s=200,
            color="black",
            zorder=3,
            label="fair share" if i == 0 else None,
        )
    ax.set_xticks(x + 0.4 - width / 2, queues)
    ax.set_ylabel("mean share of the fleet")
    ax.set_title("Each queue's share against its fair share (black marks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fragmentation(report: FragReport, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    levels = [lv.level * 100 for lv in report.levels]
    for policy in report.levels[0].unallocated if report.levels else []:
        ax.plot(levels, [lv.unallocated[policy] for lv in report.levels], marker="o", label=policy)
    ax.set_xlabel("GPUs asked, % of capacity")
    ax.set_ylabel("GPUs left unallocated")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evictions_per_job(results: Sequence[RunResult], path: Path) -> None:
    """How many jobs were evicted 1, 2, 3, ... times, per policy (log scale)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    most = max((o.preempted for r in results for o in r.outcomes), default=0)
    counts = np.arange(1, max(most, 2) + 1)
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        per = np.bincount([o.preempted for o in r.outcomes], minlength=counts[-1] + 1)[1:]
        ax.bar(counts + (i - (len(results) - 1) / 2) * width, per, width, label=r.policy)
    ax.set_xlabel("evictions of one job")
    ax.set_ylabel("jobs")
    ax.set_xticks(counts)
    if most > 0:
        ax.set_yscale("log")
    ax.set_title("Evictions per job (jobs never evicted not shown)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_all(
    results: Sequence[RunResult],
    metrics: Sequence[PolicyMetrics],
    directory: Path,
    suffix: str = "",
) -> list[Path]:
    """The charts of one replay; `suffix` tells the files of several replays apart."""
    directory.mkdir(parents=True, exist_ok=True)
    names = ("allocation", "wait-cdf", "queue-shares", "evictions-per-job")
    paths = [directory / f"{n}{suffix}.png" for n in names]
    allocation(results, metrics, paths[0])
    wait_cdf(results, paths[1])
    queue_shares(metrics, paths[2])
    evictions_per_job(results, paths[3])
    return paths
