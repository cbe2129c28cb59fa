"""Settings → Account Settings → Change Plan through the test client: the plans with their
fees, the confirmation step the server checks, an agency that can't leave the Agency plan
while it has active sub-accounts, roles, tenancy, CSRF and the account's version."""

import json

import pytest
from sqlalchemy import select

from portal.models import Account, AccountKind, Version
from portal.services import lifecycle, plans
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, NOW, READ_ONLY, post, snapshot
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    shown,
    table_rows,
)

CONFIRM_NEEDED = "Changing the plan needs the confirmation: nothing was changed."


def url(account, rest=""):
    return f"/accounts/{account.id}/plan/{rest}"


def plan_versions(session, account):
    session.expire_all()
    return [(v.action, json.loads(v.changes_json), v.actor_label) for v in session.scalars(
        select(Version).where(Version.account_id == account.id,
                              Version.record_type == "account").order_by(Version.id))]


def reloaded(session, account) -> Account:
    session.expire_all()
    return session.get(Account, account.id)


def test_the_page_lists_the_plans_with_fees_relative_to_the_current_one(client, w):
    sign_in_as(client, w.sam)
    response = client.get(url(w.solo))
    assert response.status_code == 200
    html = assert_full_page(response)
    assert '<p data-testid="current-plan"><strong>Pro</strong>: $179.00 a month.</p>' in html
    assert "The new plan's fee applies from the next monthly plan fee" in html
    assert [r.cells for r in table_rows(html)] == [
        ["Marketing Lite", "$19.00", "Downgrade", "Choose"],
        ["Starter", "$39.00", "Downgrade", "Choose"],
        ["Essentials", "$79.00", "Downgrade", "Choose"],
        ["Pro", "$179.00", "Current plan", ""],
        ["Agency (sub-accounts)", "$299.00", "Upgrade", "Choose"],
        ["Performance", "$499.00", "Upgrade", "Choose"],
    ]
    assert f'href="{url(w.solo, "confirm?plan=Starter")}"' in html
    assert 'data-testid="versions-account"' in html


def test_account_settings_links_to_change_plan_for_admins_only(client, w):
    sign_in_as(client, w.sam)
    assert f'<a class="small" href="{url(w.solo)}">Change Plan</a>' in body(
        client.get(f"/accounts/{w.solo.id}/"))
    sign_in_as(client, w.viewer)
    assert "Change Plan" not in body(client.get(f"/accounts/{w.solo.id}/"))


def test_changing_plan_confirms_first_then_changes_it(client, session, w):
    sign_in_as(client, w.sam)
    dialog = assert_fragment(client.get(url(w.solo, "confirm?plan=Starter"), headers=HX),
                             '<dialog class="confirm"')
    assert '<h2 id="plan-confirm-h">Downgrade to Starter?</h2>' in dialog
    assert ("<p>From <strong>Pro</strong> ($179.00 a month) to <strong>Starter</strong> "
            "($39.00 a month).</p>") in dialog
    assert "The new fee applies from the next monthly plan fee; nothing is charged now." in dialog
    assert '<input type="hidden" name="confirm" value="yes">' in dialog
    assert 'aria-labelledby="plan-confirm-h" open>' in body(
        client.get(url(w.solo, "confirm?plan=Starter")))  # without JavaScript: a page

    before = snapshot(session)
    response = post(client, url(w.solo), {"plan": "Starter"}, headers=HX)
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert">{CONFIRM_NEEDED}</p>' in body(response)
    assert snapshot(session) == before

    response = post(client, url(w.solo), {"plan": "Starter", "confirm": "yes"})
    assert response.status_code == 303
    assert response.location == url(w.solo)
    solo = reloaded(session, w.solo)
    assert (solo.plan, solo.kind, solo.updated_at) == ("Starter", AccountKind.STANDALONE, NOW)
    assert ("Your plan is now Starter ($39.00 a month), from the next monthly plan fee."
            in body(client.get(response.location)))
    assert plan_versions(session, w.solo) == [("changed", {"plan": ["Pro", "Starter"]}, "Sam")]


