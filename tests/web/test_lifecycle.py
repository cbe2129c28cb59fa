"""Settings → Account Settings → Status: pause, stop, resume, close (with its confirmation
screen or dialog), reactivate; canceled accounts read-only with a banner; closed for good
after 60 days. The guards every lifecycle POST shares (CSRF, login, tenant, role) are here
too, for every one of those POSTs."""

from datetime import timedelta

import pytest

from portal import clock
from portal.models import AccountStatus, NumberStatus
from portal.services import lifecycle, support
from tests import factories as f
from tests.conftest import HX, Auth
from tests.web.conftest import keep_active, sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, NOW, OWNERS_ONLY, READ_ONLY, post, snapshot
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    shown,
    table_rows,
    text,
)

ST = AccountStatus
CLOSED_BANNER = ("Closed Shop is canceled since November 18, 2026. You can read and export its "
                 "data, and reactivate it, until January 17, 2027. Nothing can be changed while "
                 "it is canceled.")


def flash(category: str, message: str) -> str:
    return f'<p class="flash flash-{category}" role="status">{shown(message)}</p>'


def page(client, account, path=""):
    return client.get(f"/accounts/{account.id}/{path}")


def form_action(account, path):
    return f'action="/accounts/{account.id}/{path}"'


# --- the Status section ---------------------------------------------------------------------

PAUSE, STOP, RESUME = "status/pause-swapping", "status/stop-calls", "status/resume"


def test_status_section_offers_the_changes_that_apply(client, session, w):
    sign_in_as(client, w.sam)
    labels = {PAUSE: "Pause number swapping</button>",
              STOP: "Stop incoming calls and pause number swapping</button>",
              RESUME: 'class="primary">Resume</button>'}
    for status, badge, offered in [
        (ST.ACTIVE, "Active", {PAUSE, STOP}),
        (ST.SWAPPING_PAUSED, "Swapping paused", {STOP, RESUME}),
        (ST.CALLS_STOPPED, "Calls stopped", {PAUSE, RESUME}),
        (ST.BILLING_PAUSED, "Billing paused", set()),
    ]:
        w.solo.status = status
        session.commit()
        html = assert_full_page(page(client, w.solo))
        assert (f'<span class="badge badge-{status.value}" data-testid="account-status">'
                f"{badge}</span>") in html
        assert ("Paused and stopped accounts are still charged their plan fee, number renewals "
                "and usage. Only closing the account stops charges.") in text(html)
        for action in (PAUSE, STOP, RESUME):
            assert (form_action(w.solo, action) in html) is (action in offered), (status, action)
            assert (labels[action] in html) is (action in offered), (status, action)
        assert (f'<a class="button warn" href="/accounts/{w.solo.id}/close">Close account</a>'
                in html)
        assert "Close Sub-account" not in html
        assert "Reactivate Account" not in html


def test_a_sub_account_has_the_red_close_sub_account_button_and_transfer(client, w):
    sign_in_as(client, w.avery)
    html = assert_full_page(page(client, w.harbor))
    close = f"/accounts/{w.harbor.id}/close"
    assert f'<a class="button danger" href="{close}"' in html
    assert f'hx-get="{close}" hx-target="#dialog-slot"' in html
    assert 'hx-push-url="false">Close Sub-account</a>' in html
    assert "Close account</a>" not in html
    assert f'<a href="/accounts/{w.harbor.id}/transfer">Transfer out of the agency</a>' in html


def test_a_direct_admin_of_a_sub_account_gets_no_transfer_or_close_link(client, w):
    """Transfers are the agency's; closing is the owners' (issue 15's role matrix)."""
    sign_in_as(client, w.bea)
    html = body(page(client, w.bayside))
    assert "Close Sub-account</a>" not in html
    assert "Only the account's owners can close it." in html
    assert "/transfer" not in html


def test_an_agencys_status_is_in_parent_settings(client, w):
    sign_in_as(client, w.avery)
    html = body(page(client, w.agency))
    assert (f'<a href="/accounts/{w.agency.id}/parent">Parent Settings</a>.') in html
    for action in (PAUSE, STOP, "close"):
        assert form_action(w.agency, action) not in html
    assert f"/accounts/{w.agency.id}/close" not in html


