"""Settings → Parent Settings → Status: "Cancel Agency Account & All Sub-Accounts" → the
confirmation → the review of the sub-accounts still active (each with Transfer) and the
feedback → "Cancel Agency". A canceled agency is reactivated only through support."""

from datetime import timedelta

from portal.models import AccountStatus, EventKind, NumberStatus
from portal.services import agency, lifecycle, support
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, NOW, OWNERS_ONLY, post, snapshot
from tests.web.pages import NOT_FOUND, assert_fragment, assert_full_page, body, shown, text

ST = AccountStatus
CANCEL_BUTTON = "Cancel Agency Account &amp; All Sub-Accounts"


def parent(client, w, path=""):
    return client.get(f"/accounts/{w.agency.id}/parent{path}")


def cancel(client, w, data):
    return post(client, f"/accounts/{w.agency.id}/parent/cancel", data)


def test_parent_settings_offers_to_cancel_the_agency(client, w):
    sign_in_as(client, w.avery)
    response = parent(client, w)
    assert response.status_code == 200
    html = assert_full_page(response)
    assert '<span class="badge badge-active" data-testid="account-status">Active</span>' in html
    assert (f'<a class="button warn" href="/accounts/{w.agency.id}/parent/cancel"') in html
    assert f'hx-get="/accounts/{w.agency.id}/parent/cancel" hx-target="#dialog-slot"' in html
    assert f">{CANCEL_BUTTON}</a>" in html
    assert ("Closing every sub-account one by one does not cancel the agency, and it is still "
            "charged.") in text(html)
    assert 'aria-current="page">Parent Settings</a>' in html


def test_the_confirmation_is_a_dialog_fragment_for_htmx(client, w):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.agency.id}/parent/cancel", headers=HX)
    html = assert_fragment(response, '<dialog class="confirm"')
    assert html.strip().startswith(
        '<dialog class="confirm" aria-labelledby="cancel-agency-h" >')  # not open
    assert f'<h2 id="cancel-agency-h">{CANCEL_BUTTON}</h2>' in html
    assert (f'<a class="button warn" href="/accounts/{w.agency.id}/parent/cancel/review">'
            "Cancel Agency</a>") in html
    assert "reactivating one needs a support request" in html


def test_the_confirmation_without_htmx_is_a_page_with_the_dialog_open(client, w):
    sign_in_as(client, w.avery)
    html = assert_full_page(parent(client, w, "/cancel"))
    assert '<dialog class="confirm" aria-labelledby="cancel-agency-h" open>' in html


def test_the_review_lists_the_sub_accounts_still_active_with_transfer(client, w):
    sign_in_as(client, w.avery)
    response = parent(client, w, "/cancel/review")
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "<h1>Cancel Northwind Agency</h1>" in html
    for sub in (w.bayside, w.harbor):
        assert (f'<a href="/accounts/{sub.id}/transfer" aria-label="Transfer {sub.name}">'
                "Transfer</a>") in html
    assert "Oak Bakery" not in html  # already canceled
    assert ('<td>Bayside Dental</td><td data-label="Status">Active</td>'
            '<td data-label="Billing">Balance from: agency</td>') in html
    assert ('<td>Harbor Law</td><td data-label="Status">Active</td>'
            '<td data-label="Billing">Balance from: customer</td>') in html
    for reason in agency.CANCEL_REASONS:
        assert f"<option >{reason}</option>" in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert '<button type="submit" class="warn">Cancel Agency</button>' in html


