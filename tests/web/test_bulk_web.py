"""Settings → Accounts bulk actions through the pages (issue 17, K): the list's checkboxes and
"Select all N matching", the confirmation (nothing stored by it), the run and its results,
a resubmitted confirmation, another agency's row id, CSRF, roles, the CSV's line-numbered
errors, and Change History."""

import io
import re

import pytest
from sqlalchemy import func, select

from portal.models import (
    AccountStatus,
    BillingMode,
    BillingRequest,
    BulkAction,
    OutboxMessage,
    Role,
    Version,
)
from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post, snapshot


@pytest.fixture
def w(session):
    class W:
        pass

    w = W()
    w.owner = f.user(session, "owner@agency.test")
    w.admin = f.user(session, "admin@agency.test")
    w.agency = f.agency(session, "Northwind Agency", owner=w.owner)
    f.member(session, w.admin, w.agency, Role.ADMIN)
    w.alpha = f.sub(session, w.agency, "Alpha Dental")
    w.bravo = f.sub(session, w.agency, "Bravo Plumbing")
    w.charlie = f.sub(session, w.agency, "Charlie Cafe", billing=BillingMode.CUSTOMER)
    w.other = f.agency(session, "Other Agency")
    w.stranger = f.sub(session, w.other, "Stranger Inc")
    session.commit()
    return w


def base(w):
    return f"/accounts/{w.agency.id}/sub-accounts"


def review(client, w, action, ids, **extra):
    return client.get(f"{base(w)}/bulk", query_string={"action": action, "ids": ids, **extra})


def key_of(html: str) -> str:
    return re.search(r'name="key" value="([^"]+)"', html).group(1)


def count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_list_has_checkboxes_and_select_all_matching(client, session, w):
    sign_in_as(client, w.owner)
    html = client.get(base(w)).get_data(as_text=True)
    assert 'id="bulk-form"' in html and 'action="' + base(w) + '/bulk"' in html
    for sub in (w.alpha, w.bravo, w.charlie):
        assert f'name="ids" value="{sub.id}" form="bulk-form"' in html
    assert "Select all 3 matching" in html
    assert '<option value="close">Close</option>' in html


def test_admin_is_not_offered_close_and_is_refused_it(client, session, w):
    sign_in_as(client, w.admin)
    html = client.get(base(w)).get_data(as_text=True)
    assert '<option value="close">' not in html
    assert review(client, w, "close", [w.alpha.id]).status_code == 403


def test_review_lists_every_row_and_stores_nothing(client, session, w):
    sign_in_as(client, w.owner)
    response = review(client, w, "send_links", [w.alpha.id, w.bravo.id, w.charlie.id])
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name in ("Alpha Dental", "Bravo Plumbing", "Charlie Cafe"):
        assert name in html
    assert "Will be refused:" in html and "already pays from its own balance" in html
    assert f'name="email_{w.alpha.id}"' in html and f'name="email_{w.charlie.id}"' not in html
    assert count(session, BulkAction) == 0


def test_select_all_matching_takes_every_page(client, session, w):
    for i in range(30):
        f.sub(session, w.agency, f"Zulu {i:02}")
    session.commit()
    sign_in_as(client, w.owner)
    html = review(client, w, "pause", [], all="1", q="zulu").get_data(as_text=True)
    assert html.count('name="ids"') == 30  # one hidden id per row, across pages
    assert "Zulu 29" in html and "Alpha Dental" not in html


def test_close_review_lists_the_numbers_to_release(client, session, w):
    f.number(session, w.alpha)
    session.commit()
    sign_in_as(client, w.owner)
    html = review(client, w, "close", [w.alpha.id]).get_data(as_text=True)
    assert f'data-testid="release-{w.alpha.id}"' in html


def test_run_mixed_results_then_resubmit_replays(client, session, w):
    sign_in_as(client, w.owner)
    html = review(client, w, "send_links", [w.alpha.id, w.bravo.id, w.charlie.id]
                  ).get_data(as_text=True)
    data = {"action": "send_links", "key": key_of(html), "confirm": "yes",
            "ids": [w.alpha.id, w.bravo.id, w.charlie.id],
            f"email_{w.alpha.id}": "pat@alpha.test", f"amount_{w.alpha.id}": "25",
            f"email_{w.bravo.id}": "sam@bravo.test", f"amount_{w.bravo.id}": "30"}
    response = post(client, f"{base(w)}/bulk", data)
    assert response.status_code == 303
    results = client.get(response.location).get_data(as_text=True)
    assert "2</strong> done" in results and "1</strong> refused" in results
    assert "Emailed pat@alpha.test" in results
    assert count(session, BillingRequest) == 2
    sent = count(session, OutboxMessage)
    again = post(client, f"{base(w)}/bulk", data)  # the same confirmation (a double submit)
    assert again.location == response.location
    assert count(session, BillingRequest) == 2 and count(session, OutboxMessage) == sent
    assert count(session, BulkAction) == 1

    html = review(client, w, "send_links", [w.alpha.id, w.bravo.id]).get_data(as_text=True)
    rerun = post(client, f"{base(w)}/bulk", {**data, "key": key_of(html),
                                            "ids": [w.alpha.id, w.bravo.id]})
    text = client.get(rerun.location).get_data(as_text=True)
    assert "0</strong> done" in text and "Already sent to pat@alpha.test" in text
    assert count(session, OutboxMessage) == sent