@pytest.mark.parametrize("key", ["solo", "closed"])
def test_a_role_user_sees_the_status_but_no_action(client, w, key):
    account = getattr(w, key)
    sign_in_as(client, w.viewer)
    html = body(page(client, account))
    assert "data-testid=\"account-status\"" in html
    if key == "solo":
        assert "Only the account's owners and admins can change its status." in html
    for action in (PAUSE, STOP, RESUME, "close", "reactivate", "support/"):
        assert form_action(account, action) not in html
    assert f"/accounts/{account.id}/close" not in html
    assert "Reactivate Account" not in html
    assert "Request refund" not in html


# --- pause, stop, resume ----------------------------------------------------------------------

PAUSED_MESSAGE = "Number swapping is paused. Calls still connect."
STOPPED_MESSAGE = "Incoming calls are stopped and number swapping is paused."
RESUMED_MESSAGE = "Resumed: numbers swap and calls connect."


def test_status_changes_one_after_another(client, session, w):
    """Every allowed change, each from where the one before left it."""
    sign_in_as(client, w.sam)
    for path, start, end, message in [
        (PAUSE, ST.ACTIVE, ST.SWAPPING_PAUSED, PAUSED_MESSAGE),
        (STOP, ST.SWAPPING_PAUSED, ST.CALLS_STOPPED, STOPPED_MESSAGE),
        (PAUSE, ST.CALLS_STOPPED, ST.SWAPPING_PAUSED, PAUSED_MESSAGE),
        (RESUME, ST.SWAPPING_PAUSED, ST.ACTIVE, RESUMED_MESSAGE),
        (STOP, ST.ACTIVE, ST.CALLS_STOPPED, STOPPED_MESSAGE),
        (RESUME, ST.CALLS_STOPPED, ST.ACTIVE, RESUMED_MESSAGE),
    ]:
        session.expire_all()
        assert w.solo.status == start
        response = post(client, f"/accounts/{w.solo.id}/{path}")
        assert response.status_code == 303, path
        assert response.location == f"/accounts/{w.solo.id}/"
        session.expire_all()
        assert w.solo.status == end, path
        [event] = lifecycle.events(session, w.solo, limit=1)
        assert (event.actor_id, event.at) == (w.sam.id, NOW)
        html = body(client.get(response.location))
        assert flash("success", message) in html, path
        assert f'data-testid="account-status">{w.solo.status_label}</span>' in html
        assert f'<td data-label="What">{event.label}</td>' in html  # in Activity
    assert len(lifecycle.events(session, w.solo)) == 6


def test_a_status_change_that_does_not_apply_is_explained(client, session, w):
    sign_in_as(client, w.sam)
    for path, start, message in [
        (RESUME, ST.ACTIVE, "Can't resume Solo Shop: it is active."),
        (PAUSE, ST.SWAPPING_PAUSED,
         "Can't pause number swapping for Solo Shop: number swapping is already paused."),
        (STOP, ST.BILLING_PAUSED, "Solo Shop is paused for billing: its balance is below zero. "
                                  "A payment that brings it to zero or more lifts the pause."),
    ]:
        w.solo.status = start
        session.commit()
        before = snapshot(session)
        response = post(client, f"/accounts/{w.solo.id}/{path}")
        assert response.status_code == 303
        assert snapshot(session) == before, path
        assert flash("error", message) in body(client.get(response.location)), path


def test_pausing_an_agency_is_refused_with_the_reason(client, session, w):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    response = post(client, f"/accounts/{w.agency.id}/{PAUSE}")
    assert snapshot(session) == before
    assert flash("error", "An agency is paused or stopped one sub-account at a time.") in body(
        client.get(response.location))