def test_cancel_agency_cancels_it_and_the_remaining_sub_accounts(client, session, w):
    sign_in_as(client, w.avery)
    response = cancel(client, w, {"confirm": "yes", "reason": "Closing the business",
                                  "comments": "Thanks for everything."})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.agency.id}/parent"
    session.expire_all()
    for account in (w.agency, w.bayside, w.harbor):
        assert (account.status, account.canceled_at) == (ST.CANCELED, NOW), account.name
    assert w.oak.canceled_at == NOW - timedelta(days=5)  # its own date kept
    for n in (*w.bayside_numbers, w.harbor_number):
        assert (n.status, n.released_at) == (NumberStatus.RELEASED, NOW)
    assert (w.solo.status, w.solo_numbers[0].status) == (ST.ACTIVE, NumberStatus.ACTIVE)
    [event] = [e for e in lifecycle.events(session, w.agency)
               if e.kind == EventKind.AGENCY_CANCELED]
    assert (event.actor_id, event.details["reason"], event.details["comments"]) == (
        w.avery.id, "Closing the business", "Thanks for everything.")

    html = body(client.get(response.location))
    assert ('<p class="flash flash-success" role="status">Northwind Agency and 2 sub-accounts '
            "are canceled and their numbers released.</p>") in html
    # the activity log words every detail: the sub-accounts, the numbers, reason and comments
    assert sorted(event.details["sub_accounts"]) == ["Bayside Dental", "Harbor Law"]
    released = event.details["released"]
    assert shown("Canceled the agency and all sub-accounts ("
                 + ", ".join(event.details["sub_accounts"]) + ")"
                 + (f"; released {', '.join(released)}" if released else "")
                 + ". Reason: Closing the business. Comments: Thanks for everything.") in html


def test_cancel_agency_without_a_reason_or_confirmation_changes_nothing(client, session, w):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    no_reason = '<p class="field-error" id="reason-error">Choose why you are canceling.</p>'
    unconfirmed = ('<p class="form-error" role="alert">Canceling needs the confirmation: '
                   "nothing was changed.</p>")
    for data, error in [
        ({"confirm": "yes"}, no_reason),
        ({"confirm": "yes", "reason": "Bored"}, no_reason),
        ({"confirm": "yes", "reason": "Other", "comments": "x" * 2001},
         '<p class="field-error" id="comments-error">Comments are at most 2,000 characters.</p>'),
        ({"reason": "Other"}, unconfirmed),
        ({"reason": "Other", "confirm": "no"}, unconfirmed),
    ]:
        response = cancel(client, w, data)
        assert response.status_code == 422, data
        html = body(response)
        assert error in html, data
        assert "Sub-accounts still active" in html  # the review again, with the list
        assert snapshot(session) == before, data


def test_a_canceled_agency_has_no_reactivate_button_only_support(client, session, w):
    sign_in_as(client, w.avery)
    cancel(client, w, {"confirm": "yes", "reason": "Other"})
    html = body(parent(client, w))
    assert '<span class="badge badge-canceled" data-testid="account-status">Canceled</span>' in html
    assert "Reactivate Account" not in html
    assert "/reactivate" not in html
    assert "Ask support to reactivate the agency</button>" in html
    assert '<input type="hidden" name="kind" value="reactivate_agency">' in html
    assert "Request refund</button>" in html
    assert ("The available balance is kept until February 21, 2027 (90 days after canceling)"
            in html)
    assert "Agency is canceled since November 23, 2026." in text(html)  # the banner

    for path in ("/cancel", "/cancel/review"):  # nothing more to cancel
        response = parent(client, w, path)
        assert response.status_code == 303
        assert response.location == f"/accounts/{w.agency.id}/parent"

    before = snapshot(session)
    response = post(client, f"/accounts/{w.agency.id}/reactivate")
    assert snapshot(session) == before
    assert shown("A canceled agency can't be reactivated here: send a support request to "
                 "reactivate it.") in body(client.get(response.location))

    response = post(client, f"/accounts/{w.agency.id}/support/", {"kind": "reactivate_agency"})
    assert response.status_code == 303
    [ticket] = support.requests_for(session, w.agency)
    assert ticket.kind.value == "reactivate_agency"


