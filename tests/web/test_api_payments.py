"""Issue 18 E2: /api/v1 payments: Make a Payment's service (its minimum, maximum and
messages; the charge credited once; a decline 402; the bank's challenge 202 then confirm),
the payment history by cursor, the receipt as PDF, and tenant isolation."""
# ruff: noqa: F811  (the `aw` fixture, imported, is each test's argument)

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.models import Account, BillingMode, Charge, LedgerEntry
from portal.sandbox import core
from tests import factories as f
from tests.web.api_billing_world import (  # noqa: F401
    API,
    NOW,
    assert_problem,
    aw,
    call,
    headers,
    snapshot,
)
from tests.web.billing_world import (
    AGENCY_BILLED,
    AUTHENTICATE_ALWAYS,
    DECLINES_WHEN_CHARGED,
    MASTERCARD,
    card,
    paid,
)


def balance(session, account) -> int:
    session.expire_all()
    return session.get(Account, account.id).balance_cents


def ledger_rows(session, account):
    session.expire_all()
    return [(e.kind.value, e.amount_cents, e.balance_after_cents) for e in session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id == account.id)
        .order_by(LedgerEntry.id))]


def pay(client, w, account, key="solo", **body):
    return call(client, w, "POST", f"/accounts/{account.id}/payments", key=key, json=body)


def test_a_payment_on_the_primary_is_charged_credited_and_listed(client, session, aw):
    visa = card(session, aw.solo)
    response = pay(client, aw, aw.solo, amount_cents=2500)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    charge_id = body["id"]
    assert body["message"] == (f"Thank you: $25.00 was charged to Visa ending 4242. Receipt "
                               f"R-{charge_id:08d} is in the payment history.")
    assert (body["status"], body["amount_cents"], body["payment_method_id"],
            body["payment_method"], body["purpose"], body["next_action"]) == (
        "succeeded", 2500, visa.id, "Visa ending 4242", "payment", None)
    assert ledger_rows(session, aw.solo) == [("payment", 2500, 2500)]
    assert balance(session, aw.solo) == 2500
    history = call(client, aw, "GET", f"/accounts/{aw.solo.id}/payments").get_json()
    assert [(c["id"], c["status"], c["receipt_number"]) for c in history["data"]] == [
        (charge_id, "succeeded", f"R-{charge_id:08d}")]
    one = call(client, aw, "GET", f"/accounts/{aw.solo.id}/payments/{charge_id}")
    assert one.get_json()["id"] == charge_id


def test_a_chosen_method_and_the_history_by_cursor(client, session, aw):
    card(session, aw.solo)
    master = card(session, aw.solo, MASTERCARD)
    ids = [pay(client, aw, aw.solo, amount_cents=100 + n, payment_method_id=master.id)
           .get_json()["id"] for n in range(3)]
    assert balance(session, aw.solo) == 303
    first = call(client, aw, "GET", f"/accounts/{aw.solo.id}/payments?limit=2").get_json()
    assert [c["id"] for c in first["data"]] == ids[:0:-1]
    assert {c["payment_method"] for c in first["data"]} == {"Mastercard ending 4444"}
    rest = call(client, aw, "GET", f"/accounts/{aw.solo.id}/payments?limit=2&cursor="
                + first["next_cursor"]).get_json()
    assert [c["id"] for c in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_the_same_idempotency_key_makes_one_charge(client, session, aw):
    card(session, aw.solo)
    sent = {"amount_cents": 1500}
    for _ in range(2):
        response = client.post(f"{API}/accounts/{aw.solo.id}/payments", json=sent,
                               headers=headers(aw, **{"Idempotency-Key": "pay-7"}))
        assert response.status_code == 201
    assert session.scalar(select(func.count()).select_from(Charge)) == 1
    assert ledger_rows(session, aw.solo) == [("payment", 1500, 1500)]


def test_a_declined_card_is_402_and_nothing_is_credited(client, session, aw):
    card(session, aw.solo, DECLINES_WHEN_CHARGED)
    response = pay(client, aw, aw.solo, amount_cents=2500)
    body = assert_problem(response, 402, "The payment failed: The card was declined. Nothing "
                                         "was charged.")
    assert body["charge"]["status"] == "failed"
    assert ledger_rows(session, aw.solo) == [] and balance(session, aw.solo) == 0


def test_the_banks_challenge_is_202_with_the_link_then_confirm(client, session, aw):
    card(session, aw.solo, AUTHENTICATE_ALWAYS)
    response = pay(client, aw, aw.solo, amount_cents=4000)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"  # it holds a client secret
    body = response.get_json()
    action = body["next_action"]
    assert body["status"] == "pending" and body["requires_action"] is True
    assert action["type"] == "authenticate" and action["client_secret"]
    assert "/sandbox/v1/authenticate/" in action["authenticate_url"]
    assert action["confirm_url"] == f"/api/v1/accounts/{aw.solo.id}/payments/{body['id']}" \
                                    "/confirm"
    assert ledger_rows(session, aw.solo) == []
    intent = action["authenticate_url"].split("/authenticate/")[1].split("?")[0]
    assert core.authenticate(intent, action["client_secret"], True) is not None
    done = client.post(action["confirm_url"], headers=headers(aw))
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["status"] == "succeeded"
    assert ledger_rows(session, aw.solo) == [("payment", 4000, 4000)]


def test_a_challenge_not_completed_is_402(client, session, aw):
    card(session, aw.solo, AUTHENTICATE_ALWAYS)
    body = pay(client, aw, aw.solo, amount_cents=4000).get_json()
    response = client.post(body["next_action"]["confirm_url"], headers=headers(aw))
    assert_problem(response, 402, "The payment was not confirmed with the card's bank, so "
                                  "nothing was charged. Try again or use another method.")
    assert ledger_rows(session, aw.solo) == []


@pytest.mark.parametrize("sent, errors", [
    ({"amount_cents": 0}, {"amount_cents": "The amount must be more than zero."}),
    ({"amount_cents": -100}, {"amount_cents": "The amount must be more than zero."}),
    ({"amount_cents": 1_000_001}, {"amount_cents": "The amount can be at most $10,000.00."}),
    ({"amount_cents": 100, "payment_method_id": 999999},
     {"payment_method_id": "Choose one of the account's payment methods."}),
])
def test_bad_payments_are_422_and_nothing_is_charged(client, session, aw, sent, errors):
    card(session, aw.solo)
    before = snapshot(session)
    assert_problem(pay(client, aw, aw.solo, **sent), 422, "; ".join(errors.values()), errors)
    assert snapshot(session) == before


def test_no_method_and_another_accounts_method_are_refused(client, session, aw):
    rivals = card(session, aw.rival)
    before = snapshot(session)
    message = {"payment_method_id": "Choose one of the account's payment methods."}
    assert_problem(pay(client, aw, aw.solo, amount_cents=100), 422,
                   message["payment_method_id"], message)
    assert_problem(pay(client, aw, aw.solo, amount_cents=100, payment_method_id=rivals.id),
                   422, message["payment_method_id"], message)
    assert snapshot(session) == before


def test_a_card_number_in_the_body_is_refused_by_the_schema(client, session, aw):
    card(session, aw.solo)
    response = pay(client, aw, aw.solo, amount_cents=100, number="4242424242424242")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"number": "Unknown field."}
    assert "4242424242424242" not in response.get_data(as_text=True)


