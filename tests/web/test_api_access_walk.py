"""Every /api/v1 endpoint, walked from the app's URL map (a new endpoint is walked without
being listed here): no key → 401; a key lacking the scope it needs → 403; a key of another
tenant, or a sub-account's key on its agency, on this tenant's ids → 404 (never 200, 403 or
anything that tells the account exists) and nothing changed; an admin-role key on the
owner-only operation (close) → 403.

The other tenant's request carries a body built from the document's schema for the
operation, so that it reaches the view: an endpoint that forgets `auth.reach` answers
something else than 404 and fails here. A 422 is accepted only when it is webargs' (the body
did not parse: the view never ran)."""

import re

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import (
    Account,
    AccountStatus,
    ApiKey,
    Charge,
    Invitation,
    LedgerEntry,
    Membership,
    PaymentMethod,
    Role,
    Version,
)
from portal.roles import Can
from tests import factories as f
from tests.web.conftest import bearer

SKIPPED = {"api-docs.openapi_json", "api_reference.docs"}
ALL = ("read", "write", "metering")
PARSE_ERROR = "Some fields are not valid"




@pytest.fixture
def world(session):
    olive = f.user(session, "olive@harbor.test", name="Olive Owner")
    agency = f.agency(session, "Harbor Agency", owner=olive)
    sub = f.sub(session, agency, "Bayside Dental")
    f.card(session, agency)
    f.funds(session, agency, 50_000)
    f.funds(session, sub, 5_000)
    other_owner = f.user(session, "otto@other.test", name="Otto Other")
    other = f.standalone(session, "Other Co", owner=other_owner)
    f.card(session, other)
    session.commit()
    keys = {
        "agency": f.api_key(session, agency, olive),
        "agency_admin": f.api_key(session, agency, olive, role=Role.ADMIN),
        "sub": f.api_key(session, sub, olive),
        "other": f.api_key(session, other, other_owner),
    }
    for scope in ALL:
        keys[f"without_{scope}"] = f.api_key(session, agency, olive,
                                             scopes=tuple(s for s in ALL if s != scope))
    return {"olive": olive, "agency": agency, "sub": sub, "other": other, "keys": keys}


