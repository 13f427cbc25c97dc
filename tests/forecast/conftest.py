"""Histories for the forecasting tests: generated, small, with a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpufleet.forecast.history import History, Key, write_csv

KEYS = (
    Key("fra", "nvidia-h100", "q0"),
    Key("fra", "nvidia-h100", "q1"),
    Key("osl", "nvidia-h200", "q0"),
    Key("osl", "nvidia-h200", "q1"),
)


def generated(days: int = 200, growth: float = 0.1, weekly: float = 0.3, seed: int = 0) -> History:
    """Hourly demand that grows, cycles weekly and wanders (AR(1) by hour); no censoring."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    t = np.arange(hours) / 24.0
    base = np.array([[40.0], [20.0], [60.0], [30.0]])
    trend = (1 + growth) ** (t / 30)
    cycle = 1 + weekly * np.cos(2 * np.pi * (t - 2.5) / 7)
    noise = np.zeros((len(KEYS), hours))
    shocks = rng.normal(0, 0.03, (len(KEYS), hours))
    for i in range(1, hours):
        noise[:, i] = 0.97 * noise[:, i - 1] + shocks[:, i]
    demand = np.maximum(base * trend * cycle * (1 + noise), 0.0)
    pending = np.minimum(demand, 0.05 * demand)
    capacity = np.repeat(np.array([[128.0], [128.0], [256.0], [256.0]]), hours, axis=1)
    wait = np.full((len(KEYS), hours), 60.0)
    return History(
        np.datetime64("2025-01-06T00:00:00"),
        KEYS,
        demand - pending,
        pending,
        capacity,
        wait,
        demand,
    )


@pytest.fixture(scope="session")
def history_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forecast") / "history.csv"
    write_csv(generated(), path)
    return path
