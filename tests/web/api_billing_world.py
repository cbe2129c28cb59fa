"""Issue 18 E2: the billing world (tests/web/billing_world.py) with an API key per tenant,
and the calls the /api/v1 billing tests make."""

from datetime import timedelta

import pytest

from portal import clock
from portal.models import Role
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem
from tests.web.billing_world import NOW, build, snapshot  # noqa: F401  (re-exported)

API = "/api/v1"


@pytest.fixture
def aw(app, session):
    """build()'s world; keys: solo (Acme's, made by its admin ann), rival (Rival Shop's),
    agency (Northwind's owner avery: reaches Bayside and Harbor), harbor (Harbor Law's own,
    made by hal), read-only (Acme's, read scope only)."""
    clock.freeze(NOW - timedelta(hours=1))
    w = build(session)
    clock.freeze(NOW)
    w.keys = {
        "solo": f.api_key(session, w.solo, w.ann, role=Role.ADMIN),
        "rival": f.api_key(session, w.rival, w.rex, role=Role.ADMIN),
        "agency": f.api_key(session, w.agency, w.avery),
        "harbor": f.api_key(session, w.harbor, w.hal, role=Role.ADMIN),
        "read": f.api_key(session, w.solo, w.ann, scopes=("read",), role=Role.ADMIN),
    }
    return w


def headers(w, key: str = "solo", **more) -> dict:
    return {"Authorization": f"Bearer {w.keys[key]}", **more}


def call(client, w, method: str, path: str, key: str = "solo", **kwargs):
    return client.open(API + path, method=method, headers=headers(w, key), **kwargs)


def assert_problem(response, status: int, detail: str, errors: dict | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    expected = problem(status, detail, errors) if status != 402 else {
        "type": "https://portal.invalid/problems/payment-failed", "title": "Payment failed",
        "status": 402, "detail": detail, "errors": errors or {}, "error": detail}
    assert {k: body[k] for k in expected} == expected
    return body
