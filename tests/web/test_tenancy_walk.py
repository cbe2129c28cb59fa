"""Tenant checks for every route, new ones included (issue 15: Settings → Users, the
single-task links' agency side, whatever comes next): every route under /accounts/<id>/ ×
GET/POST, asked by someone who doesn't reach that account, answers 404 before its view runs
(each view swapped for a stub that records it ran, so nothing changes), without the
account's name; asked by its own owner, the stub runs (the walk really reaches the views).

The people asking: the owner of another agency (for an agency and its sub-accounts), the
owner of a standalone account, an agency's plain user (who doesn't reach its sub-accounts),
a sub-account's owner (for its agency and a sibling). The routes come from the app's URL
map, so a route added later is walked without a change here."""

from html import unescape

import pytest

from portal.models import BillingMode, Role
from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.test_role_matrix import METHODS, account_rules, token_for, url_of


@pytest.fixture
def world(session):
    people = {name: f.user(session, email=f"{name}@walk.test") for name in (
        "agency_owner", "agency_user", "sub_owner", "rival_owner", "solo_owner")}
    agency = f.agency(session, "Northwind Walk Agency", owner=people["agency_owner"])
    f.member(session, people["agency_user"], agency, Role.USER)
    sub = f.sub(session, agency, "Bayside Walk Dental", billing=BillingMode.CUSTOMER)
    f.member(session, people["sub_owner"], sub, Role.OWNER)
    sibling = f.sub(session, agency, "Harbor Walk Law")
    rival = f.agency(session, "Southwind Walk Agency", owner=people["rival_owner"])
    solo = f.standalone(session, "Solo Walk Shop", owner=people["solo_owner"])
    session.commit()
    return people, {"agency": agency, "sub": sub, "sibling": sibling, "rival": rival,
                    "solo": solo}


# (who asks, whose account): never theirs to reach
OUT_OF_REACH = [
    ("rival_owner", "agency"), ("rival_owner", "sub"), ("solo_owner", "sub"),
    ("agency_user", "sub"), ("sub_owner", "agency"), ("sub_owner", "sibling"),
    ("agency_owner", "solo"), ("agency_owner", "rival"),
]


@pytest.mark.own_app
def test_every_account_route_is_not_found_to_whoever_does_not_reach_the_account(app, world):
    people, accounts = world
    ran = []
    for rule in account_rules(app):
        def stub(*args, _endpoint=rule.endpoint, **kwargs):
            ran.append(_endpoint)
            return "stub ran"
        app.view_functions[rule.endpoint] = stub

    walked = 0
    for who, whose in OUT_OF_REACH:
        account = accounts[whose]
        client = sign_in_as(app.test_client(), people[who])
        token = token_for(client)
        for rule in account_rules(app):
            url = url_of(app, rule, account.id)
            for method in METHODS:
                if method not in rule.methods:
                    continue
                ran.clear()
                response = client.open(url, method=method, headers={"X-CSRFToken": token})
                where = f"{who} {method} {url} ({rule.endpoint})"
                assert response.status_code == 404, where
                assert ran == [], where
                assert account.name not in unescape(response.get_data(as_text=True)), where
                walked += 1
    assert walked > len(OUT_OF_REACH) * 80

    # the same URLs asked by the account's owner reach the views: the walk's URLs are real
    owner = sign_in_as(app.test_client(), people["agency_owner"])
    token = token_for(owner)
    reached = 0
    for rule in account_rules(app):
        if "GET" not in rule.methods:
            continue
        ran.clear()
        response = owner.get(url_of(app, rule, accounts["agency"].id),
                             headers={"X-CSRFToken": token})
        if response.status_code == 200:
            assert ran == [rule.endpoint], rule.endpoint
            reached += 1
    assert reached > 30
