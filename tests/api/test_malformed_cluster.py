"""Over a thousand generated malformed objects, sent to a real API server: none is accepted.

Spec-side objects go through a dry-run create, status-side ones through a
dry-run merge patch of /status on a real object of the same kind; the models
must refuse every one as well.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api.builders import MODELS, Obj, Server, api_error, unique
from api.malformed import BASES, KIND_NAMES, STATUSES, Malformed, malformed

pytestmark = pytest.mark.cluster

PER_EXAMPLE = 25
EXAMPLES = 80  # 80 x 25 = 2,000 objects
MINIMUM = 1_000


@pytest.fixture
def persisted(server: Server, namespace: str) -> Iterator[dict[str, Obj]]:
    """One real object per kind, without status, for /status patches."""
    made = {}
    for kind in KIND_NAMES:
        obj = copy.deepcopy(BASES[kind][0])
        obj["metadata"]["name"] = unique("mal")
        if kind == "Workload":
            obj["metadata"]["namespace"] = namespace
        server.create(obj)
        made[kind] = obj
    yield made
    for obj in made.values():
        server.delete(obj)


def _send(server: Server, bad: Malformed, namespace: str, persisted: dict[str, Obj]) -> None:
    if bad.part == "status":
        target = persisted[bad.kind]
        server.patch(target, {"status": bad.obj["status"]}, status=True, dry_run=True)
    else:
        obj = copy.deepcopy(bad.obj)
        if bad.kind == "Workload":
            obj["metadata"]["namespace"] = namespace
        server.create(obj, dry_run=True)


def test_unbroken_bases_are_accepted(
    server: Server, namespace: str, persisted: dict[str, Obj]
) -> None:
    for kind in KIND_NAMES:
        for base in BASES[kind]:
            good = Malformed(kind, "spec", {**copy.deepcopy(base)}, "nothing")
            good.obj["metadata"]["name"] = unique("ok")
            _send(server, good, namespace, persisted)
        status = Malformed(kind, "status", {"status": STATUSES[kind]}, "nothing")
        _send(server, status, namespace, persisted)


def test_api_server_and_models_refuse_every_malformed_object(
    server: Server, namespace: str, persisted: dict[str, Obj]
) -> None:
    refused: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(malformed(), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def check(batch: list[Malformed]) -> None:
        for bad in batch:
            with pytest.raises(ValidationError):
                MODELS[bad.kind].model_validate(bad.obj)
            refusal = server.rejection(
                lambda bad=bad: _send(server, bad, namespace, persisted), f"{bad}\n{bad.obj}"
            )
            assert refusal.status in (400, 422), f"{bad}: {refusal.status} {api_error(refusal)}"
            refused[f"{bad.kind}/{bad.part}"] += 1

    check()

    total = sum(refused.values())
    print(f"\nrefused {total} malformed objects: {dict(sorted(refused.items()))}")
    assert total >= MINIMUM
    assert set(refused) == {f"{k}/{p}" for k in KIND_NAMES for p in ("spec", "status")}