def test_a_sub_of_a_canceled_agency_waits_for_the_agency(client, session, w):
    sign_in_as(client, w.avery)
    cancel(client, w, {"confirm": "yes", "reason": "Other"})
    html = body(client.get(f"/accounts/{w.bayside.id}/"))
    assert ("Northwind Agency is canceled: the agency must be reactivated (a support request) "
            "before its sub-accounts.") in html
    assert "Reactivate Account</button>" not in html
    before = snapshot(session)
    response = post(client, f"/accounts/{w.bayside.id}/reactivate")
    assert snapshot(session) == before
    assert ("Northwind Agency is canceled: the agency must be reactivated (a support request) "
            "before its sub-accounts.") in body(client.get(response.location))


def test_an_agency_admin_sees_parent_settings_but_only_an_owner_cancels_it(client, session, w):
    """Issue 15's matrix: admins do everything but owners and closing."""
    sign_in_as(client, w.ada)
    assert parent(client, w).status_code == 200
    before = snapshot(session)
    response = cancel(client, w, {"confirm": "yes", "reason": "Other"})
    assert response.status_code == 403
    assert shown(OWNERS_ONLY) in body(response)
    assert snapshot(session) == before
    sign_in_as(client, w.avery)
    assert cancel(client, w, {"confirm": "yes", "reason": "Other"}).status_code == 303
    session.expire_all()
    assert w.agency.status == ST.CANCELED


def test_parent_settings_is_for_the_agencys_owners_and_admins(client, w):
    sign_in_as(client, w.staff)  # a plain user of the agency
    for path, refusal in (("", ADMINS_ONLY), ("/cancel", OWNERS_ONLY),
                          ("/cancel/review", OWNERS_ONLY)):
        response = parent(client, w, path)
        assert response.status_code == 403, path
        assert shown(refusal) in body(response)
    sign_in_as(client, w.bea)  # an admin of one of its sub-accounts
    for path in ("", "/cancel", "/cancel/review"):
        response = parent(client, w, path)
        assert response.status_code == 404, path
        assert NOT_FOUND in body(response)


def test_accounts_other_than_an_agency_have_no_parent_settings(client, w):
    sign_in_as(client, w.avery)
    for path in ("", "/cancel", "/cancel/review"):
        assert client.get(f"/accounts/{w.bayside.id}/parent{path}").status_code == 404
    sign_in_as(client, w.sam)
    assert client.get(f"/accounts/{w.solo.id}/parent").status_code == 404
    response = post(client, f"/accounts/{w.solo.id}/parent/cancel",
                    {"confirm": "yes", "reason": "Other"})
    assert response.status_code == 404


def test_transfer_one_sub_account_out_then_cancel_the_agency(client, session, w):
    """The article's order: transfer the ones to keep, then cancel the rest with the agency."""
    sign_in_as(client, w.avery)
    review = body(parent(client, w, "/cancel/review"))
    assert f'href="/accounts/{w.harbor.id}/transfer"' in review
    response = post(client, f"/accounts/{w.harbor.id}/transfer",
                    {"email": "casey@example.test", "plan": "Pro", "confirm": "yes"})
    assert response.status_code == 303
    review = body(parent(client, w, "/cancel/review"))
    assert ("Harbor Law is now a standalone account; the agency no longer reaches it."
            in review)
    assert "Transfer Harbor Law" not in review
    assert "<td>Harbor Law</td>" not in review
    assert "<td>Bayside Dental</td>" in review
    response = cancel(client, w, {"confirm": "yes", "reason": "Moving to another provider"})
    assert response.status_code == 303
    session.expire_all()
    assert (w.agency.status, w.bayside.status) == (ST.CANCELED, ST.CANCELED)
    assert (w.harbor.status, w.harbor.parent_id) == (ST.ACTIVE, None)
    assert w.harbor_number.status == NumberStatus.ACTIVE
    assert ("Northwind Agency and 1 sub-account are canceled and their numbers released."
            in body(client.get(response.location)))
