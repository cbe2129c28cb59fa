"""Issue 17 (B), through the pages: Billing Settings → Budget on a sub-account (set by its
agency's owners and admins, read-only for everyone else), the tenant, role and CSRF checks,
bad input beside its field, the Budget column on Settings → Accounts, and a budget alert in
the agency's Recent alerts."""

from datetime import UTC, datetime, timedelta

import pytest

from portal import clock
from portal.models import Account, AccountStatus, Role
from portal.models.budgets import Budget
from portal.services import budgets
from tests import factories as f
from tests.conftest import HX
from tests.web.billing_world import build, field_error, flash, post, section, snapshot, url
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_fragment, assert_full_page, body, text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer test-usage-token"}
FORM = {"amount": "100", "thresholds": "50, 80, 100"}


@pytest.fixture
def bw(app, session):
    clock.freeze(NOW - timedelta(hours=1))
    w = build(session)
    clock.freeze(NOW)
    return w


def stored(session, sub):
    session.expire_all()
    row = session.get(Budget, sub.id)
    return None if row is None else (row.amount_cents, row.thresholds, row.pause_calls)


def usage(client, account_id, key, minutes):
    response = client.post(f"/api/accounts/{account_id}/usage", headers=AUTH,
                           json={"idempotency_key": key, "items": {"minutes": minutes}})
    assert response.status_code == 201, response.get_json()


# ----------------------------------------------------------------------------- setting

