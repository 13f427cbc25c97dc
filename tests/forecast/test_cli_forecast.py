"""`gpufleet forecast` end to end on a generated history: JSON, backtest keys, charts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpufleet.cli import app
from gpufleet.cli.forecast import parse_duration

pytestmark = pytest.mark.slow


def test_durations() -> None:
    assert parse_duration("13w") == 91
    assert parse_duration("91d") == 91
    assert parse_duration("30") == 30
    with pytest.raises(ValueError, match="13w or 91d"):
        parse_duration("3 months")


def test_forecast_json_is_coherent_and_plans_every_site_class(
    history_csv: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["forecast", "--history", str(history_csv), "--horizon", "13w", "--lead-time", "12w",
         "--json", "--plot", str(tmp_path / "plots"), "--jobs", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert payload["horizon_days"] == 91
    assert payload["coherence_max_abs_error"] < 1e-6
    plans = {(p["site"], p["accelerator_class"]): p for p in payload["capacity"]}
    assert set(plans) == {("fra", "nvidia-h100"), ("osl", "nvidia-h200")}
    assert plans[("fra", "nvidia-h100")]["installed"] == 128
    series = {s["series"]: s for s in payload["series"]}
    assert set(series["fleet"]["daily"]) == {"p50", "p05", "p25", "p75", "p95"}
    assert len(series["fleet"]["weekly_peak_p50"]) == 13
    assert set(payload["backtest"]) == {"fleet", "site", "site_class", "queue"}
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == [
        "forecast-fleet.png", "forecast-fra__nvidia-h100.png", "forecast-osl__nvidia-h200.png"
    ]  # fmt: skip


def test_backtest_json_is_keyed_by_level_then_horizon(history_csv: Path) -> None:
    result = CliRunner().invoke(
        app, ["forecast", "backtest", "--history", str(history_csv), "--json", "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    for level in ("fleet", "site_class", "queue"):
        for horizon in ("4w", "13w"):
            scores = payload[level][horizon]
            assert set(scores) == {"mase", "wape", "p90_coverage", "mae_vs_snaive"}
            assert 0 <= scores["p90_coverage"] <= 1
            assert scores["mase"] > 0


def test_bad_inputs_fail_with_a_message(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(
        app, ["forecast", "--history", "x.csv", "--prometheus", "http://127.0.0.1:9"]
    )
    assert both.exit_code == 1
    assert "exactly one" in both.output
    missing = runner.invoke(app, ["forecast", "--history", str(tmp_path / "none.csv")])
    assert missing.exit_code == 1
    assert "no such file" in missing.output