def test_htmx_status_change_redirects_with_hx_redirect(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/{PAUSE}", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/accounts/{w.solo.id}/"
    session.expire_all()
    assert w.solo.status == ST.SWAPPING_PAUSED


# --- close: the confirmation ----------------------------------------------------------------

def _dialog_tag(html: str) -> str:
    start = html.index("<dialog")
    return html[start:html.index(">", start) + 1]


def test_close_account_confirmation_screen(client, w):
    sign_in_as(client, w.sam)
    response = page(client, w.solo, "close")
    assert response.status_code == 200
    html = assert_full_page(response)
    assert _dialog_tag(html) == '<dialog class="confirm" aria-labelledby="close-h" open>'
    assert '<h2 id="close-h">Cancel account: Solo Shop</h2>' in html
    assert "These 2 tracking numbers will be released:" in html
    for n in w.solo_numbers:
        assert f'<li>{n.number} <span class="muted">({n.label})</span></li>' in html
    assert w.old_number.number not in html  # already released
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert '<button type="submit" class="warn">Proceed to Cancel Account</button>' in html
    assert f'<a class="button" href="/accounts/{w.solo.id}/" autofocus>Keep the account</a>' in html
    assert "The agency and its other sub-accounts are not affected." not in html


def test_close_sub_account_dialog_as_fragment_lists_its_numbers(client, w):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.bayside.id}/close", headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<dialog class="confirm"')
    assert "open" not in _dialog_tag(html)
    assert '<h2 id="close-h">Close Sub-account: Bayside Dental</h2>' in html
    assert "These 2 tracking numbers will be released:" in html
    listed = html[html.index('data-testid="numbers-to-release"'):html.index("</ul>")]
    for n in w.bayside_numbers:
        assert f'<li>{n.number} <span class="muted">({n.label})</span></li>' in listed
    for other in (w.harbor_number, w.oak_number, *w.solo_numbers):
        assert other.number not in html  # a sibling's, a closed sibling's, another account's
    assert "The agency and its other sub-accounts are not affected." in html
    assert '<button type="submit" class="danger">Close Sub-account</button>' in html


def test_close_sub_account_without_htmx_is_a_page_with_the_dialog_open(client, w):
    sign_in_as(client, w.avery)
    for headers in ({}, {**HX, "HX-Boosted": "true"}):  # a plain or a boosted request
        response = client.get(f"/accounts/{w.bayside.id}/close", headers=headers)
        html = assert_full_page(response)
        assert _dialog_tag(html).endswith(" open>"), headers
        assert "Close Sub-account: Bayside Dental" in html


def test_close_confirmation_with_no_numbers_says_so(client, session, w):
    empty = f.standalone(session, "Empty Shop", owner=w.sam)
    session.commit()
    sign_in_as(client, w.sam)
    html = body(page(client, empty, "close"))
    assert "It has no active tracking numbers." in html
    assert "will be released" not in html


def test_close_confirmation_of_a_closed_account_says_it_is_canceled(client, w):
    sign_in_as(client, w.sam)
    response = page(client, w.closed, "close")
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.closed.id}/"
    assert flash("error", "Closed Shop is already canceled.") in body(
        client.get(response.location))


def test_there_is_no_close_confirmation_for_an_agency(client, w):
    sign_in_as(client, w.avery)
    response = page(client, w.agency, "close")
    assert response.status_code == 404
    assert NOT_FOUND in body(response)


def test_a_role_user_gets_no_close_confirmation(client, w):
    sign_in_as(client, w.viewer)
    response = page(client, w.solo, "close")
    assert response.status_code == 403
    assert shown(OWNERS_ONLY) in body(response)


# --- close --------------------------------------------------------------------------------

def test_proceed_to_cancel_account_closes_it_and_releases_its_numbers(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.solo.id}/"
    session.expire_all()
    assert (w.solo.status, w.solo.canceled_at) == (ST.CANCELED, NOW)
    for n in w.solo_numbers:
        assert (n.status, n.released_at) == (NumberStatus.RELEASED, NOW)
    assert w.old_number.released_at == NOW - timedelta(days=3)
    html = body(client.get(response.location))
    assert flash("success", "Solo Shop is canceled; 2 tracking numbers were released. You can "
                            "reactivate it within 60 days.") in html
    assert 'data-testid="canceled-banner"' in html
    assert "Reactivate Account</button>" in html


def test_close_sub_account_closes_only_that_sub_account(client, session, w):
    sign_in_as(client, w.avery)
    response = post(client, f"/accounts/{w.bayside.id}/close", {"confirm": "yes"})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.bayside.id}/"
    session.expire_all()
    assert (w.bayside.status, w.bayside.canceled_at) == (ST.CANCELED, NOW)
    assert [n.status for n in w.bayside_numbers] == [NumberStatus.RELEASED] * 2
    assert (w.agency.status, w.harbor.status) == (ST.ACTIVE, ST.ACTIVE)
    assert w.harbor_number.status == NumberStatus.ACTIVE
    assert flash("success", "Bayside Dental is canceled; 2 tracking numbers were released. You "
                            "can reactivate it within 60 days.") in body(
        client.get(response.location))


