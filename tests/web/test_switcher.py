"""The account switcher (/switch?q=): only accounts the user reaches."""

from datetime import UTC, datetime

import pytest

from portal import clock
from portal.models import Role
from tests import factories as f
from tests.conftest import HX, Auth
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_fragment, assert_full_page, body

EVERYONE = ["Northwind Agency", "Bayside Dental", "Harbor Law", "Closed Clinic",
            "Southwind Agency", "Rival Customer", "Solo Shop"]


@pytest.fixture
def world(session):
    # Closed Clinic was canceled on November 1: after 60 days it would leave the switcher
    clock.freeze(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    owner = f.user(session, email="owner@example.test")
    northwind = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, northwind, "Bayside Dental")
    f.sub(session, northwind, "Harbor Law")
    f.sub(session, northwind, "Closed Clinic", canceled_at=datetime(2026, 11, 1, tzinfo=UTC))
    southwind = f.agency(session, "Southwind Agency", owner=f.user(session))
    f.sub(session, southwind, "Rival Customer")
    f.standalone(session, "Solo Shop", admin=f.user(session))
    sub_user = f.user(session, email="sub@example.test")
    f.member(session, sub_user, bayside, Role.USER)
    agency_user = f.user(session, email="staff@example.test")
    f.member(session, agency_user, northwind, Role.USER)
    session.commit()
    return {"owner": owner, "sub_user": sub_user, "agency_user": agency_user}


def listed(html: str) -> list[str]:
    return [name for name in EVERYONE if f">{name}</a>" in html]


@pytest.mark.parametrize("who,expected", [
    ("owner", ["Northwind Agency", "Bayside Dental", "Harbor Law", "Closed Clinic"]),
    ("sub_user", ["Bayside Dental"]),
    ("agency_user", ["Northwind Agency"]),  # a plain user of the agency: not its subs
])
@pytest.mark.parametrize("headers", [{}, HX], ids=["full", "htmx"])
def test_lists_only_reachable_accounts(client, world, who, expected, headers):
    sign_in_as(client, world[who])
    response = client.get("/switch?q=", headers=headers)
    assert response.status_code == 200
    if headers:
        html = assert_fragment(response, '<ul class="switch-list"')
    else:
        html = assert_full_page(response, nav=False)
    assert sorted(listed(html)) == sorted(expected)
    for name in set(EVERYONE) - set(expected):
        assert name not in html


def test_agency_comes_first_and_each_entry_says_what_it_is(client, world):
    sign_in_as(client, world["owner"])
    html = body(client.get("/switch?q=", headers=HX))
    assert html.index("Northwind Agency") < html.index("Bayside Dental")
    assert "Agency</span>" in html
    assert "Sub-account · Canceled</span>" in html


@pytest.mark.parametrize("q,expected", [
    ("bay", ["Bayside Dental"]),
    ("WIND", ["Northwind Agency"]),  # never Southwind, another agency
    ("rival", []),
    ("solo", []),
    ("\x00", []),  # PostgreSQL refuses NUL in a string: once a 500 there
])
def test_search_stays_inside_what_the_user_reaches(client, world, q, expected):
    sign_in_as(client, world["owner"])
    html = body(client.get("/switch", query_string={"q": q}, headers=HX))
    assert listed(html) == expected
    if not expected:
        assert f"No account matches “{q}”." in html


def test_each_entry_opens_its_account(client, world):
    sign_in_as(client, world["owner"])
    html = body(client.get("/switch?q=bay"))
    start = html.index('<ul class="switch-list"')
    href = html[start:].split('href="', 1)[1].split('"', 1)[0]
    page = client.get(href)
    assert page.status_code == 200
    assert 'data-testid="current-account">Bayside Dental<' in body(page)


def test_the_header_offers_the_switcher_only_to_users_with_several_accounts(
        app, client, auth, session, world):
    auth.login("owner@example.test")
    assert '<details class="switcher">' in body(client.get("/", follow_redirects=True))

    single = app.test_client()
    Auth(single).login("sub@example.test")
    html = body(single.get("/", follow_redirects=True))
    assert '<details class="switcher">' not in html
    assert 'data-testid="current-account">Bayside Dental<' in html