def test_bad_row_input_is_422_and_changes_nothing(client, session, w):
    sign_in_as(client, w.owner)
    html = review(client, w, "send_links", [w.alpha.id, w.bravo.id]).get_data(as_text=True)
    response = post(client, f"{base(w)}/bulk", {
        "action": "send_links", "key": key_of(html), "confirm": "yes",
        "ids": [w.alpha.id, w.bravo.id], f"email_{w.alpha.id}": "nope",
        f"amount_{w.alpha.id}": "25", f"email_{w.bravo.id}": "b@b.test",
        f"amount_{w.bravo.id}": "5"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Enter the customer&#39;s email address" in page
    assert "The starting balance" in page
    assert count(session, BulkAction) == 0 and count(session, BillingRequest) == 0


def test_without_confirmation_nothing_happens(client, session, w):
    sign_in_as(client, w.owner)
    response = post(client, f"{base(w)}/bulk", {"action": "pause", "key": "k" * 20,
                                                "ids": [w.alpha.id]})
    assert response.status_code == 422
    session.refresh(w.alpha)
    assert w.alpha.status == AccountStatus.ACTIVE


def test_another_agencys_row_is_refused_and_nothing_done(client, session, w):
    sign_in_as(client, w.owner)
    assert review(client, w, "pause", [w.alpha.id, w.stranger.id]).status_code == 404
    before = snapshot(session)
    response = post(client, f"{base(w)}/bulk", {"action": "pause", "key": "k" * 20,
                                                "confirm": "yes",
                                                "ids": [w.alpha.id, w.stranger.id]})
    assert response.status_code == 404
    assert snapshot(session) == before
    assert count(session, BulkAction) == 0


def test_another_agencys_results_are_404(client, session, w):
    outsider = f.user(session, "o@other.test")
    f.member(session, outsider, w.other, Role.OWNER)
    session.commit()
    sign_in_as(client, w.owner)
    html = review(client, w, "stop", [w.alpha.id]).get_data(as_text=True)
    done = post(client, f"{base(w)}/bulk", {"action": "stop", "key": key_of(html),
                                            "confirm": "yes", "ids": [w.alpha.id]})
    action_id = done.location.rsplit("/", 1)[1]
    client.get("/logout")
    sign_in_as(client, outsider)
    assert client.get(f"/accounts/{w.other.id}/sub-accounts/bulk/{action_id}"
                      ).status_code == 404
    assert client.get(done.location).status_code == 404


def test_csrf_is_required(client, session, w):
    sign_in_as(client, w.owner)
    data = {"action": "pause", "key": "k" * 20, "confirm": "yes", "ids": [w.alpha.id]}
    assert post(client, f"{base(w)}/bulk", data, csrf=False).status_code == 400
    assert client.post(f"{base(w)}/bulk", data={**data, "csrf_token": "forged"}
                       ).status_code == 400
    session.refresh(w.alpha)
    assert w.alpha.status == AccountStatus.ACTIVE and count(session, BulkAction) == 0


def test_a_user_role_cannot_open_it(client, session, w):
    user = f.user(session, "u@agency.test")
    f.member(session, user, w.agency, Role.USER)
    session.commit()
    sign_in_as(client, user)
    assert review(client, w, "pause", [w.alpha.id]).status_code == 403


def test_csv_fills_rows_or_says_each_bad_line(client, session, w):
    sign_in_as(client, w.owner)
    html = review(client, w, "send_links", [w.alpha.id, w.bravo.id]).get_data(as_text=True)
    form = {"action": "send_links", "key": key_of(html), "ids": [w.alpha.id, w.bravo.id]}
    bad = b"name,email,amount\nAlpha Dental,pat@alpha.test,25\nNobody,x@y.test,25\n" \
          b"Bravo Plumbing,sam@bravo.test,ten\n"
    response = post(client, f"{base(w)}/bulk/csv",
                    {**form, "csv": (io.BytesIO(bad), "links.csv")})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Line 3: “Nobody” is not one of the selected sub-accounts." in page
    assert "Line 4: " in page
    good = b"Alpha Dental,pat@alpha.test,25\nBravo Plumbing,sam@bravo.test,40\n"
    response = post(client, f"{base(w)}/bulk/csv",
                    {**form, "csv": (io.BytesIO(good), "links.csv")})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'value="pat@alpha.test"' in page and 'value="40"' in page
    assert key_of(page) == form["key"]
    assert count(session, BillingRequest) == 0


def test_change_history_lists_the_action(client, session, w):
    sign_in_as(client, w.owner)
    html = review(client, w, "pause", [w.alpha.id, w.bravo.id]).get_data(as_text=True)
    post(client, f"{base(w)}/bulk", {"action": "pause", "key": key_of(html), "confirm": "yes",
                                     "ids": [w.alpha.id, w.bravo.id]})
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Version).where(
        Version.record_type == "bulk_action", Version.account_id == w.agency.id)) >= 1
    page = client.get(f"/accounts/{w.agency.id}/history/", query_string={"type": "bulk_action"}
                      ).get_data(as_text=True)
    assert "Bulk action: Pause number swapping" in page


