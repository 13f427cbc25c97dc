"""Client-side path: the models refuse every generated malformed object."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from api.builders import MODELS
from api.malformed import BASES, KIND_NAMES, STATUSES, Malformed, malformed


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unbroken_bases_are_valid(kind: str) -> None:
    # Without this, "every malformed object is refused" could pass for the wrong reason.
    for base in BASES[kind]:
        MODELS[kind].model_validate({**copy.deepcopy(base), "status": STATUSES[kind]})


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_models_refuse_malformed_objects(bad: Malformed) -> None:
    with pytest.raises(ValidationError):
        MODELS[bad.kind].model_validate(bad.obj)
