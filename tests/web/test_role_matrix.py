"""The role matrix (portal/roles.py) is what every account page's guard reads (issue 15).

The walk: every route under /accounts/<id>/ × every method × every role, with each view
swapped for a stub that only says it ran, so the answer is the guard's alone (and nothing
changes: no card is added, no account closed). Allowed by the matrix: the stub ran (200).
Refused: 403 with the matrix's sentence and the stub never ran (a billing user asking for
the account's front page is sent to Billing Settings instead). Then the real pages for each
role, and a few sentences of the matrix itself, so that a change to it is a change to this
file too.
"""

from html import unescape

import pytest
from werkzeug.routing.converters import AnyConverter

from portal import roles
from portal.models import Role
from portal.roles import Can
from tests import factories as f
from tests.web.conftest import sign_in_as

ACCOUNT_PREFIX = "/accounts/<id:account_id>"
METHODS = ("GET", "POST")


def account_rules(app):
    return [rule for rule in app.url_map.iter_rules()
            if rule.rule.startswith(ACCOUNT_PREFIX)]


def url_of(app, rule, account_id: int) -> str:
    values = {"account_id": account_id}
    for name in rule.arguments - {"account_id"} - set(rule.defaults or {}):
        converter = rule._converters.get(name)
        values[name] = (sorted(converter.items)[0] if isinstance(converter, AnyConverter)
                        else 1)
    with app.test_request_context():
        return app.url_for(rule.endpoint, **values)


@pytest.fixture
def members(session):
    """One standalone account with a member in each role."""
    account = f.standalone(session, "Matrix Co")
    people = {}
    for role in Role:
        person = f.user(session, email=f"{role.value}@matrix.test")
        f.member(session, person, account, role)
        people[role] = person
    session.commit()
    return account, people


def token_for(client) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, "/security/")


def test_every_account_route_is_in_the_matrix(app):
    """No account page falls to the fail-closed default: each endpoint names its capability
    (a new blueprint's pages need a line in portal/roles.py)."""
    endpoints = {rule.endpoint for rule in account_rules(app)}
    assert len(endpoints) > 60
    unlisted = sorted(e for e in endpoints if roles.needs(e) is None)
    assert unlisted == []


def test_the_matrix_is_the_issue_s(app):
    """owner: everything; admin: everything but owners and closing; billing: billing only;
    user: calls, numbers, agent statuses."""
    assert roles.roles_that(Can.CLOSE) == [Role.OWNER]
    assert roles.roles_that(Can.OWNERS) == [Role.OWNER]
    assert roles.roles_that(Can.BILLING) == [Role.OWNER, Role.ADMIN, Role.BILLING]
    assert roles.roles_that(Can.SETTINGS) == [Role.OWNER, Role.ADMIN]
    assert roles.roles_that(Can.PEOPLE) == [Role.OWNER, Role.ADMIN]
    assert roles.MATRIX[Role.BILLING] == {Can.BILLING}
    assert roles.MATRIX[Role.USER] == {Can.OVERVIEW, Can.CALLS, Can.NUMBERS, Can.AGENT_STATUS}
    assert roles.MATRIX[Role.OWNER] == set(Can)
    for endpoint in ("billing.index", "billing.pay", "billing.receipt", "billing.statement_pdf",
                     "billing.new_card", "billing.logs"):
        assert roles.needs(endpoint) == Can.BILLING
    assert roles.needs("accounts.close") == Can.CLOSE
    assert roles.needs("accounts.cancel_agency") == Can.CLOSE
    assert roles.needs("calls.index") == Can.CALLS
    assert roles.needs("people.index") == Can.PEOPLE
    assert roles.needs("no_such.page") is None and not roles.allows(Role.OWNER, "no_such.page")