def test_the_agency_admin_sets_a_budget_in_place(client, session, bw):
    sign_in_as(client, bw.ada)
    html = body(client.get(url(bw.bayside)))
    budget = section(html, "budget")
    assert "No budget: set one" in text(budget)
    assert 'value="50, 80, 100"' in budget  # the default thresholds
    response = post(client, url(bw.bayside, "budget"),
                    {"amount": "250", "thresholds": "25, 90", "pause_calls": "on"}, headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="budget"')
    assert flash("success", "Saved: Bayside Dental's budget is $250.00 a month, with alerts "
                            "at 25%, 90%; calls pause when it is reached.") in html
    assert "$0.00 of $250.00 used this month (0%); $250.00 left." in text(html)
    assert stored(session, bw.bayside) == (25000, [25, 90], True)


def test_without_javascript_the_form_goes_back_to_the_page(client, session, bw):
    sign_in_as(client, bw.avery)  # the agency's owner
    response = post(client, url(bw.harbor, "budget"), FORM)
    assert response.status_code == 303
    assert response.location.endswith(url(bw.harbor) + "#budget")
    html = assert_full_page(client.get(response.location))
    assert flash("success", "Saved: Harbor Law's budget is $100.00 a month, with alerts at "
                            "50%, 80%, 100%.") in html
    assert stored(session, bw.harbor) == (10000, [50, 80, 100], False)
    response = post(client, url(bw.harbor, "budget"), {**FORM, "remove": "1"})
    assert response.status_code == 303
    assert "The budget of Harbor Law is removed." in text(body(client.get(response.location)))
    assert stored(session, bw.harbor) is None


@pytest.mark.parametrize("form, errors", [
    ({"amount": "", "thresholds": "50"}, {"amount": "The budget is required."}),
    ({"amount": "ten", "thresholds": "50"},
     {"amount": "The budget must be a dollar amount, like 25 or 25.00."}),
    ({"amount": "0", "thresholds": "50"}, {"amount": "The budget must be more than zero."}),
    ({"amount": "100", "thresholds": "0, 150"},
     {"thresholds": "Alert percentages are from 1 to 100 (0 is not)."}),
    ({"amount": "100", "thresholds": "10, 20, 30, 40, 50, 60"},
     {"thresholds": "At most 5 alert percentages (6 were given)."}),
    ({"amount": "-5", "thresholds": "half"},
     {"amount": "The budget must be more than zero.",
      "thresholds": "Alert percentages are whole numbers from 1 to 100 (half is not)."}),
])
def test_bad_input_is_refused_beside_its_field_as_typed(client, session, bw, form, errors):
    sign_in_as(client, bw.ada)
    budgets.set_budget(session, bw.bayside, bw.ada, 5000)
    session.commit()
    before = snapshot(session)
    response = post(client, url(bw.bayside, "budget"), form, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<section class="card" id="budget"')
    for field, message in errors.items():
        assert field_error(field, message) in html
    assert f'value="{form["thresholds"]}"' in html  # as typed
    assert snapshot(session) == before
    assert stored(session, bw.bayside) == (5000, [50, 80, 100], False)
    # Without JavaScript: the whole page, 422, the same messages.
    response = post(client, url(bw.bayside, "budget"), form)
    assert response.status_code == 422
    for message in errors.values():
        assert message in text(body(response))


def test_the_budget_post_needs_the_csrf_token(client, session, bw):
    sign_in_as(client, bw.ada)
    before = snapshot(session)
    for headers in ({}, HX):
        response = post(client, url(bw.bayside, "budget"), FORM, csrf=False, headers=headers)
        assert response.status_code == 400
    assert snapshot(session) == before
    assert stored(session, bw.bayside) is None


# ----------------------------------------------------------------------------- who

def test_the_sub_accounts_own_people_read_it_and_cannot_set_it(client, session, bw):
    budgets.set_budget(session, bw.harbor, bw.avery, 10000, [50, 100], pause_calls=True)
    payer = f.user(session, "pays@harbor.test")
    f.member(session, payer, bw.harbor, Role.BILLING)
    session.commit()
    for user in (bw.hal, payer):  # Harbor Law's own admin, its customer's billing user
        client.get("/logout")
        sign_in_as(client, user)
        budget = section(body(client.get(url(bw.harbor))), "budget")
        assert "$0.00 of $100.00 used this month (0%)" in text(budget)
        assert "Set by Northwind Agency: only its owners and admins can change it." in \
            text(budget)
        assert "<form" not in budget
        before = snapshot(session)
        response = post(client, url(bw.harbor, "budget"), {"amount": "1", "thresholds": "1"})
        assert response.status_code == 403, user.email
        assert snapshot(session) == before
    assert stored(session, bw.harbor) == (10000, [50, 100], True)


def test_another_agency_gets_404_and_an_agency_or_standalone_has_no_budget(client, session,
                                                                            bw):
    rival_owner = f.user(session, "rival@example.test")
    rival = f.agency(session, "Rival Agency", owner=rival_owner)
    f.sub(session, rival, "Rival Sub")
    session.commit()
    sign_in_as(client, rival_owner)
    before = snapshot(session)
    assert post(client, url(bw.bayside, "budget"), FORM).status_code == 404
    assert post(client, url(bw.bayside, "budget"), FORM, headers=HX).status_code == 404
    assert snapshot(session) == before
    client.get("/logout")
    sign_in_as(client, bw.avery)
    assert post(client, url(bw.agency, "budget"), FORM).status_code == 404
    assert 'id="budget"' not in body(client.get(url(bw.agency)))
    client.get("/logout")
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "budget"), FORM).status_code == 404
    assert 'id="budget"' not in body(client.get(url(bw.solo)))
    assert stored(session, bw.bayside) is None


# ----------------------------------------------------------------------------- alerts