def test_closing_a_sub_account_with_one_number_says_number(client, session, w):
    sign_in_as(client, w.avery)
    response = post(client, f"/accounts/{w.harbor.id}/close", {"confirm": "yes"})
    assert flash("success", "Harbor Law is canceled; 1 tracking number was released. You can "
                            "reactivate it within 60 days.") in body(client.get(response.location))


def test_close_without_the_confirmation_changes_nothing(client, session, w):
    sign_in_as(client, w.sam)
    before = snapshot(session)
    for data in ({}, {"confirm": ""}, {"confirm": "no"}, {"confirm": "YES "}):
        response = post(client, f"/accounts/{w.solo.id}/close", data)
        assert response.status_code == 303
        assert snapshot(session) == before, data
        assert flash("error", "Closing needs the confirmation: nothing was changed.") in body(
            client.get(response.location)), data


def test_double_clicking_proceed_closes_once(client, session, w):
    sign_in_as(client, w.sam)
    first = post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"})
    assert first.status_code == 303
    after_first = snapshot(session)
    second = post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"})
    assert second.status_code == 403
    assert READ_ONLY.format("Solo Shop") in body(second)
    assert snapshot(session) == after_first
    released = [e for e in lifecycle.events(session, w.solo) if e.kind.value == "number_released"]
    assert len(released) == 2


def test_closing_an_agency_here_is_refused(client, session, w):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    response = post(client, f"/accounts/{w.agency.id}/close", {"confirm": "yes"})
    assert snapshot(session) == before
    assert flash("error", "An agency is canceled from Parent Settings, with all its "
                          "sub-accounts.") in body(client.get(response.location))


# --- reactivate ---------------------------------------------------------------------------

def test_reactivate_account_within_60_days(client, session, w):
    sign_in_as(client, w.sam)
    html = body(page(client, w.closed))
    assert form_action(w.closed, "reactivate") in html
    assert ("Possible until January 17, 2027 (60 days after canceling).") in html
    response = post(client, f"/accounts/{w.closed.id}/reactivate")
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.closed.id}/"
    session.expire_all()
    assert (w.closed.status, w.closed.canceled_at) == (ST.ACTIVE, None)
    assert w.closed_number.status == NumberStatus.RELEASED  # restored one by one
    html = body(client.get(response.location))
    assert flash("success", "Closed Shop is reactivated. Released numbers can be restored for "
                            "14 days after they were released (Numbers → Tracking Numbers → "
                            "Released Numbers).") in html
    assert 'data-testid="canceled-banner"' not in html


def test_reactivate_at_exactly_60_days_then_not_a_second_later(client, session, w):
    sign_in_as(client, w.sam)
    clock.freeze(w.closed.canceled_at + timedelta(days=60, seconds=1))
    keep_active(client)
    before = snapshot(session)
    response = post(client, f"/accounts/{w.closed.id}/reactivate")
    assert response.status_code == 410  # closed for good by now
    assert snapshot(session) == before
    clock.freeze(w.closed.canceled_at + timedelta(days=60))
    assert "Possible until January 17, 2027" in body(page(client, w.closed))
    assert post(client, f"/accounts/{w.closed.id}/reactivate").status_code == 303
    session.expire_all()
    assert w.closed.status == ST.ACTIVE


def test_reactivating_an_active_account_is_refused(client, session, w):
    sign_in_as(client, w.sam)
    before = snapshot(session)
    response = post(client, f"/accounts/{w.solo.id}/reactivate")
    assert snapshot(session) == before
    assert flash("error", "Solo Shop is not canceled.") in body(client.get(response.location))


