"""/api/v1/accounts/<id>/billing-mode: Remove from Agency Billing (the request and its
emailed link, never the link in the answer), the requests' list, resend, cancel, and Add to
Agency Billing, over the billing links' service; the $25 rule, 409 for a refused state, 403
for a sub-account's own key, 404 across tenants."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    BillingRequest,
    LedgerEntry,
    OutboxMessage,
    PaymentMethod,
    RequestStatus,
    Role,
)
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem
from tests.web.conftest import bearer
from tests.web.link_world import (
    BASE,
    CUSTOMER,
    NOW,
    build,
    configure,
    emailed_links,
    issue,
    request_of,
)


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    w = build(session)
    w.key = f.api_key(session, w.agency, w.avery)
    w.rival_key = f.api_key(session, w.rival, w.rex)
    return w




def url(sub, action: str) -> str:
    return f"/api/v1/accounts/{sub.id}/billing-mode/{action}"


def remove(client, w, key=None, sub=None, **body):
    body = {"email": CUSTOMER, "amount_cents": 4000, "message": "Hi Pat", **body}
    return client.post(url(sub or w.bayside, "remove-from-agency-billing"),
                       headers=bearer(key or w.key), json=body)


def assert_problem(response, status, detail, errors=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(status, detail, errors)


def requests(session):
    session.expire_all()
    return session.scalars(select(BillingRequest).order_by(BillingRequest.id)).all()


def mode(session, sub) -> BillingMode:
    session.expire_all()
    return session.get(Account, sub.id).billing_mode


# --------------------------------------------------------------- remove from agency billing

def test_remove_creates_the_request_and_emails_the_link(client, session, w):
    response = remove(client, w)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    [request] = requests(session)
    assert data == {"id": request.id, "sub_account_id": w.bayside.id, "status": "pending",
                    "email": CUSTOMER, "amount_cents": 4000, "message": "Hi Pat",
                    "created_at": "2026-11-23T12:00:00+00:00",
                    "expires_at": "2026-11-30T12:00:00+00:00", "closed_at": None}
    [link] = emailed_links(session)
    assert link.startswith(f"{BASE}/billing-link/")
    assert request_of(session, link).id == request.id
    text = response.get_data(as_text=True)
    assert link.rsplit("/", 1)[1] not in text and request.link_id not in text
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "billing_link"))
    assert (message.to_address, message.subject) == (
        CUSTOMER, "Northwind Agency: set up billing for Bayside Dental")
    assert "$40.00" in message.text_body
    assert mode(session, w.bayside) == BillingMode.AGENCY  # until the customer pays


@pytest.mark.parametrize("body, errors", [
    ({"amount_cents": 2499}, {"amount_cents": "The starting balance must be at least $25.00."}),
    ({"amount_cents": 0}, {"amount_cents": "The starting balance must be at least $25.00."}),
    ({"email": "pat"}, {"email": "Enter the customer's email address, like name@example.com."}),
    ({"email": "", "amount_cents": 100},
     {"email": "Enter the customer's email address, like name@example.com.",
      "amount_cents": "The starting balance must be at least $25.00."}),
])
def test_remove_refuses_bad_input(client, session, w, body, errors):
    response = remove(client, w, **body)
    assert_problem(response, 422, "; ".join(errors.values()), errors)
    assert requests(session) == []
    assert emailed_links(session) == []


@pytest.mark.parametrize("body, field", [
    ({"amount_cents": "40.00"}, "amount_cents"),
    ({"amount_cents": None}, "amount_cents"),
    ({"email": None}, "email"),
])
def test_remove_refuses_a_body_of_the_wrong_shape(client, session, w, body, field):
    response = remove(client, w, **body)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {field}
    assert requests(session) == []


def test_remove_for_a_customer_billed_sub_is_409(client, session, w):
    assert_problem(remove(client, w, sub=w.harbor), 409,
                   "Harbor Law already pays from its own balance (Balance from: customer).")
    assert requests(session) == []


def test_another_tenants_key_finds_nothing(client, session, w):
    issue(session, w)
    [pending] = requests(session)
    assert_problem(remove(client, w, key=w.rival_key), 404,
                   "No such account, or this key does not reach it.")
    headers = bearer(w.rival_key)
    for response in (
        client.get(url(w.bayside, "billing-requests"), headers=headers),
        client.post(url(w.bayside, f"billing-requests/{pending.id}/resend"), headers=headers),
        client.post(url(w.bayside, f"billing-requests/{pending.id}/cancel"), headers=headers),
        client.post(url(w.harbor, "add-to-agency-billing"), headers=headers,
                    json={"confirm": True}),
        # the rival agency's own sub-account, with a request id of another agency
        client.post(url(w.rival_sub, f"billing-requests/{pending.id}/cancel"),
                    headers=headers),
    ):
        assert response.status_code == 404, response.get_json()
    assert [(r.id, r.status) for r in requests(session)] == [(pending.id,
                                                              RequestStatus.PENDING)]
    assert len(emailed_links(session)) == 1
    assert mode(session, w.harbor) == BillingMode.CUSTOMER


def test_a_canceled_sub_account_is_409(client, session, w):
    sub = session.get(Account, w.bayside.id)
    sub.status, sub.canceled_at = AccountStatus.CANCELED, NOW - timedelta(days=1)
    session.commit()
    assert_problem(remove(client, w), 409, "Bayside Dental is canceled: reactivate it first.")
    assert requests(session) == []


def test_a_sub_accounts_own_key_cant_change_its_billing_mode(client, session, w):
    key = f.api_key(session, w.bayside, w.bea)
    assert_problem(remove(client, w, key=key), 403, "A sub-account's billing mode is decided "
                                                    "by its agency: use a key of the agency.")
    assert_problem(remove(client, w, sub=w.agency), 404, "No such sub-account.")
    assert requests(session) == []


def test_an_admin_key_of_the_agency_may(client, session, w):
    key = f.api_key(session, w.agency, w.avery, role=Role.ADMIN)
    assert remove(client, w, key=key).status_code == 201


# --------------------------------------------------------------- list, resend, cancel

def test_list_resend_and_cancel(client, session, w):
    first = remove(client, w).get_json()
    response = client.post(url(w.bayside, f"billing-requests/{first['id']}/resend"),
                           headers=bearer(w.key))
    assert response.status_code == 201, response.get_json()
    second = response.get_json()
    assert second["id"] != first["id"] and second["status"] == "pending"
    assert (second["email"], second["amount_cents"]) == (CUSTOMER, 4000)
    assert len(emailed_links(session)) == 2

    listed = client.get(url(w.bayside, "billing-requests"), headers=bearer(w.key)).get_json()
    assert [(r["id"], r["status"]) for r in listed["data"]] == [
        (second["id"], "pending"), (first["id"], "replaced")]
    assert listed["has_more"] is False

    # only the pending one is resent or canceled
    for action in ("resend", "cancel"):
        assert_problem(client.post(url(w.bayside, f"billing-requests/{first['id']}/{action}"),
                                   headers=bearer(w.key)), 409,
                       f"The billing request to {CUSTOMER} is replaced, not pending.")

    response = client.post(url(w.bayside, f"billing-requests/{second['id']}/cancel"),
                           headers=bearer(w.key))
    assert response.status_code == 200
    assert response.get_json()["status"] == "canceled"
    assert [r.status for r in requests(session)] == [RequestStatus.REPLACED,
                                                      RequestStatus.CANCELED]
    assert mode(session, w.bayside) == BillingMode.AGENCY


def test_a_request_of_another_sub_account_is_not_found(client, session, w):
    issue(session, w)
    [request] = requests(session)
    response = client.post(url(w.harbor, f"billing-requests/{request.id}/cancel"),
                           headers=bearer(w.key))
    assert_problem(response, 404, "No such billing request.")
    assert requests(session)[0].status == RequestStatus.PENDING


def test_the_list_pages_with_a_cursor(client, session, w):
    for _ in range(3):
        issue(session, w)
    ids = [r.id for r in requests(session)][::-1]
    page = client.get(url(w.bayside, "billing-requests?limit=2"), headers=bearer(w.key))
    page = page.get_json()
    assert [r["id"] for r in page["data"]] == ids[:2] and page["has_more"]
    rest = client.get(url(w.bayside, f"billing-requests?limit=2&cursor={page['next_cursor']}"),
                      headers=bearer(w.key)).get_json()
    assert [r["id"] for r in rest["data"]] == ids[2:] and not rest["has_more"]


# --------------------------------------------------------------- add to agency billing

def test_add_to_agency_billing_moves_the_balance(client, session, w):
    f.card(session, w.harbor, role="primary")
    f.funds(session, w.harbor, 1500)
    session.commit()
    response = client.post(url(w.harbor, "add-to-agency-billing"), headers=bearer(w.key),
                           json={"confirm": True})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["moved_cents"] == 1500
    assert data["account"]["billing_mode"] == "agency"
    assert data["account"]["balance_cents"] == 0
    assert mode(session, w.harbor) == BillingMode.AGENCY
    assert session.get(Account, w.agency.id).balance_cents == 1500
    assert session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == w.harbor.id, PaymentMethod.removed_at.is_(None))).all() == []
    kinds = session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)).all()
    assert [k.value for k in kinds][-2:] == ["transfer_out", "transfer_in"]


def test_add_to_agency_billing_needs_the_confirmation(client, session, w):
    response = client.post(url(w.harbor, "add-to-agency-billing"), headers=bearer(w.key),
                           json={})
    message = 'Send {"confirm": true}: nothing was changed.'
    assert_problem(response, 422, f"Some fields are not valid: confirm: {message}",
                   {"confirm": message})
    assert mode(session, w.harbor) == BillingMode.CUSTOMER


def test_add_to_agency_billing_twice_is_409(client, session, w):
    response = client.post(url(w.bayside, "add-to-agency-billing"), headers=bearer(w.key),
                           json={"confirm": True})
    assert_problem(response, 409, "Bayside Dental is already on agency billing.")
