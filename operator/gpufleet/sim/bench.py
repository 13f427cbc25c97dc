"""`make bench-sim`: the openb comparison, written under docs/sim/.

    python -m gpufleet.sim.bench --out docs/sim [--data DIR]

1. Replay: the 8,152-pod openb default list (7,064 GPU pods) re-timed as a Poisson
   process at offered load 0.9 (seed 1) on an eighth of the openb GPU nodes (the whole
   node list holds all pods at once, so it never queues), four queues with deserved
   shares 40/30/20/10 %, a 10 s scheduling cycle, all four policies.
2. Fill to saturation (openb paper): the whole GPU node list, pods drawn from the
   default and the multigpu20 lists (and its multi-GPU pods alone) with their CPU and
   memory, 50 pods per cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from gpufleet.sim import plots, report
from gpufleet.sim.compare import compare
from gpufleet.sim.fleetsource import load_sim_fleet
from gpufleet.sim.frag import FragReport, fill_experiment
from gpufleet.sim.jobs import Trace
from gpufleet.sim.metrics import PolicyMetrics
from gpufleet.sim.openb import read_pods
from gpufleet.sim.policies.registry import POLICIES, make
from gpufleet.sim.setup import prepare
from gpufleet.sim.tenants import assign_queues, default_queues

# The repository sits next to shared/ (as in CI); the data is read there, never copied.
DATA = Path(__file__).resolve().parents[3].parent / "shared/data/traces/alibaba-openb-2023"
NODES = "openb_node_list_gpu_node.csv"


# Every openb pod list with times (the others, multigpu20, serve the fill experiment).
TIMED_TRACES = ("openb_pod_list_default.csv", "openb_pod_list_gpushare40.csv")
# The default list again with a third of its pods constrained to GPU models (none of
# the lists here names one; openb's gpuspec lists do): where classes, not just nodes,
# decide who may reclaim what.
CONSTRAINED = ("openb_pod_list_default.csv", 0.33)


class ReplaySettings(BaseModel):
    trace: str = "openb_pod_list_default.csv"
    fleet_fraction: float = 0.125
    load: float = 0.9
    seed: int = 1
    constrain_models: float | None = None
    queues: int = 4
    shares: str = "0.4,0.3,0.2,0.1"
    cycle_seconds: float = 10.0


class FragSettings(BaseModel):
    # (pod list, smallest pod kept): whole-GPU allocation leaves 1-GPU pods no gaps to
    # strand, so the third run keeps only multi-GPU pods, where packing matters.
    runs: tuple[tuple[str, int], ...] = (
        ("openb_pod_list_default.csv", 1),
        ("openb_pod_list_multigpu20.csv", 1),
        ("openb_pod_list_multigpu20.csv", 2),
    )
    batch: int = 50
    seed: int = 0


class ReplayOutcome(BaseModel):
    settings: ReplaySettings
    jobs: int
    nodes: int
    capacity_gpus: int
    wall_seconds_all_policies: float
    policies: list[PolicyMetrics]


def run_replay(
    data: Path, out: Path, console: Console, trace_name: str, constrain: float | None = None
) -> ReplayOutcome:
    settings = ReplaySettings(trace=trace_name, constrain_models=constrain)
    trace, fleet, queues = prepare(
        data / NODES,
        data / settings.trace,
        fleet_fraction=settings.fleet_fraction,
        queue_count=settings.queues,
        shares=settings.shares,
        load=settings.load,
        seed=settings.seed,
        constrain=settings.constrain_models,
    )
    started = time.perf_counter()
    result = compare(trace, fleet, queues, list(POLICIES), settings.cycle_seconds)
    wall = time.perf_counter() - started
    title = f"openb replay, {trace_name}{_constrained(constrain)}: {wall:.1f} s"
    console.print(report.metrics_table(result.metrics, title))
    plots.write_all(result.results, result.metrics, out, _suffix(trace_name, constrain))
    return ReplayOutcome(
        settings=settings,
        jobs=len(trace.jobs),
        nodes=len(fleet.nodes),
        capacity_gpus=fleet.total_gpus,
        wall_seconds_all_policies=wall,
        policies=result.metrics,
    )


def run_frag(data: Path, out: Path, console: Console) -> list[tuple[str, FragReport, float]]:
    settings = FragSettings()
    fleet = load_sim_fleet(data / NODES)
    queues = default_queues(4)
    done = []
    for name, min_gpus in settings.runs:
        raw, _ = read_pods(data / name)
        pods = [p.job(i, arrival=0.0, runtime=1.0) for i, p in enumerate(raw) if p.gpus >= min_gpus]
        pods = list(assign_queues(Trace(tuple(pods), name), queues).jobs)
        started = time.perf_counter()
        rep = fill_experiment(
            pods, fleet, queues, make(list(POLICIES), pods), seed=settings.seed,
            batch=settings.batch,
        )  # fmt: skip
        wall = time.perf_counter() - started
        stem = name.removeprefix("openb_pod_list_").removesuffix(".csv")
        stem += f"-min{min_gpus}gpu" if min_gpus > 1 else ""
        console.print(report.frag_table(rep, f"fill to saturation, {stem} ({wall:.1f} s)"))
        plots.fragmentation(rep, out / f"frag-{stem}.png", f"Fill to saturation: {stem} pod list")
        done.append((stem, rep, wall))
    return done


def _suffix(trace_name: str, constrain: float | None = None) -> str:
    """Chart file suffix: none for the default list (the names the docs link to)."""
    stem = trace_name.removeprefix("openb_pod_list_").removesuffix(".csv")
    models = "" if constrain is None else f"-models{round(constrain * 100)}"
    return "" if stem == "default" and not models else f"-{stem}{models}"


def _constrained(constrain: float | None) -> str:
    return "" if constrain is None else f", {constrain:.0%} of pods constrained to GPU models"


def summary(replays: list[ReplayOutcome], frag: list[tuple[str, FragReport, float]]) -> str:
    """docs/sim/README.md: the tables and charts, with the settings that produced them."""
    parts = [
        "# openb comparison\n\nGenerated by `make bench-sim` (`python -m gpufleet.sim.bench"
        " --out docs/sim`); do not edit by hand. What the columns mean and how the replay"
        " works: [../simulator.md](../simulator.md).\n",
    ]
    for replay in replays:
        parts += _replay_section(replay)
    parts += [
        "## Fill to saturation\n",
        "Pods drawn (seeded, with replacement) from a pod list arrive and never leave, with"
        " their CPU and memory, on all"
        f" {frag[0][1].capacity_gpus if frag else 0} GPUs of the openb GPU node list;"
        f" {FragSettings().batch} pods arrive before each scheduling cycle. The table gives"
        " the GPUs left unallocated after the batch in which the pods asked reach each share"
        " of capacity; the last row, each policy's evictions over the fill. A GPU is left"
        " unallocated when no pod fits the node's remaining cores and memory: why the"
        " policies differ is in [../simulator.md](../simulator.md).\n",
    ]
    for stem, rep, wall in frag:
        parts.append(f"### `{stem}` pod list ({rep.pods_drawn} pods drawn, {wall:.1f} s)\n")
        parts.append(report.frag_markdown(rep))
        parts.append(f"![Fill to saturation, {stem}](frag-{stem}.png)\n")
    return "\n".join(parts)


def _replay_section(replay: ReplayOutcome) -> list[str]:
    s = replay.settings
    sfx = _suffix(s.trace, s.constrain_models)
    models = ""
    if s.constrain_models is not None:
        models = (
            f" {s.constrain_models:.0%} of the pods, drawn with the seed, need one GPU model"
            " or either of two (`--constrain-models"
            f" {s.constrain_models:g}`: models drawn by their GPUs in the fleet, only those"
            " with a node that holds the pod), so the gpufleet policy sees one class per"
            " model."
        )
    return [
        f"## Replay: `{s.trace}`{_constrained(s.constrain_models)}\n",
        f"{replay.jobs} GPU pods of `{s.trace}` re-timed as a Poisson process at offered load"
        f" {s.load} (seed {s.seed}) on {replay.nodes} nodes / {replay.capacity_gpus} GPUs"
        f" (a {s.fleet_fraction:g} slice of each openb GPU model's nodes), {s.queues} queues"
        f" (pods spread by a hash of their name) with deserved shares {s.shares}, one"
        f" scheduling cycle every {s.cycle_seconds:g} s. The four replays together took"
        f" **{replay.wall_seconds_all_policies:.1f} s** on the machine that wrote this page"
        f" ({os.cpu_count()} CPUs, Python {platform.python_version()}).{models}\n",
        report.metrics_markdown(replay.policies),
        f"![GPU allocation over time](allocation{sfx}.png)\n",
        f"![Wait time CDF](wait-cdf{sfx}.png)\n",
        f"![Queue shares against fair shares](queue-shares{sfx}.png)\n",
        f"![Evictions per job](evictions-per-job{sfx}.png)\n",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="The openb comparison of gpufleet.sim.")
    parser.add_argument("--out", type=Path, default=Path("docs/sim"))
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    console = Console()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    replays = [run_replay(args.data, out, console, name) for name in TIMED_TRACES]
    replays.append(run_replay(args.data, out, console, *CONSTRAINED))
    frag = run_frag(args.data, out, console)
    results = {
        "replays": [r.model_dump() for r in replays],
        "frag": [
            {"pod_list": stem, "wall_seconds": wall, **rep.model_dump()} for stem, rep, wall in frag
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "README.md").write_text(summary(replays, frag))
    console.print(f"wrote {out}/README.md, results.json and the charts")


if __name__ == "__main__":
    main()