def test_canceled_sub_accounts_filter_edit_status_reactivate(client, session, w):
    """Settings → Accounts → filter Canceled sub-accounts → Edit → Status → Reactivate."""
    sign_in_as(client, w.avery)
    listing = client.get(f"/accounts/{w.agency.id}/sub-accounts", query_string={
        "status": "canceled"})
    [row] = table_rows(body(listing))
    assert row.cells[:2] == ["Oak Bakery", "Canceled 2026-11-18"]
    [edit] = row.hrefs
    assert edit == f"/accounts/{w.oak.id}/"
    html = body(client.get(edit))
    assert "Canceled on <strong>November 18, 2026</strong>." in html
    assert '<button type="submit" class="primary">Reactivate Account</button>' in html
    response = post(client, f"/accounts/{w.oak.id}/reactivate")
    assert response.status_code == 303
    session.expire_all()
    assert w.oak.status == ST.ACTIVE
    listing = client.get(f"/accounts/{w.agency.id}/sub-accounts", query_string={
        "status": "canceled"})
    assert [r.cells for r in table_rows(body(listing))] == [["No sub-accounts to show."]]


# --- canceled accounts are read-only ------------------------------------------------------------

READ_ONLY_POSTS = [
    ("closed", PAUSE, {}),
    ("closed", STOP, {}),
    ("closed", RESUME, {}),
    ("closed", "close", {"confirm": "yes"}),
    ("closed", "numbers/{number}/restore", {}),
    ("oak", "transfer", {"email": "casey@example.test", "plan": "Pro", "confirm": "yes"}),
    ("oak", "close", {"confirm": "yes"}),
    ("oak", "numbers/{number}/restore", {}),
]


def test_changes_to_a_canceled_account_are_refused(client, session, w):
    for key, path, data in READ_ONLY_POSTS:
        account = getattr(w, key)
        number = w.closed_number if key == "closed" else w.oak_number
        sign_in_as(client, w.avery if key == "oak" else w.sam)
        before = snapshot(session)
        response = post(client, f"/accounts/{account.id}/{path.format(number=number.id)}", data)
        assert response.status_code == 403, path
        html = body(response)
        assert READ_ONLY.format(account.name) in html, path
        assert "<h1>Not allowed</h1>" in html
        assert snapshot(session) == before, path


def test_every_page_of_a_canceled_account_shows_the_banner(client, w):
    sign_in_as(client, w.sam)
    for path in ("", "numbers/", "numbers/released", "calls/", "support/"):
        response = page(client, w.closed, path)
        assert response.status_code == 200, path
        html = assert_full_page(response)
        assert 'data-testid="canceled-banner"' in html, path
        assert CLOSED_BANNER in text(html), path
    assert 'data-testid="canceled-banner"' not in body(page(client, w.solo))


def test_a_canceled_sub_accounts_banner_dates(client, w):
    sign_in_as(client, w.avery)
    html = text(body(page(client, w.oak, "calls/")))
    assert ("Oak Bakery is canceled since November 18, 2026. You can read and export its "
            "data, and reactivate it, until January 17, 2027.") in html


def test_a_canceled_account_still_reads_and_exports(client, w):
    sign_in_as(client, w.sam)
    calls = body(page(client, w.closed, "calls/"))
    assert calls.count("Old Caller") == 2
    export = page(client, w.closed, "calls/export.csv")
    assert export.status_code == 200
    assert export.mimetype == "text/csv"
    assert body(export).count("Old Caller") == 2
    released = body(page(client, w.closed, "numbers/released"))
    assert w.closed_number.number in released


def test_a_canceled_account_can_still_ask_for_a_refund(client, session, w):
    sign_in_as(client, w.sam)
    html = body(page(client, w.closed))
    assert ("The available balance is kept until February 16, 2027 (90 days after "
            "canceling). It is not refunded automatically.") in html
    assert '<input type="hidden" name="kind" value="refund">' in html
    response = post(client, f"/accounts/{w.closed.id}/support/", {"kind": "refund"})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.closed.id}/support/"
    [ticket] = support.requests_for(session, w.closed)
    assert (ticket.kind.value, ticket.status.value) == ("refund", "open")
    assert flash("success", f"Support request #{ticket.id} is sent: Refund of the available "
                            "balance. We'll answer by email.") in body(
        client.get(response.location))


# --- the guards every lifecycle POST shares -----------------------------------------------------

