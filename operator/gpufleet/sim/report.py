"""Human and machine views of the results: rich tables, Markdown for docs, JSON."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from gpufleet.sim.frag import FragReport
from gpufleet.sim.metrics import PolicyMetrics

# (header, how to show a policy's value); one place so the terminal and docs agree.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("policy", "policy"),
    ("alloc / bound", "alloc"),
    ("wait", "wait_mean"),
    ("wait p99", "wait_p99"),
    ("JCT", "jct_mean"),
    ("JCT p99", "jct_p99"),
    ("makespan / LB", "makespan"),
    ("Jain", "jain"),
    ("frag", "frag"),
    ("idle", "idle"),
    ("preempt", "preemptions"),
    ("max / job", "max_evictions"),
    ("lost GPU-h", "lost"),
)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def cells(m: PolicyMetrics) -> dict[str, str]:
    return {
        "policy": m.policy,
        "alloc": f"{m.allocation_mean:.1%} / {m.allocation_bound:.1%}",
        "wait_mean": duration(m.wait_mean),
        "wait_p99": duration(m.wait_p99),
        "jct_mean": duration(m.jct_mean),
        "jct_p99": duration(m.jct_p99),
        "makespan": f"{duration(m.makespan)} / {duration(m.makespan_lower_bound)}",
        "jain": f"{m.jain_fairness:.3f}",
        "frag": f"{m.fragmented_gpus:.1f}",
        "idle": f"{m.idle_gpus_while_waiting:.1f}",
        "preemptions": str(m.preemptions),
        "max_evictions": str(m.max_evictions_per_job),
        "lost": f"{m.lost_gpu_hours:.1f} ({m.lost_gpu_hours / max(m.gpu_hours, 1e-9):.2%})",
    }


LEGEND = (
    "alloc: mean GPUs allocated / capacity over the arrival window, and its bound (offered"
    " load); wait, JCT: means; LB: makespan lower bound; Jain: fairness across queues"
    " (1 = each got its fair share); frag / idle: free GPUs no waiting job can use / all"
    " free GPUs, averaged while jobs wait; preempt: evictions; max / job: most evictions"
    " of one job; lost GPU-h: work evictions threw away (share of all GPU-hours)."
)


def metrics_table(metrics: Sequence[PolicyMetrics], title: str) -> Table:
    table = Table(title=title, caption=LEGEND)
    for header, key in _COLUMNS:
        table.add_column(header, justify="left" if key == "policy" else "right")
    for m in metrics:
        row = cells(m)
        table.add_row(*(row[key] for _, key in _COLUMNS))
    return table


def metrics_markdown(metrics: Sequence[PolicyMetrics]) -> str:
    lines = [
        "| " + " | ".join(h for h, _ in _COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in _COLUMNS) + "|",
    ]
    for m in metrics:
        row = cells(m)
        lines.append("| " + " | ".join(row[key] for _, key in _COLUMNS) + " |")
    return "\n".join(lines) + "\n\n" + LEGEND + "\n"


def _frag_rows(report: FragReport) -> tuple[list[str], list[list[str]]]:
    policies = list(report.levels[0].unallocated) if report.levels else []
    header = ["asked / capacity", "GPUs asked", *policies]
    rows = [
        [
            f"{lv.level:.0%}",
            str(lv.requested_gpus),
            *(
                f"{lv.unallocated[p]} ({lv.unallocated[p] / report.capacity_gpus:.1%})"
                for p in policies
            ),
        ]
        for lv in report.levels
    ]
    if report.evictions:
        rows.append(["evictions", "", *(str(report.evictions.get(p, 0)) for p in policies)])
    return header, rows


def frag_table(report: FragReport, title: str) -> Table:
    header, rows = _frag_rows(report)
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def frag_markdown(report: FragReport) -> str:
    header, rows = _frag_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
