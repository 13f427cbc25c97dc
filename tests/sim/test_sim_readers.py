"""Trace and fleet readers: openb, gpufleet's CSV, dev fleet files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.sim import csvtrace, openb
from gpufleet.sim.fleetsource import load_sim_fleet
from gpufleet.sim.jobs import TraceError
from gpufleet.sim.traces import detect, load_trace

OPENB_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_openb_fraction_rounds_up_and_cpu_only_pods_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pods.csv",
        OPENB_HEADER
        + "p0,1000,1024,1,460,,LS,Running,100,700,100\n"
        + "p1,1000,1024,0,0,,LS,Running,150,900,150\n"
        + "p2,1000,1024,4,1000,V100M16|T4,LS,Running,200,260,201\n",
    )
    trace = openb.read_trace(path)
    assert trace.skipped == 1
    assert [(j.name, j.gpus, j.arrival, j.runtime) for j in trace.jobs] == [
        ("p0", 1, 0.0, 600.0),
        ("p2", 4, 100.0, 60.0),
    ]
    assert trace.jobs[1].classes == frozenset({"nvidia-v100m16", "nvidia-t4"})


def test_openb_pods_carry_their_cpu_and_memory_and_a_fraction_keeps_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pods.csv",
        OPENB_HEADER
        + "p0,6000,12288,1,460,,LS,Running,100,700,100\n"
        + "p1,24000,65536,2,1000,,LS,Running,200,260,201\n",
    )
    jobs = openb.read_trace(path).jobs
    assert [(j.gpus, j.cpu_milli, j.memory_mib) for j in jobs] == [
        (1, 6000, 12288),
        (2, 24000, 65536),
    ]


def test_openb_lists_without_cpu_columns_ask_no_cpu(tmp_path: Path) -> None:
    path = write(tmp_path, "pods.csv", "name,num_gpu,gpu_milli\np0,1,1000\n")
    pods, _ = openb.read_pods(path)
    assert [(p.cpu_milli, p.memory_mib) for p in pods] == [(0, 0)]


def test_openb_malformed_rows_are_reported_with_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pods.csv",
        OPENB_HEADER
        + "p0,1000,1024,1,1000,,LS,Running,100,700,100\n"
        + "p1,1000,1024,x,1000,,LS,Running,100,700,100\n"
        + "p2,1000,1024,1,1000,,LS,Running,900,700,100\n",
    )
    with pytest.raises(TraceError) as info:
        openb.read_trace(path)
    assert info.value.problems == [
        f"{path}:3: num_gpu: must be an integer (got 'x')",
        f"{path}:4: deletion_time: must be >= creation_time (700 < 900)",
    ]


def test_openb_models_map_to_dns_label_classes() -> None:
    assert openb.accelerator_class("V100M32") == "nvidia-v100m32"
    assert openb.accelerator_class("A10") == "nvidia-a10"
    assert openb.accelerator_class("G2") == "openb-g2"
    with pytest.raises(ValueError, match="DNS-label"):
        openb.accelerator_class("bad model!")


def test_openb_node_list_is_one_site_with_a_pool_per_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "nodes.csv",
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "n0,32000,1024,0,\n"
        "n1,64000,1024,2,P100\n"
        "n2,64000,1024,8,G2\n"
        "n3,64000,1024,2,P100\n",
    )
    fleet = openb.read_nodes(path)
    assert [n.name for n in fleet.nodes] == ["n1", "n2", "n3"]
    assert fleet.total_gpus == 12
    assert fleet.capacity_by_class() == {"nvidia-p100": 4, "openb-g2": 8}


CSV_HEADER = "name,arrival,runtime,replicas,accelerators,classes,queue,residency\n"


def test_own_csv_reads_gangs_classes_queues_and_residency(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        CSV_HEADER + "train,5,3600,2,8,nvidia-h100|nvidia-h200,research,DE|EU\ninfer,0,60,,1,,,\n",
    )
    trace = csvtrace.read_trace(path)
    infer, train = trace.jobs
    assert (infer.name, infer.replicas, infer.gpus, infer.classes, infer.queue) == (
        "infer",
        1,
        1,
        frozenset(),
        "",
    )
    assert (train.replicas, train.per_replica, train.gpus) == (2, 8, 16)
    assert train.classes == frozenset({"nvidia-h100", "nvidia-h200"})
    assert train.residency == frozenset({"DE", "EU"})
    assert train.queue == "research"


def test_own_csv_reports_every_bad_row_with_its_line_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        CSV_HEADER + "ok,0,10,1,1,,,\n"
        "neg,-1,10,1,1,,,\n"
        "zero,0,0,1,1,,,\n"
        "cls,0,10,1,1,NVIDIA_H100,,\n"
        "extra,0,10,1,1,,,,surplus\n",
    )
    with pytest.raises(TraceError) as info:
        csvtrace.read_trace(path)
    problems = info.value.problems
    assert problems[0].startswith(f"{path}:3: arrival: Input should be greater than or equal to 0")
    assert problems[1].startswith(f"{path}:4: runtime: Input should be greater than 0")
    assert problems[2].startswith(f"{path}:5: classes: accelerator classes must be DNS labels")
    assert problems[3] == f"{path}:6: row: more values than columns"
    assert len(problems) == 4


def test_own_csv_header_must_have_the_required_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "arrival,runtime,gpus\n0,1,1\n")
    with pytest.raises(TraceError, match="missing required column\\(s\\) accelerators"):
        csvtrace.read_trace(path)


def test_format_is_detected_from_the_header(tmp_path: Path) -> None:
    pods = write(tmp_path, "pods.csv", OPENB_HEADER + "p0,1,1,1,1000,,LS,Running,0,10,0\n")
    own = write(tmp_path, "own.csv", CSV_HEADER + "a,0,10,1,1,,,\n")
    assert detect(pods) == "openb"
    assert detect(own) == "csv"
    assert load_trace(pods).jobs[0].runtime == 10.0
    with pytest.raises(TraceError, match="not a readable file"):
        load_trace(tmp_path / "missing.csv")


def test_dev_fleet_file_maps_clusters_to_sites_and_node_groups_to_pools(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "fleet.yaml",
        """
name: t
clusters:
  - name: fra
    hub: true
    site: {name: fra, type: OnPrem, jurisdiction: DE, regions: [EU]}
    nodeGroups:
      - {name: fra-h100, count: 2, acceleratorClass: nvidia-h100, acceleratorsPerNode: 8}
      - {name: fra-cpu, count: 3, acceleratorClass: none, acceleratorsPerNode: 0}
  - name: par
    site: {name: par, type: LocalZone, jurisdiction: FR, regions: [EU]}
    nodeGroups:
      - {name: par-l4, count: 1, acceleratorClass: nvidia-l4, acceleratorsPerNode: 4}
""",
    )
    fleet = load_sim_fleet(path)
    assert [(s.name, s.jurisdiction) for s in fleet.sites] == [("fra", "DE"), ("par", "FR")]
    assert [(p.name, p.site, p.accelerator_class) for p in fleet.pools] == [
        ("fra-h100", 0, "nvidia-h100"),
        ("par-l4", 1, "nvidia-l4"),
    ]
    assert fleet.total_gpus == 20
    assert fleet.node_site.tolist() == [0, 0, 1]