# name: (whose account, path, form, the role-user who reaches it, who may do it)
ACTIONS = {
    "pause": ("solo", PAUSE, {}, "viewer", "sam"),
    "stop": ("solo", STOP, {}, "viewer", "sam"),
    "resume": ("paused", RESUME, {}, None, "sam"),
    "restore": ("solo", "numbers/{old_number}/restore", {}, "viewer", "sam"),
    "support": ("solo", "support/", {"kind": "other", "message": "Hello"}, "viewer", "sam"),
    "close": ("solo", "close", {"confirm": "yes"}, "viewer", "sam"),
    "close-sub": ("bayside", "close", {"confirm": "yes"}, None, "avery"),
    "reactivate": ("closed", "reactivate", {}, "viewer", "sam"),
    "transfer": ("harbor", "transfer", {"email": "casey@example.test", "plan": "Pro",
                                        "confirm": "yes"}, None, "avery"),
    "cancel-agency": ("agency", "parent/cancel", {"confirm": "yes", "reason": "Other"},
                      "staff", "avery"),
}


def _action(w, name):
    key, path, data, role_user, allowed = ACTIONS[name]
    account = getattr(w, key)
    return (account, f"/accounts/{account.id}/" + path.format(old_number=w.old_number.id),
            data, role_user, allowed)


def test_each_action_works_for_its_owner_or_admin(client, session, w):
    """The baseline for the guard tests below: with everything right, each changes things.
    (In this order, each still applies after the ones before it.)"""
    for name in ACTIONS:
        _, path, data, _, allowed = _action(w, name)
        sign_in_as(client, getattr(w, allowed))
        before = snapshot(session)
        response = post(client, path, data)
        assert response.status_code == 303, (name, body(response))
        assert snapshot(session) != before, name


def _refused_each(client, session, w, names, expected_status, expected_html, csrf=True):
    for name in names:
        _, path, data, role_user, allowed = _action(w, name)
        before = snapshot(session)
        response = post(client, path, data, csrf=csrf)
        assert response.status_code == expected_status, name
        if expected_html:
            assert expected_html in body(response), name
        assert snapshot(session) == before, name
    return response


def test_each_action_needs_the_csrf_token(client, session, w):
    for name in ACTIONS:
        sign_in_as(client, getattr(w, ACTIONS[name][4]))
        _refused_each(client, session, w, [name], 400, "The form was out of date.", csrf=False)


def test_each_action_needs_sign_in(client, session, w):
    for name in ACTIONS:
        response = _refused_each(client, session, w, [name], 302, None)
        assert response.location.startswith("/login?next=/accounts/"), name


def test_each_action_on_another_tenants_account_is_404(client, session, w):
    sign_in_as(client, w.rex)
    _refused_each(client, session, w, ACTIONS, 404, NOT_FOUND)


def test_each_action_is_refused_to_a_role_user(client, session, w):
    for name, (_, _, _, role_user, _) in ACTIONS.items():
        if role_user:
            sign_in_as(client, getattr(w, role_user))
            refusal = OWNERS_ONLY if name in ("close", "cancel-agency") else ADMINS_ONLY
            _refused_each(client, session, w, [name], 403, shown(refusal))


# --- closed for good (canceled more than 60 days ago) -----------------------------------------

OLD_SHOP_CLOSED = ("Old Shop was closed on September 23, 2026 and its data was removed after 60 "
                   "days. To use the portal again, open a new account.")


@pytest.fixture
def old_shop(session, w):
    """Old Shop, closed 61 days ago; its admin reaches nothing else."""
    old_admin = f.user(session, email="old@example.test")
    old = f.standalone(session, "Old Shop", admin=old_admin)
    f.number(session, old)
    f.calls(session, old, 2, start=NOW - timedelta(days=70))
    lifecycle.close(session, old, old_admin, now=NOW - timedelta(days=61))
    session.commit()
    return old, old_admin


def test_signing_in_to_an_account_closed_for_good_says_so(client, old_shop):
    response = Auth(client).login("old@example.test")
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert">{OLD_SHOP_CLOSED}</p>' in body(response)
    home = client.get("/")
    assert home.status_code == 302
    assert home.location.startswith("/login")


def test_signing_in_at_exactly_60_days_still_works(client, old_shop):
    old, _ = old_shop
    clock.freeze(old.canceled_at + timedelta(days=60))
    response = Auth(client).login("old@example.test")
    assert response.status_code == 303
    assert client.get("/").location == f"/accounts/{old.id}/"