def test_a_standalone_account_becomes_an_agency(client, session, w):
    sign_in_as(client, w.sam)
    dialog = body(client.get(url(w.solo, "confirm?plan=Agency")))
    assert "Upgrade to Agency?" in dialog
    assert "Solo Shop becomes an agency: it can have sub-accounts." in dialog
    response = post(client, url(w.solo), {"plan": "Agency", "confirm": "yes"}, headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == url(w.solo)
    solo = reloaded(session, w.solo)
    assert (solo.plan, solo.kind) == ("Agency", AccountKind.AGENCY)
    html = body(client.get(url(w.solo)))
    assert "Solo Shop is an agency now: it can have sub-accounts." in html
    assert "Parent Settings" in html  # the nav of an agency
    assert plan_versions(session, w.solo) == [("changed", {"plan": ["Pro", "Agency"]}, "Sam")]


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_an_agency_with_active_sub_accounts_is_refused_with_the_way_out(client, session, w,
                                                                        headers):
    sign_in_as(client, w.avery)
    message = ("Northwind Agency still has 2 active sub-accounts: leaving the Agency plan makes "
               "it a standalone account, which can't have sub-accounts. First transfer them "
               "out or close them in Settings → Accounts, or cancel the agency and all its "
               "sub-accounts with “Cancel Agency Account & All Sub-Accounts” on Parent "
               "Settings.")
    response = client.get(url(w.agency, "confirm?plan=Pro"), headers=headers)
    assert response.status_code == 422
    html = body(response)
    assert f'<p class="form-error" role="alert" id="plan-error">{shown(message)}</p>' in html
    assert f'<a href="/accounts/{w.agency.id}/sub-accounts">Settings → Accounts</a>' in html
    assert f'<a href="/accounts/{w.agency.id}/parent">Parent Settings</a>' in html
    assert 'name="confirm"' not in html

    before = snapshot(session)
    response = post(client, url(w.agency), {"plan": "Pro", "confirm": "yes"}, headers=headers)
    assert response.status_code == 422
    assert shown(message) in body(response)
    assert snapshot(session) == before
    assert plan_versions(session, w.agency) == []
    # the page says so before choosing, with the count
    assert "It has 2 active sub-accounts: transfer them out or close them in" in body(
        client.get(url(w.agency)))


def test_an_agency_leaves_the_agency_plan_once_its_sub_accounts_are_canceled(client, session,
                                                                            w):
    lifecycle.close(session, w.bayside, w.avery, now=NOW)
    lifecycle.close(session, w.harbor, w.avery, now=NOW)
    session.commit()
    sign_in_as(client, w.avery)
    dialog = body(client.get(url(w.agency, "confirm?plan=Performance")))
    assert "Upgrade to Performance?" in dialog
    assert "Northwind Agency becomes a standalone account: it can no longer have sub-accounts." \
        in dialog
    response = post(client, url(w.agency), {"plan": "Performance", "confirm": "yes"})
    assert response.status_code == 303
    agency = reloaded(session, w.agency)
    assert (agency.plan, agency.kind) == ("Performance", AccountKind.STANDALONE)
    assert "Northwind Agency is a standalone account now." in body(client.get(url(w.agency)))
    assert plan_versions(session, w.agency) == [
        ("changed", {"plan": ["Agency", "Performance"]}, "Avery")]


def test_a_sub_account_is_on_its_agencys_plan_and_chooses_none(client, session, w):
    sign_in_as(client, w.bea)
    html = body(client.get(url(w.bayside)))
    assert shown(plans.SUB_PLAN) in html
    # issue 14: what it is charged, not its agency's fee: no plan fee, no plans to choose
    assert table_rows(html) == []
    assert "$299.00" not in html
    assert ("<strong>No plan fee.</strong> Bayside Dental is covered by Northwind Agency"
            in html)
    for plan in ("Essentials", "Agency"):
        response = post(client, url(w.bayside), {"plan": plan, "confirm": "yes"})
        assert response.status_code == 422
        assert shown(plans.SUB_PLAN) in body(response)
    bayside = reloaded(session, w.bayside)
    assert (bayside.plan, bayside.kind) == ("Agency", AccountKind.SUB)


@pytest.mark.parametrize("form,message", [
    ({"plan": "Pro", "confirm": "yes"}, "That is already your plan."),
    ({"plan": "Gold", "confirm": "yes"},
     "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite, Agency."),
    ({"plan": "Gold"},
     "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite, Agency."),
])
def test_bad_choices_are_422s(client, session, w, form, message):
    sign_in_as(client, w.sam)
    before = snapshot(session)
    response = post(client, url(w.solo), form)
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert" id="plan-error">{message}</p>' in body(response)
    assert snapshot(session) == before


def test_a_canceled_account_cannot_change_plan(client, session, w):
    sign_in_as(client, w.sam)
    html = body(client.get(url(w.closed)))
    assert "Closed Shop is canceled: reactivate it before changing its plan." in html
    assert ">Choose</a>" not in html
    assert "Change Plan</a>" not in body(client.get(f"/accounts/{w.closed.id}/"))
    response = post(client, url(w.closed), {"plan": "Starter", "confirm": "yes"})
    assert response.status_code == 403
    assert shown(READ_ONLY.format("Closed Shop")) in body(response)
    assert reloaded(session, w.closed).plan == "Pro"


def test_owners_and_admins_only_sign_in_tenancy_and_csrf(client, session, w):
    response = client.get(url(w.solo))
    assert response.status_code == 302
    assert login_location(response) == ("/login", url(w.solo))
    sign_in_as(client, w.viewer)
    for response in (client.get(url(w.solo)), client.get(url(w.solo, "confirm?plan=Starter")),
                     post(client, url(w.solo), {"plan": "Starter", "confirm": "yes"})):
        assert response.status_code == 403
        assert shown(ADMINS_ONLY) in body(response)
    sign_in_as(client, w.sam)
    for response in (client.get(url(w.rival)),
                     post(client, url(w.rival), {"plan": "Starter", "confirm": "yes"})):
        assert response.status_code == 404
        assert NOT_FOUND in body(response)
    response = post(client, url(w.solo), {"plan": "Starter", "confirm": "yes"}, csrf=False)
    assert response.status_code == 400
    assert reloaded(session, w.solo).plan == "Pro"
    assert reloaded(session, w.rival).plan == "Pro"
