"""Chart tests need helm (built by `make tools`); without it they skip, saying so."""

from __future__ import annotations

import os

import pytest

from .helm import helm_binary

REQUIRE = os.environ.get("GPUFLEET_REQUIRE_CLUSTER") == "1" or os.environ.get("CI") == "true"


@pytest.fixture
def needs_helm() -> None:
    if helm_binary() is None:
        message = "helm is missing: run 'make tools' (it builds helm into ~/.cache/gpufleet/bin)"
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