@pytest.mark.own_app
def test_every_route_by_every_role_is_allowed_or_refused_as_the_matrix_says(app, members):
    account, people = members
    ran = []
    for rule in account_rules(app):
        def stub(*args, _endpoint=rule.endpoint, **kwargs):
            ran.append(_endpoint)
            return "stub ran"
        app.view_functions[rule.endpoint] = stub

    checked = 0
    for role, person in people.items():
        client = app.test_client()
        sign_in_as(client, person)
        token = token_for(client)
        for rule in account_rules(app):
            url = url_of(app, rule, account.id)
            for method in METHODS:
                if method not in rule.methods:
                    continue
                ran.clear()
                response = client.open(url, method=method, headers={"X-CSRFToken": token})
                where = f"{role} {method} {url} ({rule.endpoint})"
                if roles.allows(role, rule.endpoint):
                    assert response.status_code == 200, where
                    assert ran == [rule.endpoint], where
                elif rule.endpoint == "accounts.show" and role == Role.BILLING:
                    assert response.status_code == 303, where
                    assert response.location.endswith(f"/accounts/{account.id}/billing/"), where
                    assert ran == [], where
                else:
                    assert response.status_code == 403, where
                    assert ran == [], where
                    if method == "GET":
                        assert roles.refusal(rule.endpoint) in unescape(response.get_data(
                            as_text=True)), where
                checked += 1
    # 4 roles × every (route, method) pair: the walk really walked
    assert checked > 4 * 80


@pytest.mark.own_app
def test_an_agency_s_roles_reach_its_sub_accounts_by_the_same_matrix(app, session):
    """An agency owner or admin reaches a sub-account with their agency role; an agency's
    billing or user member doesn't reach its sub-accounts at all (404, not 403)."""
    agency = f.agency(session, "Matrix Agency")
    sub = f.sub(session, agency, "Matrix Sub")
    people = {}
    for role in Role:
        person = f.user(session, email=f"agency-{role.value}@matrix.test")
        f.member(session, person, agency, role)
        people[role] = person
    session.commit()
    for rule in account_rules(app):
        app.view_functions[rule.endpoint] = lambda *a, **k: "stub ran"
    for role, person in people.items():
        client = sign_in_as(app.test_client(), person)
        for endpoint in ("billing.index", "calls.index", "accounts.close_confirm",
                         "presets.queues"):
            rule = next(r for r in account_rules(app) if r.endpoint == endpoint)
            response = client.get(url_of(app, rule, sub.id))
            if role in (Role.OWNER, Role.ADMIN):
                expected = 200 if roles.allows(role, endpoint) else 403
            else:
                expected = 404
            assert response.status_code == expected, (role, endpoint)


def test_the_real_pages_answer_each_role_as_the_matrix_says(client, members):
    """Without stubs: the pages themselves (and their own checks) agree with the matrix."""
    account, people = members
    base = f"/accounts/{account.id}"
    expectations = {
        Role.OWNER: {"/billing/": 200, "/calls/": 200, "/close": 200, "/plan/": 200},
        Role.ADMIN: {"/billing/": 200, "/calls/": 200, "/close": 403, "/plan/": 200},
        Role.BILLING: {"/billing/": 200, "/billing/payments": 200, "/calls/": 403,
                       "/call-queues": 403, "/agent-statuses/": 403,
                       "/numbers/": 403, "/plan/": 403, "/close": 403, "/": 303},
        Role.USER: {"/": 200, "/calls/": 200, "/numbers/": 200, "/agent-statuses/": 200,
                    "/call-queues": 200, "/call-queues/new": 403,
                    "/billing/": 403, "/billing/payments": 403, "/plan/": 403,
                    "/close": 403},
    }
    for role, pages in expectations.items():
        with client.session_transaction() as s:
            s.clear()
        sign_in_as(client, people[role])
        for path, status in pages.items():
            response = client.get(base + path)
            assert response.status_code == status, (role, path, response.status_code)


def test_a_refused_post_changes_nothing(client, session, members):
    """A user's POST to Billing Settings is refused before the view: the setting stays."""
    from portal.services import billing

    account, people = members
    sign_in_as(client, people[Role.USER])
    response = client.post(f"/accounts/{account.id}/billing/critical-phone",
                           data={"phone": "+14155550100"},
                           headers={"X-CSRFToken": token_for(client)})
    assert response.status_code == 403
    assert roles.REFUSED[Can.BILLING] in unescape(response.get_data(as_text=True))
    session.expire_all()
    assert billing.settings_for(session, account).critical_phone in (None, "")
    # the same request from the owner is a valid one: it sets the number
    with client.session_transaction() as s:
        s.clear()
    sign_in_as(client, people[Role.OWNER])
    response = client.post(f"/accounts/{account.id}/billing/critical-phone",
                           data={"phone": "+14155550100"},
                           headers={"X-CSRFToken": token_for(client)})
    assert response.status_code in (200, 303)
    session.expire_all()
    assert billing.settings_for(session, account).critical_phone


