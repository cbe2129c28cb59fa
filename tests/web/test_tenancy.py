"""Tenant isolation: every route that takes an account id answers 404 for an account the
user doesn't reach, whatever the id, and never shows that account's name."""

from datetime import UTC, datetime

import pytest

from portal import clock
from portal.models import Role
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.pages import NOT_FOUND, body

ROUTES = [
    "/accounts/{id}/",
    "/accounts/{id}/sub-accounts",
    "/accounts/{id}/calls/",
    "/accounts/{id}/calls/export.csv",
    "/accounts/{id}/numbers/",
]
SUB_ROUTES = [r for r in ROUTES if not r.endswith("sub-accounts")]  # subs have no subs
MISSING = "missing"
# ids no account can have: past PostgreSQL's integer, past SQLite's (once a 500 on both)
TOO_BIG = ["2147483648", "99999999999999999999"]


@pytest.fixture
def world(session):
    """Two agencies with subs, a standalone account, and a user in every position."""
    # Closed Clinic was canceled on November 1: after 60 days its pages would answer 410
    clock.freeze(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    users = {name: f.user(session, email=f"{name}@example.test") for name in (
        "owner_a", "admin_a", "user_a", "sub_user", "owner_b", "solo_admin")}
    a = f.agency(session, "Northwind Agency", owner=users["owner_a"])
    f.member(session, users["admin_a"], a, Role.ADMIN)
    f.member(session, users["user_a"], a, Role.USER)
    a1 = f.sub(session, a, "Bayside Dental")
    a2 = f.sub(session, a, "Harbor Law")
    a3 = f.sub(session, a, "Closed Clinic", canceled_at=datetime(2026, 11, 1, tzinfo=UTC))
    f.member(session, users["sub_user"], a1, Role.ADMIN)
    b = f.agency(session, "Southwind Agency", owner=users["owner_b"])
    b1 = f.sub(session, b, "Rival Customer")
    solo = f.standalone(session, "Solo Shop", admin=users["solo_admin"])
    accounts = {"a": a, "a1": a1, "a2": a2, "a3": a3, "b": b, "b1": b1, "solo": solo}
    for account in accounts.values():
        # something on every page that would give the account away if shown
        f.number(session, account, label=f"{account.name} line")
        f.call(session, account, datetime(2026, 11, 20, 9, tzinfo=UTC),
               caller_name=f"Caller of {account.name}")
    session.commit()
    return users, accounts


def _target(accounts, key):
    if key == MISSING:
        return max(a.id for a in accounts.values()) + 1000, None
    return accounts[key].id, accounts[key].name


# (who asks, whose account) → always 404
OUT_OF_REACH = [
    pytest.param("owner_a", "b1", id="another-agencys-sub"),
    pytest.param("sub_user", "a2", id="sibling-sub"),
    pytest.param("sub_user", "a", id="own-agency-from-a-sub"),
    pytest.param("owner_a", "b", id="another-agency"),
    pytest.param("owner_a", "solo", id="someone-elses-standalone"),
    pytest.param("solo_admin", "a1", id="standalone-admin-to-a-sub"),
    pytest.param("user_a", "a1", id="agency-plain-user-to-a-sub"),
    pytest.param("owner_a", MISSING, id="nonexistent"),
]


@pytest.mark.parametrize("who,whose", OUT_OF_REACH)
def test_out_of_reach_is_404_on_every_route_without_the_name(client, world, who, whose):
    users, accounts = world
    account_id, name = _target(accounts, whose)
    sign_in_as(client, users[who])
    for route in ROUTES:
        path = route.format(id=account_id)
        for headers in ({}, HX):
            response = client.get(path, headers=headers)
            assert response.status_code == 404, (path, headers)
            html = body(response)
            if headers:  # htmx: the message in place, never a page in a section (issue 14)
                assert response.headers["HX-Retarget"] == "#messages", path
                assert "<strong>Page not found.</strong>" in html, path
                assert "<h1" not in html, path
            else:
                assert "<h1>Page not found</h1>" in html, path
            assert NOT_FOUND in html, path
            assert "Content-Disposition" not in response.headers, path
            if name:
                assert name not in html, path
                assert f"{name} line" not in html, path


@pytest.mark.parametrize("account_id", TOO_BIG)
def test_an_id_beyond_any_account_is_404(client, session, account_id):
    owner = f.user(session)
    f.agency(session, "Northwind Agency", owner=owner)
    session.commit()
    sign_in_as(client, owner)
    for route in ROUTES:
        response = client.get(route.format(id=account_id))
        assert response.status_code == 404, route
        assert NOT_FOUND in body(response), route


def test_unreachable_and_nonexistent_look_the_same(client, world):
    """No way to tell "exists, not yours" from "doesn't exist"."""
    users, accounts = world
    sign_in_as(client, users["owner_a"])
    rival = client.get(f"/accounts/{accounts['b1'].id}/calls/")
    missing = client.get(f"/accounts/{_target(accounts, MISSING)[0]}/calls/")
    assert rival.status_code == missing.status_code == 404

    def section(response):
        html = body(response)
        return html[html.index('<section class="card narrow error-page">'):]

    assert section(rival) == section(missing)


def test_the_last_account_in_the_session_is_rechecked(client, world):
    """An account id left in the session from earlier is not trusted on the next visit."""
    users, accounts = world
    sign_in_as(client, users["owner_a"])
    with client.session_transaction() as s:
        s["account_id"] = accounts["b1"].id
    response = client.get("/")
    assert response.location == f"/accounts/{accounts['a'].id}/"


# --- who reaches what -----------------------------------------------------------------------

def _reaches(client, route, account):
    response = client.get(route.format(id=account.id))
    assert response.status_code == 200, (route, account)
    if route.endswith(".csv"):
        assert f"Caller of {account.name}" in body(response)
    else:
        assert account.name in body(response)


@pytest.mark.parametrize("who", ["owner_a", "admin_a"])
@pytest.mark.parametrize("route", SUB_ROUTES)
def test_agency_owner_and_admin_reach_every_sub_of_their_agency(client, world, who, route):
    users, accounts = world
    sign_in_as(client, users[who])
    for key in ("a1", "a2", "a3"):
        _reaches(client, route, accounts[key])


@pytest.mark.parametrize("route", ROUTES)
def test_agency_owner_reaches_the_agency(client, world, route):
    users, accounts = world
    sign_in_as(client, users["owner_a"])
    _reaches(client, route, accounts["a"])


@pytest.mark.parametrize("route", SUB_ROUTES)
def test_sub_account_user_reaches_only_their_sub(client, world, route):
    users, accounts = world
    sign_in_as(client, users["sub_user"])
    _reaches(client, route, accounts["a1"])
    for key in ("a", "a2", "a3", "b1"):
        assert client.get(route.format(id=accounts[key].id)).status_code == 404


@pytest.mark.parametrize("route", SUB_ROUTES)
def test_agency_plain_user_reaches_the_agency_but_not_its_subs(client, world, route):
    users, accounts = world
    sign_in_as(client, users["user_a"])
    _reaches(client, route, accounts["a"])
    for key in ("a1", "a2", "a3"):
        response = client.get(route.format(id=accounts[key].id))
        assert response.status_code == 404
        assert accounts[key].name not in body(response)


def test_sub_user_page_does_not_show_the_agency_or_siblings(client, world):
    users, accounts = world
    sign_in_as(client, users["sub_user"])
    for route in SUB_ROUTES:
        html = body(client.get(route.format(id=accounts["a1"].id)))
        assert "Harbor Law" not in html
        assert f'/accounts/{accounts["a"].id}/sub-accounts' not in html  # no Accounts link
