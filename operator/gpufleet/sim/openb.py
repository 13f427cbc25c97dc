"""Readers for the Alibaba "openb" GPU trace (USENIX ATC 2023).

Pod lists give, per pod, `num_gpu` and `gpu_milli` (1000 = one whole GPU); a fraction
rounds up to one whole GPU because gpufleet allocates whole accelerators (the pod keeps
its CPU and memory: it holds one GPU alone, as it would under a scheduler without GPU
sharing). `cpu_milli` and `memory_mib`, when the list has them, are asked next to the
GPUs (the whole pod's: openb pods are single pods, one replica). `gpu_spec` lists the
acceptable GPU models ('|'-separated, empty = any); creation and deletion times give
arrival and runtime. Pods that ask no GPU are skipped and counted.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpufleet.sim.fleet import SimFleet, SimNode, SimPool, SimSite
from gpufleet.sim.jobs import Job, Trace, TraceError, duplicates, read_text

_NVIDIA_MODELS = {"P100", "T4", "A10", "V100", "V100M16", "V100M32", "A100", "H100", "H800"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

POD_COLUMNS = ("name", "num_gpu", "gpu_milli")
NODE_COLUMNS = ("sn", "gpu", "model")


def accelerator_class(model: str) -> str:
    """Map an openb GPU model to an accelerator class in DNS-label form.

    Known NVIDIA models become `nvidia-<model>`; the trace's anonymised models (G2, G3)
    become `openb-<model>` so nobody mistakes them for a real product name.
    """
    raw = model.strip()
    vendor = "nvidia" if raw.upper() in _NVIDIA_MODELS else "openb"
    name = f"{vendor}-{raw.lower()}"
    if not raw or not _DNS_LABEL.match(name):
        raise ValueError(f"GPU model {model!r} does not map to a DNS-label accelerator class")
    return name


@dataclass(frozen=True, slots=True)
class OpenbPod:
    name: str
    gpus: int
    classes: frozenset[str]
    creation: float | None
    deletion: float | None
    cpu_milli: int = 0
    memory_mib: int = 0

    def job(self, job_id: int, arrival: float, runtime: float) -> Job:
        """The pod as a one-replica job: its GPUs (a fraction counts as one), CPU, memory."""
        return Job(
            id=job_id,
            name=self.name,
            arrival=arrival,
            runtime=runtime,
            per_replica=self.gpus,
            classes=self.classes,
            cpu_milli=self.cpu_milli,
            memory_mib=self.memory_mib,
        )


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    with read_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError([f"{path}:1: header: missing column(s) {', '.join(missing)}"])
        for row in reader:
            yield reader.line_num, row


# Upper bounds far above any real node or pod, so that a typo is an error naming the
# line, not an overflow in the arrays later.
_MAXIMUM = {
    "num_gpu": 1024,
    "gpu": 1024,
    "cpu_milli": 2**40,
    "memory_mib": 2**40,
    "creation_time": 2**53,
    "deletion_time": 2**53,
}


def _int(row: dict[str, str], key: str, line: int, path: Path, problems: list[str]) -> int | None:
    text = (row.get(key) or "").strip()
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{path}:{line}: {key}: must be an integer (got {text!r})")
        return None
    if value < 0:
        problems.append(f"{path}:{line}: {key}: must be >= 0 (got {value})")
        return None
    maximum = _MAXIMUM.get(key)
    if maximum is not None and value > maximum:
        problems.append(f"{path}:{line}: {key}: must be <= {maximum} (got {value})")
        return None
    return value


def _optional_int(
    row: dict[str, str], key: str, line: int, path: Path, problems: list[str]
) -> int | None:
    """A column a list may leave out (or leave empty in a row): None then."""
    if not (row.get(key) or "").strip():
        return None
    return _int(row, key, line, path, problems)


def read_pods(path: Path) -> tuple[list[OpenbPod], int]:
    """All GPU pods of a pod list, and how many CPU-only pods were skipped."""
    pods: list[OpenbPod] = []
    problems: list[str] = []
    cpu_only = 0
    names: list[tuple[int, str]] = []
    for line, row in _rows(path, POD_COLUMNS):
        names.append((line, (row.get("name") or "").strip()))
        num_gpu = _int(row, "num_gpu", line, path, problems)
        milli = _int(row, "gpu_milli", line, path, problems)
        if num_gpu is None or milli is None:
            continue
        if num_gpu == 0 and milli == 0:
            cpu_only += 1
            continue
        if milli > 1000:
            problems.append(f"{path}:{line}: gpu_milli: must be <= 1000 per GPU (got {milli})")
            continue
        spec = (row.get("gpu_spec") or "").strip()
        try:
            classes = frozenset(accelerator_class(m) for m in spec.split("|") if m.strip())
        except ValueError as exc:
            problems.append(f"{path}:{line}: gpu_spec: {exc}")
            continue
        cpu = _optional_int(row, "cpu_milli", line, path, problems)
        mem = _optional_int(row, "memory_mib", line, path, problems)
        creation = deletion = None
        if row.get("creation_time", "").strip() or row.get("deletion_time", "").strip():
            c = _int(row, "creation_time", line, path, problems)
            d = _int(row, "deletion_time", line, path, problems)
            if c is None or d is None:
                continue
            if d < c:
                problems.append(
                    f"{path}:{line}: deletion_time: must be >= creation_time ({d} < {c})"
                )
                continue
            creation, deletion = float(c), float(d)
        # A shared fraction of one GPU still takes one whole accelerator here.
        gpus = max(num_gpu, 1)
        pods.append(
            OpenbPod(row["name"].strip(), gpus, classes, creation, deletion, cpu or 0, mem or 0)
        )
    problems += duplicates(path, "name", names)
    if problems:
        raise TraceError(problems)
    return pods, cpu_only


def read_trace(path: Path, min_runtime: float = 1.0) -> Trace:
    """The pod list as a raw timeline: arrival = creation, runtime = deletion - creation."""
    pods, cpu_only = read_pods(path)
    if any(p.creation is None for p in pods):
        raise TraceError([f"{path}: creation_time/deletion_time: needed for a timeline replay"])
    t0 = min((p.creation or 0.0) for p in pods) if pods else 0.0
    jobs = [
        p.job(
            i,
            arrival=(p.creation or 0.0) - t0,
            runtime=max(min_runtime, (p.deletion or 0.0) - (p.creation or 0.0)),
        )
        for i, p in enumerate(pods)
    ]
    jobs.sort(key=lambda j: (j.arrival, j.id))
    return Trace(tuple(jobs), str(path), skipped=cpu_only, skipped_reason="asks no GPU")


def read_nodes(path: Path, site: str = "openb", jurisdiction: str = "CN") -> SimFleet:
    """A node list as a one-site fleet with one pool per GPU model; CPU-only nodes are left out."""
    problems: list[str] = []
    pools: dict[str, int] = {}
    pool_list: list[SimPool] = []
    nodes: list[SimNode] = []
    names: list[tuple[int, str]] = []
    for line, row in _rows(path, NODE_COLUMNS):
        names.append((line, (row.get("sn") or "").strip()))
        gpus = _int(row, "gpu", line, path, problems)
        if gpus is None or gpus == 0:
            continue
        try:
            cls = accelerator_class(row.get("model") or "")
        except ValueError as exc:
            problems.append(f"{path}:{line}: model: {exc}")
            continue
        if cls not in pools:
            pools[cls] = len(pool_list)
            pool_list.append(SimPool(f"{site}-{cls}", 0, cls))
        cpu = _optional_int(row, "cpu_milli", line, path, problems)
        mem = _optional_int(row, "memory_mib", line, path, problems)
        nodes.append(SimNode(row["sn"].strip(), pools[cls], gpus, cpu or 0, mem or 0))
    problems += duplicates(path, "sn", names)
    if problems:
        raise TraceError(problems)
    return SimFleet(path.stem, (SimSite(site, jurisdiction),), tuple(pool_list), tuple(nodes))
