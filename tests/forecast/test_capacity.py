"""Capacity plans: when demand crosses capacity, when to order, what is short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpufleet.forecast import capacity

DAYS = np.datetime64("2025-03-03") + np.arange(91).astype("timedelta64[D]")


def test_packaged_sku_table_has_the_issue_skus_with_sources() -> None:
    skus = capacity.load_skus()
    assert skus["nvidia-h100"].node_kw == pytest.approx(10.2)
    assert skus["nvidia-h200"].accelerators_per_node == 8
    assert skus["nvidia-gb200"].accelerators_per_node == 72
    assert 120 <= skus["nvidia-gb200"].node_kw <= 132
    assert skus["aws-trainium2"].estimate
    assert all(s.sources for s in skus.values())


def test_date_needed_order_by_and_shortfall_in_nodes_racks_kw() -> None:
    sku = capacity.load_skus()["nvidia-h100"]
    p50 = np.linspace(100, 190, 91)  # crosses 128 at day 28
    p95 = p50 + 20  # crosses at day 8
    plan = capacity.plan("fra", "nvidia-h100", DAYS, p50, p95, 128, [], 84, sku, DAYS[0])
    crossing = int(np.argmax(p50 > 128))
    assert plan.date_needed == str(DAYS[crossing // 7 * 7])
    assert plan.order_by == str(np.datetime64(plan.date_needed) - np.timedelta64(84, "D"))
    assert plan.date_needed_p95 == str(DAYS[int(np.argmax(p95 > 128)) // 7 * 7])
    # Short 62 accelerators at p50: 8 nodes of 8, 2 racks of 4, 81.6 kW.
    assert plan.shortfall.accelerators == pytest.approx(62)
    assert (plan.shortfall.nodes, plan.shortfall.racks) == (8, 2)
    assert plan.shortfall.kw == pytest.approx(81.6)
    assert "order_by has passed" in " ".join(plan.notes)


def test_committed_capacity_moves_the_date() -> None:
    sku = capacity.load_skus()["nvidia-h100"]
    p50 = np.linspace(100, 190, 91)
    commit = [capacity.Commitment(64, DAYS[21])]
    plan = capacity.plan("fra", "nvidia-h100", DAYS, p50, p50, 128, commit, 0, sku, DAYS[0])
    assert plan.committed == 192
    assert plan.date_needed is None
    assert plan.shortfall.accelerators == 0
    assert plan.shortfall.nodes == 0


def test_capacity_file_counts_nodes_with_the_sku(tmp_path: Path) -> None:
    path = tmp_path / "cap.yaml"
    path.write_text(
        "capacity:\n"
        "  - site: osl\n    accelerator_class: nvidia-h200\n    installed: 256\n"
        "    committed:\n      - nodes: 4\n        date: 2025-04-01\n"
        "      - accelerators: 16\n        date: 2025-05-01\n"
    )
    got = capacity.load_capacity(path, capacity.load_skus())[("osl", "nvidia-h200")]
    assert got.installed == 256
    assert [c.accelerators for c in got.committed] == [32, 16]
    path.write_text(
        "capacity:\n  - site: osl\n    accelerator_class: x\n    committed:\n      - nodes: 1\n        date: 2025-01-01\n"
    )
    with pytest.raises(ValueError, match=r"capacity\[0\].*no SKU"):
        capacity.load_capacity(path, capacity.load_skus())