def test_receipt_pdf(client, session, aw):
    charge = paid(session, aw.solo, card(session, aw.solo))
    response = call(client, aw, "GET", f"/accounts/{aw.solo.id}/payments/{charge.id}"
                                       "/receipt.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert f"receipt-R-{charge.id:08d}.pdf" in response.headers["Content-Disposition"]


def test_agency_billed_sub_account_pays_nothing_itself_but_reads_its_history(client, session,
                                                                             aw):
    assert_problem(pay(client, aw, aw.bayside, key="agency", amount_cents=100), 403,
                   AGENCY_BILLED.format("Bayside Dental"))
    listed = call(client, aw, "GET", f"/accounts/{aw.bayside.id}/payments", key="agency")
    assert listed.status_code == 200 and listed.get_json()["data"] == []


def test_another_tenants_key_gets_404(client, session, aw):
    charge = paid(session, aw.solo, card(session, aw.solo))
    before = snapshot(session)
    not_reached = "No such account, or this key does not reach it."
    for method, path in (("GET", "payments"), ("POST", "payments"),
                         ("GET", f"payments/{charge.id}"),
                         ("GET", f"payments/{charge.id}/receipt.pdf"),
                         ("POST", f"payments/{charge.id}/confirm")):
        response = call(client, aw, method, f"/accounts/{aw.solo.id}/{path}", key="rival",
                        json={"amount_cents": 100} if method == "POST" else None)
        assert_problem(response, 404, not_reached)
    # Its own account, another's charge id: not found either.
    response = call(client, aw, "GET", f"/accounts/{aw.rival.id}/payments/{charge.id}"
                                       "/receipt.pdf", key="rival")
    assert_problem(response, 404, "Charge not found.")
    assert snapshot(session) == before


def test_a_canceled_account_is_read_only(client, session, aw):
    gone = f.sub(session, aw.agency, "Gone Co", billing=BillingMode.CUSTOMER,
                 canceled_at=NOW - timedelta(days=5))
    session.commit()
    before = snapshot(session)
    message = ("Gone Co is canceled: you can read and export its data, but not change it. "
               "Reactivate it to make changes.")
    for method, rest in (("POST", "payments"), ("PUT", "auto-recharge"),
                         ("POST", "payment-methods/setup")):
        response = call(client, aw, method, f"/accounts/{gone.id}/{rest}", key="agency",
                        json={"amount_cents": 100} if method == "POST" and rest == "payments"
                        else {"enabled": False} if method == "PUT" else None)
        assert_problem(response, 409, message)
    assert call(client, aw, "GET", f"/accounts/{gone.id}/payments", key="agency"
                ).status_code == 200
    assert snapshot(session) == before
