"""`gpufleet simulate --days`: the hourly history file, expansions and power caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from gpufleet.cli import app
from gpufleet.forecast.history import read_csv

DEV_FLEET = Path(__file__).parents[2] / "operator/gpufleet/dev/fleets/dev.yaml"


def _trace(tmp_path: Path) -> Path:
    path = tmp_path / "mix.csv"
    rows = ["name,arrival,runtime,replicas,accelerators,classes,queue,residency"]
    rows += [f"j{i},{i},{3600 * (1 + i % 5)},1,{1 + (i % 3 == 0)},,," for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


def run(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / f"hist{len(extra)}.csv"
    result = CliRunner().invoke(
        app,
        ["simulate", "--fleet", str(DEV_FLEET), "--trace", str(_trace(tmp_path)),
         "--days", "4", "--growth", "0.1", "--weekly", "0.3", "--load", "0.3", "--seed", "1",
         "--policy", "fifo-first-fit", "--fleet-fraction", "0.25", "--history-out", str(out),
         "--json", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_history_out_expand_and_power_cap(tmp_path: Path) -> None:
    base = read_csv(run(tmp_path))
    assert base.hours == 4 * 24
    assert base.demand_true is not None
    sites = {k.site for k in base.keys}
    assert sites == {"onprem-fra", "localzone-ams", "factory-osl"}
    osl = [i for i, k in enumerate(base.keys) if k[:2] == ("factory-osl", "nvidia-h200")]
    before = base.capacity[osl[0]]
    # 8 H200 nodes at Oslo from day 2: 64 more accelerators from hour 48 on.
    grown = read_csv(run(tmp_path, "--expand", "factory-osl:nvidia-h200:8@2"))
    after = grown.capacity[osl[0]]
    np.testing.assert_array_equal(after[:48], before[:48])
    np.testing.assert_array_equal(after[48:], before[48:] + 64)
    # 25 kW at Frankfurt powers two 10.2 kW H100 nodes of the four kept.
    capped = read_csv(run(tmp_path, "--power-cap", "onprem-fra:25"))
    fra = [i for i, k in enumerate(capped.keys) if k.site == "onprem-fra"]
    np.testing.assert_array_equal(capped.capacity[fra[0]], 16)


def test_history_options_need_days(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--fleet", str(DEV_FLEET), "--trace", str(_trace(tmp_path)),
         "--expand", "factory-osl:nvidia-h200:8@2"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "only with --days" in result.output
