"""Every example, applied with kubectl to a real API server, is accepted and reads back as written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from api.builders import (
    EXAMPLES,
    Obj,
    Server,
    example_files,
    is_subset,
    load_examples,
    renamed,
    unique,
)

pytestmark = pytest.mark.cluster

NAMESPACES = ("team-vision", "team-nlp")


@pytest.fixture
def applied(crds: Any, server: Server) -> Iterator[list[Obj]]:
    """All examples, renamed apart from anything else on the shared hub, applied with kubectl."""
    suffix = unique("x").removeprefix("x-")
    namespace_map = {name: f"{name}-{suffix}" for name in NAMESPACES}
    objects = renamed(load_examples(), suffix, namespace_map)
    manifest = yaml.safe_dump_all(objects, sort_keys=False)
    try:
        result = crds.kubectl(
            "apply",
            "--server-side",
            "--field-manager=gpufleet-example-test",
            "-f",
            "-",
            input=manifest,
        )
        assert result.returncode == 0
        yield objects
    finally:
        for obj in reversed(objects):
            if obj["kind"] != "Namespace":
                server.delete(obj)
        for name in namespace_map.values():
            crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_examples_are_accepted_and_read_back_as_written(applied: list[Obj], server: Server) -> None:
    kinds = set()
    for written in applied:
        if written["kind"] == "Namespace":
            continue
        read = server.get(written)
        assert is_subset(written["spec"], read["spec"]), (
            f"{written['kind']}/{written['metadata']['name']} changed on the way: "
            f"wrote {json.dumps(written['spec'])}, read {json.dumps(read['spec'])}"
        )
        kinds.add(written["kind"])
    assert kinds == {"Site", "GpuPool", "Queue", "Workload"}


def test_kubectl_get_gpufleet_lists_every_kind(applied: list[Obj], crds: Any) -> None:
    listed = crds.kubectl("get", "gpufleet", "--all-namespaces", "-o", "name").stdout.split()
    for obj in applied:
        if obj["kind"] != "Namespace":
            assert f"{obj['kind'].lower()}.gpufleet.io/{obj['metadata']['name']}" in listed


def test_kubectl_get_shows_the_printer_columns(applied: list[Obj], crds: Any) -> None:
    pool = next(o for o in applied if o["kind"] == "GpuPool")
    table = crds.kubectl("get", "gpool", pool["metadata"]["name"]).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "SITE",
        "ACCELERATOR",
        "CAPACITY",
        "ALLOCATED",
        "FREE",
        "READY",
        "AGE",
    ]
    assert pool["spec"]["site"] in row.split()

    workload = next(o for o in applied if o["kind"] == "Workload")
    table = crds.kubectl(
        "get", "gwl", "-n", workload["metadata"]["namespace"], workload["metadata"]["name"]
    ).stdout
    assert table.splitlines()[0].split() == [
        "NAME",
        "QUEUE",
        "REPLICAS",
        "PER-REPLICA",
        "PHASE",
        "SITE",
        "AGE",
    ]
    assert workload["spec"]["queue"] in table.splitlines()[1].split()


# Files without namespaced objects: their namespaces need not exist for a dry run.
VERBATIM = [f for f in example_files() if all(o["kind"] != "Workload" for o in load_examples(f))]


@pytest.mark.parametrize("file", VERBATIM)
def test_example_files_pass_server_dry_run_verbatim(file: str, crds: Any) -> None:
    # Verbatim names, nothing persisted: proves the files themselves, not only renamed copies.
    result = crds.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        str(EXAMPLES / file),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_status_is_written_only_through_the_status_subresource(crds: Any, server: Server) -> None:
    pool = renamed(load_examples("fleet.yaml"), unique("s").removeprefix("s-"), {})[3]
    assert pool["kind"] == "GpuPool"
    pool["status"] = {"capacity": 128, "allocated": 0, "free": 128}
    try:
        created = server.create(pool)
        assert "status" not in created  # ignored on the main resource

        server.patch(pool, {"status": {"capacity": 128, "allocated": 8, "free": 120}}, status=True)
        assert server.get(pool)["status"]["allocated"] == 8

        server.patch(pool, {"status": {"allocated": 64}})  # main resource: status ignored
        assert server.get(pool)["status"]["allocated"] == 8
    finally:
        server.delete(pool)