def test_a_threshold_reached_shows_in_the_agencys_recent_alerts(client, session, bw):
    sign_in_as(client, bw.avery)
    post(client, url(bw.bayside, "budget"), {"amount": "10", "thresholds": "50, 100",
                                             "pause_calls": "on"})
    usage(client, bw.bayside.id, "u-1", 120)  # $6.00 of $10.00
    alerts_html = section(body(client.get(url(bw.agency))), "recent-alerts")
    assert ("Budget Bayside Dental used 50% of its monthly budget of $10.00: $6.00 spent this "
            "month.") in text(alerts_html)
    budget = section(body(client.get(url(bw.bayside))), "budget")
    assert "$6.00 of $10.00 used this month (60%); $4.00 left." in text(budget)
    assert "told this month: 50%" in text(budget)
    usage(client, bw.bayside.id, "u-2", 80)  # $10.00: reached, paused
    session.expire_all()
    assert session.get(Account, bw.bayside.id).status == AccountStatus.BUDGET_PAUSED
    budget = section(body(client.get(url(bw.bayside))), "budget")
    assert "Calls paused: budget reached" in text(budget)
    # Raising the budget lifts the pause.
    post(client, url(bw.bayside, "budget"), {"amount": "20", "thresholds": "50, 100",
                                             "pause_calls": "on"})
    session.expire_all()
    assert session.get(Account, bw.bayside.id).status == AccountStatus.ACTIVE


# ----------------------------------------------------------------------------- Accounts

def test_the_accounts_list_shows_and_sorts_by_the_budget_used(client, session, bw):
    budgets.set_budget(session, bw.bayside, bw.avery, 10_00)
    budgets.set_budget(session, bw.harbor, bw.avery, 100_00)
    session.commit()
    sign_in_as(client, bw.avery)
    usage(client, bw.bayside.id, "a-1", 60)  # $3.00 of $10.00: 30%
    usage(client, bw.harbor.id, "a-2", 1000)  # $50.00 of $100.00: 50%
    extra = f.sub(session, bw.agency, "Aardvark Co")  # no budget
    session.commit()
    html = body(client.get(f"/accounts/{bw.agency.id}/sub-accounts?sort=budget"))
    assert "$3.00 / $10.00 (30%)" in text(html.split(f'data-testid="budget-{bw.bayside.id}"')[1]
                                          .split("</td>")[0])
    assert "$50.00 / $100.00 (50%)" in text(html.split(f'data-testid="budget-{bw.harbor.id}"')[1]
                                            .split("</td>")[0])
    assert "No budget" in html.split(f'data-testid="budget-{extra.id}"')[1].split("</td>")[0]
    order = [html.index(f'data-testid="budget-{s.id}"') for s in (bw.harbor, bw.bayside, extra)]
    assert order == sorted(order)  # 50%, 30%, none
    assert 'aria-sort="descending"' in html.split('data-testid="budget-header"')[1][:40]
    html = body(client.get(f"/accounts/{bw.agency.id}/sub-accounts?sort=budget_asc"))
    order = [html.index(f'data-testid="budget-{s.id}"') for s in (extra, bw.bayside, bw.harbor)]
    assert order == sorted(order)


def test_the_list_still_reads_in_one_query_with_budgets(session, bw):
    """The Budget column comes with the list's row query (no statement per row)."""
    from sqlalchemy import event

    from portal.extensions import db
    from portal.services import accounts

    for i in range(5):
        sub = f.sub(session, bw.agency, f"Sub {i}")
        budgets.set_budget(session, sub, bw.avery, 1000 + i)
    session.commit()
    agency = session.get(Account, bw.agency.id)
    seen = []

    def count(conn, cursor, statement, *rest):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = accounts.list_sub_accounts(session, agency, sort="budget")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(seen) == 1  # 7 rows on one page: no count query either
    assert [row.budget_cents for row in page.items] == [1000, 1001, 1002, 1003, 1004, None,
                                                        None]  # none used: by name; no budget last


def test_change_history_lists_the_budget(client, session, bw):
    sign_in_as(client, bw.avery)
    post(client, url(bw.bayside, "budget"), {"amount": "250", "thresholds": "50, 100"})
    post(client, url(bw.bayside, "budget"), {"amount": "300", "thresholds": "50, 100",
                                             "pause_calls": "on"})
    listed = text(body(client.get(f"/accounts/{bw.bayside.id}/history/")))
    assert "Monthly budget" in listed
    assert "$250.00" in listed and "$300.00" in listed
    assert "Pause calls when the budget is reached" in listed