def test_set_budget_bad_input_then_mixed_results(client, session, w):
    from portal.models import Budget

    w.bravo.status, w.bravo.canceled_at = AccountStatus.CANCELED, w.bravo.created_at
    session.commit()
    sign_in_as(client, w.owner)
    html = review(client, w, "set_budget", [w.alpha.id, w.bravo.id], status="all"
                  ).get_data(as_text=True)
    assert 'name="budget"' in html and "Will be refused:" in html
    data = {"action": "set_budget", "key": key_of(html), "confirm": "yes",
            "ids": [w.alpha.id, w.bravo.id], "budget": "500", "thresholds": "50, 120"}
    response = post(client, f"{base(w)}/bulk", data)
    assert response.status_code == 422
    assert 'id="thresholds-error"' in response.get_data(as_text=True)
    assert count(session, BulkAction) == 0 and count(session, Budget) == 0
    done = post(client, f"{base(w)}/bulk", {**data, "thresholds": "50, 100"})
    assert done.status_code == 303
    text = client.get(done.location).get_data(as_text=True)
    assert "1</strong> done" in text and "1</strong> refused" in text
    session.expire_all()
    budget = session.get(Budget, w.alpha.id)
    assert budget.amount_cents == 50000 and budget.thresholds == [50, 100]
    assert session.get(Budget, w.bravo.id) is None


def test_close_releases_numbers_per_row_and_is_for_owners(client, session, w):
    from portal.models import NumberStatus, TrackingNumber

    number = f.number(session, w.alpha)
    session.commit()
    sign_in_as(client, w.admin)
    data = {"action": "close", "key": "k" * 20, "confirm": "yes", "ids": [w.alpha.id]}
    assert post(client, f"{base(w)}/bulk", data).status_code == 403
    session.refresh(w.alpha)
    assert w.alpha.status == AccountStatus.ACTIVE

    sign_in_as(client, w.owner)
    html = review(client, w, "close", [w.alpha.id, w.bravo.id]).get_data(as_text=True)
    assert number.number in html
    done = post(client, f"{base(w)}/bulk", {**data, "key": key_of(html),
                                            "ids": [w.alpha.id, w.bravo.id]})
    text = client.get(done.location).get_data(as_text=True)
    assert "2</strong> done" in text and number.number in text
    session.expire_all()
    assert session.get(TrackingNumber, number.id).status == NumberStatus.RELEASED
    assert w.alpha.status == AccountStatus.CANCELED and w.bravo.status == AccountStatus.CANCELED
    assert w.agency.status == AccountStatus.ACTIVE


@pytest.mark.parametrize("params, message", [
    ({"action": "", "ids": [1]}, "Choose an action for the selected sub-accounts."),
    ({"action": "pause"}, "Select at least one sub-account."),
    ({"action": "pause", "all": "1", "q": "no such name"},
     "No sub-accounts match: nothing to do."),
])
def test_review_without_an_action_or_rows_says_so_on_the_list(client, session, w, params,
                                                              message):
    sign_in_as(client, w.owner)
    response = client.get(f"{base(w)}/bulk", query_string=params)
    assert response.status_code == 303 and "/sub-accounts" in response.location
    assert message in client.get(response.location).get_data(as_text=True)


def test_agency_billing_review_says_what_moves_and_who_is_told(client, session, w):
    client_owner = f.user(session, "boss@charlie.test")
    f.member(session, client_owner, w.charlie, Role.OWNER)
    session.commit()
    sign_in_as(client, w.owner)
    html = review(client, w, "agency_billing", [w.alpha.id, w.charlie.id]).get_data(as_text=True)
    assert "Already on agency billing." in html
    assert "We email boss@charlie.test." in html
    done = post(client, f"{base(w)}/bulk", {"action": "agency_billing", "key": key_of(html),
                                            "confirm": "yes", "ids": [w.alpha.id, w.charlie.id]})
    text = client.get(done.location).get_data(as_text=True)
    assert "1</strong> done · <strong>1</strong> already so" in text
    session.expire_all()
    assert w.charlie.billing_mode == BillingMode.AGENCY
