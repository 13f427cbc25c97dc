"""Runs every scenario of the YAML corpus: expected decisions, invariants, and the
reference cycle agreeing with the fast one."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from core.invariants import check_invariants
from gpufleet.core import schedule
from gpufleet.core.reference import schedule_reference
from scenarios.corpus import CORPUS, build


def _docs() -> list[Any]:
    params: list[Any] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        docs = data["scenarios"] if isinstance(data, dict) and "scenarios" in data else [data]
        params.extend(pytest.param(doc, path.name, id=f"{path.stem}:{doc['name']}") for doc in docs)
    return params


DOCS = _docs()


def test_corpus_is_large_and_names_are_unique() -> None:
    names = [p.values[0]["name"] for p in DOCS]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("doc", "source"), DOCS)
def test_scenario(doc: dict[str, Any], source: str) -> None:
    scenario = build(doc, source)
    result = schedule(scenario.snapshot)
    expect = scenario.expect
    admitted = {a.workload: a for a in result.admissions}

    for key, want in (expect.get("admitted") or {}).items():
        assert key in admitted, f"{key} not admitted; verdicts: {result.verdicts.get(key)}"
        got = admitted[key]
        want = want or {}
        if "pool" in want:
            assert got.pool == want["pool"], key
        if "site" in want:
            assert got.site == want["site"], key
        if "nodes" in want:
            assert sorted(got.nodes) == sorted(want["nodes"]), key
        if "replicas" in want:
            assert len(got.nodes) == want["replicas"], key
        if "distinct_nodes" in want:
            assert len(set(got.nodes)) == want["distinct_nodes"], key
    if expect.get("only_admitted", True):
        assert set(admitted) == set(expect.get("admitted") or {})
    for key in expect.get("pending") or []:
        assert key not in admitted, f"{key} should stay pending"
        assert key in result.verdicts
    if "evicted" in expect or expect.get("only_admitted", True):
        got_evicted = {e.workload: e.reason for e in result.evictions}
        assert got_evicted == (expect.get("evicted") or {})
    for key, by_site in (expect.get("verdicts") or {}).items():
        verdicts = {v.site: v for v in result.verdicts[key]}
        for site, want in by_site.items():
            rule, nearest = (
                (want, None) if isinstance(want, str) else (want["rule"], want.get("nearest"))
            )
            assert verdicts[site].rule == rule, (key, site, verdicts[site])
            assert verdicts[site].message
            if nearest is not None:
                assert nearest in (verdicts[site].nearest_change or ""), verdicts[site]
    for queue, by_class in (expect.get("fair_shares") or {}).items():
        for cls, share in by_class.items():
            assert result.fair_shares[queue][cls] == pytest.approx(share), (queue, cls)
    order = expect.get("order")
    if order:
        assert result.queue_order[: len(order)] == order

    if "starved" in expect:
        assert result.starved == frozenset(expect["starved"])

    check_invariants(scenario.snapshot, result)
    ref = schedule_reference(scenario.snapshot)
    assert ref.admissions == result.admissions
    assert ref.evictions == result.evictions
    assert ref.queue_order == result.queue_order
