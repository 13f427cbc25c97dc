"""Hypothesis profiles for the core: `default` stays quick, `ci` and `thorough`
run thousands of examples (select with HYPOTHESIS_PROFILE=ci|thorough)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", _BASE, max_examples=100)
settings.register_profile("ci", _BASE, max_examples=1000)
settings.register_profile("thorough", _BASE, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
