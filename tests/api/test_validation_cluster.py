"""Every validation rule, proven on a real API server: refused, with the field named."""

from __future__ import annotations

import pytest

from api.builders import Server, api_error
from api.cases import CASES, Case, base

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_api_server_rejects_and_names_the_field(case: Case, server: Server, namespace: str) -> None:
    obj = base(case.kind, namespace)
    server.create(obj, dry_run=True)  # the unbroken object is fine
    case.mutate(obj)

    refusal = server.rejection(lambda: server.create(obj, dry_run=True))

    assert refusal.status in (400, 422), api_error(refusal)
    assert case.field in api_error(refusal)