def test_account_settings_offer_close_only_to_a_role_that_may_close(client, members):
    """The page shows the Close account button only where the guard lets its dialog open
    (tenancy.may reads the same matrix): an admin reads who can close instead."""
    account, people = members
    page = f"/accounts/{account.id}/"
    expected = {Role.OWNER: True, Role.ADMIN: False}
    for role, shows_button in expected.items():
        with client.session_transaction() as s:
            s.clear()
        sign_in_as(client, people[role])
        html = unescape(client.get(page).get_data(as_text=True))
        assert ("Close account</a>" in html) is shows_button, role
        assert ("Only the account's owners can close it." in html) is not shows_button, role
        assert (f'href="/accounts/{account.id}/close"' in html) is shows_button, role


def test_the_main_menu_lists_only_the_pages_a_role_opens(client, members):
    account, people = members
    with client.session_transaction() as s:
        s.clear()
    sign_in_as(client, people[Role.BILLING])
    html = client.get(f"/accounts/{account.id}/billing/").get_data(as_text=True)
    assert f'href="/accounts/{account.id}/billing/"' in html
    for hidden in ("/calls/", "/numbers/", "/users/", "/history/"):
        assert f'href="/accounts/{account.id}{hidden}"' not in html, hidden


@pytest.fixture(params=["standalone", "agency", "customer-billed sub-account"])
def any_members(request, session):
    """A member in each role on a standalone account, an agency, or a customer-billed
    sub-account (its Billing Settings are its own)."""
    from portal.models import BillingMode

    kind = request.param
    if kind == "standalone":
        account = f.standalone(session, "Walk Co")
    elif kind == "agency":
        account = f.agency(session, "Walk Agency")
        f.sub(session, account, "Walk Sub")
    else:
        account = f.sub(session, f.agency(session, "Walk Agency"), "Walk Sub",
                        billing=BillingMode.CUSTOMER)
    people = {}
    for role in Role:
        person = f.user(session, email=f"{role.value}@walk.test")
        f.member(session, person, account, role)
        people[role] = person
    session.commit()
    return account, people


def test_no_page_links_a_role_to_a_page_it_may_not_open(app, client, any_members):
    """Every role walks the account's pages it may open (GET, following links and the
    targets of hx-get), and no page offers it a link, button or form the guard would
    refuse: what the matrix forbids isn't shown either."""
    import re
    from urllib.parse import urlsplit

    from werkzeug.exceptions import HTTPException

    account, people = any_members
    base = f"/accounts/{account.id}/"
    adapter = app.url_map.bind("localhost")
    target = re.compile(rf'(?:href|hx-get|hx-post|action)="(/accounts/{account.id}/[^"#]*)"')
    for role in Role:
        with client.session_transaction() as s:
            s.clear()
        sign_in_as(client, people[role])
        start = base if roles.allows(role, "accounts.show") else f"{base}billing/"
        seen, queue, offered = set(), [start], []
        while queue and len(seen) < 80:
            path = queue.pop()
            if path in seen:
                continue
            seen.add(path)
            response = client.get(path)
            if response.status_code != 200 or "text/html" not in response.content_type:
                continue
            for url in target.findall(unescape(response.get_data(as_text=True))):
                url = urlsplit(url).path
                try:
                    endpoint, _ = adapter.match(url, method="GET")
                except HTTPException:
                    try:
                        endpoint, _ = adapter.match(url, method="POST")
                    except HTTPException:
                        continue
                offered.append((path, url, endpoint))
                if roles.allows(role, endpoint) and url not in seen:
                    queue.append(url)
        refused = [(page, url) for page, url, endpoint in offered
                   if not roles.allows(role, endpoint)]
        assert not refused, (role, refused)
        assert len(seen) > 1, role