def test_with_one_open_account_sign_in_works_and_lands_there(client, session, old_shop):
    old, old_admin = old_shop
    open_one = f.standalone(session, "New Shop", admin=old_admin)
    session.commit()
    response = Auth(client).login("old@example.test")
    assert response.status_code == 303
    assert client.get("/").location == f"/accounts/{open_one.id}/"

    switcher = body(client.get("/switch?q=", headers=HX))
    assert ">New Shop</a>" in switcher
    assert "Old Shop" not in switcher


CLOSED_FOR_GOOD_REQUESTS = [
    ("get", ""), ("get", "numbers/"), ("get", "numbers/released"), ("get", "calls/"),
    ("get", "calls/export.csv"), ("get", "support/"), ("get", "close"),
    ("post", "reactivate"), ("post", "support/"), ("post", "close"),
]


def test_the_pages_of_an_account_closed_for_good_say_it_is_closed(client, session, old_shop):
    old, old_admin = old_shop
    f.standalone(session, "New Shop", admin=old_admin)
    session.commit()
    sign_in_as(client, old_admin)
    before = snapshot(session)
    for method, path in CLOSED_FOR_GOOD_REQUESTS:
        url = f"/accounts/{old.id}/{path}"
        response = (post(client, url, {"kind": "refund", "confirm": "yes"}) if method == "post"
                    else client.get(url))
        assert response.status_code == 410, path
        html = body(response)
        assert "<h1>Account closed</h1>" in html, path
        assert OLD_SHOP_CLOSED in html, path
        assert "Content-Disposition" not in response.headers
    assert snapshot(session) == before


def test_home_leaves_an_account_that_closed_for_good_while_it_was_open(client, session, w):
    """Oak Bakery was the session's account when its 60 days ran out: "/" (and the error
    page's "Go to your account" link) must not send the user back to it forever."""
    sign_in_as(client, w.avery)
    assert client.get(f"/accounts/{w.oak.id}/").status_code == 200  # now the session's account
    clock.freeze(w.oak.canceled_at + timedelta(days=60, seconds=1))
    keep_active(client)
    gone = client.get(f"/accounts/{w.oak.id}/")
    assert gone.status_code == 410
    assert '<a href="/">Go to your account</a>' in body(gone)
    assert client.get("/").location == f"/accounts/{w.agency.id}/"


def test_a_sub_account_closed_for_good_has_no_edit_link(client, session, w):
    gone = f.sub(session, w.agency, "Gone Gym")
    lifecycle.close(session, gone, w.avery, now=NOW - timedelta(days=61))
    session.commit()
    sign_in_as(client, w.avery)
    listing = client.get(f"/accounts/{w.agency.id}/sub-accounts",
                         query_string={"status": "canceled"})
    rows = {r.cells[0]: r for r in table_rows(body(listing))}
    assert rows["Gone Gym"].cells[-1] == "Closed, data removed"  # the Actions column, last
    assert rows["Gone Gym"].hrefs == []
    assert rows["Oak Bakery"].hrefs == [f"/accounts/{w.oak.id}/"]
    assert page(client, gone).status_code == 410
    switcher = body(client.get("/switch?q=", headers=HX))
    assert "Oak Bakery" in switcher
    assert "Gone Gym" not in switcher


# --- error pages of a sub-account keep the header ------------------------------------------------

def test_refusals_on_a_sub_account_render_with_the_switcher(client, session, w):
    """A refusal rolls the transaction back, which expires the sub-account and its agency;
    the page's header (the switcher names the agency) must still render: once a 500."""
    assert Auth(client).login("avery@example.test").status_code == 303  # reaches several
    before = snapshot(session)
    refused = post(client, f"/accounts/{w.oak.id}/{PAUSE}")  # canceled: read-only
    assert refused.status_code == 403
    assert READ_ONLY.format("Oak Bakery") in body(refused)
    assert '<span class="muted small">in Northwind Agency</span>' in body(refused)
    invalid = post(client, f"/accounts/{w.bayside.id}/support/", {"kind": "nonsense"})
    assert invalid.status_code == 422
    assert '<span class="muted small">in Northwind Agency</span>' in body(invalid)
    assert snapshot(session) == before
