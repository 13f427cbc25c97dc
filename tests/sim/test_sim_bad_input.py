"""Bad input files end in an error naming the file (and line and field), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.sim import csvtrace, openb
from gpufleet.sim.jobs import TraceError

POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,deletion_time\n"
NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (POD_HEADER + "p0,1000,1024,1,1000,0,10\n").encode())
    trace = openb.read_trace(path)
    assert [j.name for j in trace.jobs] == ["p0"]


def test_an_undecodable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_bytes(POD_HEADER.encode() + b"p\xff0,1000,1024,1,1000,0,10\n")
    with pytest.raises(TraceError, match=rf"{path}: not UTF-8 text \(byte \d+"):
        openb.read_trace(path)


def test_duplicate_pod_names_name_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "pods.csv"
    path.write_text(POD_HEADER + "p0,1,1,1,1000,0,10\np0,1,1,1,1000,0,10\n")
    with pytest.raises(TraceError, match=rf"{path}:3: name: 'p0' repeats line 2"):
        openb.read_trace(path)


def test_duplicate_node_names_name_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "nodes.csv"
    path.write_text(NODE_HEADER + "n0,64000,1024,8,V100\nn0,64000,1024,8,V100\n")
    with pytest.raises(TraceError, match=rf"{path}:3: sn: 'n0' repeats line 2"):
        openb.read_nodes(path)


def test_duplicate_job_names_in_a_csv_trace(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_text("name,arrival,runtime,accelerators\na,0,10,1\na,1,10,1\n")
    with pytest.raises(TraceError, match=rf"{path}:3: name: 'a' repeats line 2"):
        csvtrace.read_trace(path)


def test_counts_too_large_name_file_line_and_field(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(NODE_HEADER + "n0,64000,1024,99999999999999999999999,V100\n")
    with pytest.raises(TraceError, match=rf"{nodes}:2: gpu: must be <= 1024"):
        openb.read_nodes(nodes)
    pods = tmp_path / "pods.csv"
    pods.write_text(POD_HEADER + "p0,1,1,100000000000000000000,1000,0,10\n")
    with pytest.raises(TraceError, match=rf"{pods}:2: num_gpu: must be <= 1024"):
        openb.read_trace(pods)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("name,arrival,runtime,accelerators\na,0,10,100000000000000000000\n")
    with pytest.raises(TraceError, match=rf"{jobs}:2: accelerators"):
        csvtrace.read_trace(jobs)