def operations(app):
    """(method, rule, endpoint) of every /api/v1 operation."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in SKIPPED:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule, rule.endpoint))
    assert len(found) > 5, found
    return found


def needed_scope(app, endpoint: str, method: str) -> str:
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, method.lower(), None)
    for candidate in (view, handler, view_class):
        scope = getattr(candidate, "api_scope", None)
        if scope:
            return scope
    return "read" if method == "GET" else "write"


def nested_ids(session, account: Account) -> dict[str, int]:
    """Real ids of the account's rows for the path's other parameters: a view that looks
    its row up before the tenancy check would find it."""
    def first(query, default=1):
        return session.scalar(query) or default

    return {
        "method_id": first(select(func.min(PaymentMethod.id)).where(
            PaymentMethod.account_id == account.id)),
        "charge_id": first(select(func.min(Charge.id)).where(Charge.account_id == account.id)),
        "invitation_id": first(select(func.min(Invitation.id)).where(
            Invitation.account_id == account.id)),
        "user_id": first(select(func.min(Membership.user_id)).where(
            Membership.account_id == account.id)),
        "entry_id": first(select(func.min(LedgerEntry.id)).where(
            LedgerEntry.account_id == account.id)),
    }


def path_for(rule, account: Account, ids: dict[str, int]) -> str | None:
    values = {}
    for argument in rule.arguments:
        values[argument] = account.id if argument == "account_id" else ids.get(argument, 1)
    path = rule.rule
    for name, value in values.items():
        path = path.replace(f"<id:{name}>", str(value)).replace(f"<int:{name}>", str(value))
        path = path.replace(f"<{name}>", str(value))
    return path


def _example(schema: dict, components: dict, depth: int = 0):
    """A value that fits `schema` (the required properties only): enough to get past the
    arguments' parsing to the view."""
    if "$ref" in schema:
        return _example(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    for combined in ("allOf", "oneOf", "anyOf"):
        if combined in schema:
            return _example(schema[combined][0], components, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        properties = schema.get("properties", {})
        return {name: _example(properties.get(name, {}), components, depth + 1)
                for name in schema.get("required", [])}
    if kind == "array":
        item = _example(schema.get("items", {}), components, depth + 1)
        return [item] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "string":
        if "pattern" in schema:  # e.g. a processor's id
            return next(c for c in ("pm_walk_1", "walk") if re.search(schema["pattern"], c))
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-12-03T12:00:00Z"
        if fmt == "date":
            return "2026-12-03"
        if fmt == "email":
            return "walk@example.test"
        return "x" * max(1, schema.get("minLength", 1))
    return None


def openapi_path(rule) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)


def body_for(document: dict, rule, method: str):
    operation = document["paths"].get(openapi_path(rule), {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return None
    return _example(schema, document["components"].get("schemas", {}))


def snapshot(session):
    session.expire_all()
    return (
        [(a.id, a.status, a.billing_mode, a.balance_cents, a.parent_id)
         for a in session.scalars(select(Account).order_by(Account.id))],
        session.scalar(select(func.count()).select_from(LedgerEntry)),
        session.scalar(select(func.count()).select_from(Charge)),
        session.scalar(select(func.count()).select_from(PaymentMethod)
                       .where(PaymentMethod.removed_at.is_(None))),
        session.scalar(select(func.count()).select_from(Invitation)),
        session.scalar(select(func.count()).select_from(Membership)),
        session.scalar(select(func.count()).select_from(Version)),
    )


def send(client, method, path, token=None, body=None):
    return client.open(path, method=method, headers=bearer(token),
                       json=body if body is not None else ({} if method != "GET" else None))


def test_every_operation_without_a_key_is_401(app, client, world):
    for method, rule, _endpoint in operations(app):
        path = path_for(rule, world["agency"], {})
        response = send(client, method, path)
        assert response.status_code == 401, (method, path, response.get_data(as_text=True))
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_operation_with_a_key_lacking_its_scope_is_403(app, client, session, world):
    before = snapshot(session)
    document = client.get("/api/v1/openapi.json").get_json()
    for method, rule, endpoint in operations(app):
        scope = needed_scope(app, endpoint, method)
        operation = document["paths"][openapi_path(rule)][method.lower()]
        path = path_for(rule, world["agency"], nested_ids(session, world["agency"]))
        if scope == "any":  # GET /api/v1/key: every key may read itself
            assert operation["security"] == [{"apiKey": []}]
            for name in ("without_read", "without_write", "without_metering"):
                assert send(client, method, path, world["keys"][name]).status_code == 200
            continue
        assert operation["security"] == [{"apiKey": [scope]}], (method, rule)
        response = send(client, method, path, world["keys"][f"without_{scope}"])
        assert response.status_code == 403, (method, path, scope, response.get_json())
        assert scope in response.get_json()["detail"]
    assert snapshot(session) == before


def tenancy_failures(app, client, session, world, target: str, key: str):
    """The operations on `target`'s ids that answer `key` with anything but a 404 (or
    webargs' 422: the body did not parse), and how many were walked."""
    document = client.get("/api/v1/openapi.json").get_json()
    account = world[target]
    ids = nested_ids(session, account)
    failures, walked, parsed_out = [], 0, 0
    for method, rule, _endpoint in operations(app):
        if "account_id" not in rule.arguments:
            continue
        walked += 1
        path = path_for(rule, account, ids)
        body = body_for(document, rule, method)
        response = send(client, method, path, world["keys"][key], body)
        problem = response.get_json(silent=True) or {}
        parse_error = (response.status_code == 422
                       and str(problem.get("detail", "")).startswith(PARSE_ERROR))
        parsed_out += parse_error
        if not (response.status_code == 404 or parse_error) or \
                account.name in response.get_data(as_text=True):
            failures.append((method, path, body, response.status_code, problem))
        elif response.status_code == 404:
            assert problem["type"].endswith("/not-found")
    return failures, walked, parsed_out


@pytest.mark.parametrize("target, key", [
    ("agency", "other"), ("sub", "other"),  # another tenant on this one's accounts
    ("agency", "sub"),  # a sub-account's key on its agency
])
def test_another_tenants_key_on_this_tenants_ids_is_404_and_changes_nothing(
        app, client, session, world, target, key):
    before = snapshot(session)
    failures, walked, parsed_out = tenancy_failures(app, client, session, world, target, key)
    assert failures == []
    assert walked > 5 and parsed_out < walked / 2, (walked, parsed_out)
    assert snapshot(session) == before


@pytest.mark.own_app
def test_the_walk_catches_an_endpoint_that_forgets_the_tenancy_check(app, client, session,
                                                                      world):
    from flask import Blueprint, jsonify

    from portal.extensions import csrf

    bp = Blueprint("api_v1_forgetful", __name__, url_prefix="/api/v1")

    @bp.post("/accounts/<id:account_id>/forgetful")
    def forgetful(account_id):
        account = db.session.get(Account, account_id)  # no auth.reach
        return jsonify({"name": account.name})

    csrf.exempt(bp)
    app.register_blueprint(bp)
    failures, _walked, _parsed = tenancy_failures(app, client, session, world, "agency",
                                                  "other")
    assert [(method, path) for method, path, *_ in failures] == \
        [("POST", f"/api/v1/accounts/{world['agency'].id}/forgetful")]


def test_every_operation_on_a_sub_account_closed_for_good_is_410(app, client, session, world):
    """As its pages: past the 60 days its data is gone, whatever the endpoint (the webhooks'
    and the usage posting's too) and whatever the scope; and nothing changes."""
    from datetime import timedelta

    from portal.models import AccountStatus

    sub = world["sub"]
    sub.status, sub.canceled_at = AccountStatus.CANCELED, clock.now() - timedelta(days=61)
    session.commit()
    before = snapshot(session)
    document = client.get("/api/v1/openapi.json").get_json()
    walked = 0
    for method, rule, _endpoint in operations(app):
        if "account_id" not in rule.arguments:
            continue
        path = path_for(rule, sub, {})
        response = send(client, method, path, world["keys"]["agency"],
                        body_for(document, rule, method))
        assert response.status_code == 410, (method, path, response.get_data(as_text=True))
        assert response.get_json()["type"].endswith("/gone")
        walked += 1
    assert walked > 40
    assert snapshot(session) == before


def test_an_agency_key_reaches_its_sub_account(client, world):
    response = client.get(f"/api/v1/accounts/{world['sub'].id}",
                          headers=bearer(world["keys"]["agency"]))
    assert response.status_code == 200
    response = client.get(f"/api/v1/accounts/{world['other'].id}",
                          headers=bearer(world["keys"]["agency"]))
    assert response.status_code == 404


def test_listing_accounts_shows_only_what_the_key_reaches(client, world):
    def listed(key):
        data = client.get("/api/v1/accounts", headers=bearer(world["keys"][key])).get_json()
        return sorted(a["id"] for a in data["data"])

    assert listed("agency") == sorted([world["agency"].id, world["sub"].id])
    assert listed("sub") == [world["sub"].id]
    assert listed("other") == [world["other"].id]


def test_an_admin_key_may_not_close_an_account(app, client, session, world):
    assert not __import__("portal.roles", fromlist=["can"]).can(Role.ADMIN, Can.CLOSE)
    for account in (world["sub"], world["agency"]):
        response = client.post(f"/api/v1/accounts/{account.id}/close",
                               json={"confirm": True},
                               headers=bearer(world["keys"]["agency_admin"]))
        assert response.status_code == 403, response.get_json()
        session.expire_all()
        assert session.get(Account, account.id).status != AccountStatus.CANCELED


def test_a_revoked_key_is_refused_everywhere(app, client, session, world):
    from portal.services import api_keys

    key = session.scalars(select(ApiKey).where(ApiKey.account_id == world["other"].id)).one()
    api_keys.revoke(session, world["other"], key.id, world["olive"])
    session.commit()
    for method, rule, _endpoint in operations(app):
        path = path_for(rule, world["other"], {})
        assert send(client, method, path, world["keys"]["other"]).status_code == 401


@pytest.fixture(autouse=True)
def _clock():
    yield
    clock.freeze(None)


def test_the_walk_covers_every_documented_operation(app, client):
    """What the document lists is what the URL map serves (nothing undocumented)."""
    document = client.get("/api/v1/openapi.json").get_json()
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    served = set()
    for method, rule, _endpoint in operations(app):
        served.add((method, openapi_path(rule)))
    assert served == documented
    with app.app_context():
        assert db.session is not None


def test_a_batch_for_another_tenants_accounts_debits_nothing(client, session, world):
    """The usage batch names its accounts in the body: another tenant's key (and a
    sub-account's key for its agency) gets every such event refused, and no money moves."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat()
    before = snapshot(session)
    for key, targets in (("other", ("agency", "sub")), ("sub", ("agency",))):
        events = [{"id": f"walk-{key}-{target}", "account": world[target].id,
                   "item": "minutes", "quantity": 5, "timestamp": now} for target in targets]
        response = client.post("/api/v1/usage/batches", json={"events": events},
                               headers=bearer(world["keys"][key]))
        assert response.status_code in (207, 422), response.get_json()
        if response.status_code == 207:
            data = response.get_json()
            assert data["counts"]["accepted"] == 0, data
            assert {r["index"] for r in data["refused"]} == set(range(len(events)))
            for refused in data["refused"]:
                assert world[targets[refused["index"]]].name not in refused["reason"]
    assert snapshot(session) == before
