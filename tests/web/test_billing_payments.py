"""Make a Payment, Account Payment History and receipts: a payment credits the balance once
per form, a decline credits nothing, bad input is refused beside its field, and a payment
that brings the balance back to zero or more lifts the billing pause."""

import json
import re

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import AccountStatus, Charge, LedgerEntry, OutboxMessage
from portal.services import usage
from tests.conftest import HX
from tests.web.billing_world import (
    AUTHENTICATE_ALWAYS,
    DECLINED,
    INSUFFICIENT,
    MASTERCARD,
    NOW,
    balance,
    build,
    card,
    field_error,
    flash,
    form_error,
    form_key,
    paid,
    post,
    processor_card,
    section,
    snapshot,
    tag,
    url,
)
from tests.web.conftest import keep_active, sign_in_as
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    pager_links,
    query,
    shown,
    table_rows,
    text,
)


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


@pytest.fixture
def visa(session, bw):
    return card(session, bw.solo)


def pay(client, account, method, amount, key=None, headers=None):
    return post(client, url(account, "payments"), {
        "method": str(method.id) if hasattr(method, "id") else method, "amount": amount,
        "form_key": key or form_key(client, account)}, headers=headers)


def all_charges(session, account):
    session.expire_all()
    return session.scalars(select(Charge).where(Charge.account_id == account.id)
                           .order_by(Charge.id)).all()


def ledger_of(session, account):
    session.expire_all()
    return session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents,
                                  LedgerEntry.balance_after_cents)
                           .where(LedgerEntry.account_id == account.id)
                           .order_by(LedgerEntry.id)).all()


# --- Make a Payment ------------------------------------------------------------------------------

def test_a_payment_credits_the_balance_and_shows_in_the_history(client, session, bw, visa):
    sign_in_as(client, bw.ann)
    response = pay(client, bw.solo, visa, "25.50")
    assert response.status_code == 303
    assert response.location == url(bw.solo)
    [charge] = all_charges(session, bw.solo)
    assert (charge.status.value, charge.amount_cents, charge.method_id, charge.actor_id) == (
        "succeeded", 2550, visa.id, bw.ann.id)
    html = assert_full_page(client.get(response.location))
    assert flash("success", f"Thank you: $25.50 was charged to Visa ending 4242. Receipt "
                            f"{charge.receipt_number} is in the payment history.") in html
    assert 'Available balance: <strong data-testid="balance">$25.50</strong>' in html
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[:5] == ["2026-11-23 12:00", "Payment", "Visa ending 4242", "$25.50",
                             "Paid"]
    assert row.hrefs == [url(bw.solo, f"payments/{charge.id}")]
    assert f'aria-label="Receipt {charge.receipt_number}"' in section(html, "payment-history")
    assert [(k.value, a, b) for k, a, b in ledger_of(session, bw.solo)] == [
        ("payment", 2550, 2550)]
    session.refresh(bw.solo)
    assert bw.solo.balance_cents == 2550
    # the form is drawn again with a new key: the next payment is a new one
    assert 'value=""' in tag(html, "pay-amount")


def test_a_refunded_payment_says_so_in_the_history_and_on_its_receipt(client, session, bw,
                                                                    visa):
    from portal.services import refunds
    from portal.services.gateway import SandboxGateway

    sign_in_as(client, bw.ann)
    assert pay(client, bw.solo, visa, "25.50").status_code == 303
    [charge] = all_charges(session, bw.solo)
    refund = refunds.start(session, charge, "the customer asked for it")
    session.commit()
    html = body(client.get(url(bw.solo)))
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[4] == "Refund pending the customer asked for it"
    refunds.attempt(session, SandboxGateway(), refund)
    html = body(client.get(url(bw.solo)))
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[4] == "Refunded the customer asked for it"
    receipt = text(body(client.get(url(bw.solo, f"payments/{charge.id}"))))
    assert "Refunded: $25.50 on 2026-11-23 12:00 UTC, because the customer asked for it." \
        in receipt
    assert [(k.value, a, b) for k, a, b in ledger_of(session, bw.solo)] == [
        ("payment", 2550, 2550), ("refund", -2550, 0)]


def test_an_htmx_payment_swaps_the_sections_it_changed(client, session, bw, visa):
    """No reload (issue 14): Make a Payment again (its own target) with the success message
    and a new form key, the balance and the payment history swapped where they are."""
    sign_in_as(client, bw.ann)
    key = form_key(client, bw.solo)
    response = pay(client, bw.solo, visa, "$1,000", key=key,
                   headers={**HX, "HX-Target": "make-payment"})
    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers and "HX-Reswap" not in response.headers
    html = body(response)
    assert html.strip().startswith('<section class="card" id="make-payment" '
                                   'aria-labelledby="payment-h">')
    charge = session.scalar(select(Charge))
    assert flash("success", f"Thank you: $1,000.00 was charged to Visa ending 4242. Receipt "
                            f"{charge.receipt_number} is in the payment history.") \
        in section(html, "make-payment")
    assert key not in html  # a new key: the same form sent again would not charge twice
    assert ('<p class="balance" id="balance" hx-swap-oob="true">Available balance: '
            '<strong data-testid="balance">$1,000.00</strong>') in html
    assert 'id="payment-history" aria-labelledby="history-h" hx-swap-oob="true"' in html
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[3:5] == ["$1,000.00", "Paid"]
    assert balance(client, bw.solo) == "$1,000.00"


def test_paying_with_another_method_than_the_primary(client, session, bw, visa):
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    assert re.findall(r'<option value="(\d+)" >([^<]+)</option>', section(html, "make-payment")) \
        == [(str(visa.id), "Visa ending 4242 (Primary)"), (str(mc.id), "Mastercard ending 4444")]
    assert pay(client, bw.solo, mc, "40").status_code == 303
    [charge] = all_charges(session, bw.solo)
    assert charge.method_id == mc.id
    [row] = table_rows(section(body(client.get(url(bw.solo))), "payment-history"))
    assert row.cells[2:5] == ["Mastercard ending 4444", "$40.00", "Paid"]


@pytest.mark.parametrize("number,reason", [
    (DECLINED, "The card was declined."),
    (INSUFFICIENT, "The card was declined: insufficient funds."),
])
def test_a_declined_payment_credits_nothing(client, session, bw, number, reason):
    method = card(session, bw.solo, number)
    sign_in_as(client, bw.ann)
    message = f"The payment failed: {reason} Nothing was charged."
    response = pay(client, bw.solo, method, "25", headers=HX)
    assert response.status_code == 402
    html = assert_fragment(response, '<section class="card" id="make-payment"')
    assert form_error(message) in html
    assert 'value="25"' in tag(html, "pay-amount")
    response = pay(client, bw.solo, method, "30")
    assert response.status_code == 402
    html = assert_full_page(response)
    assert form_error(message) in section(html, "make-payment")
    assert 'Available balance: <strong data-testid="balance">$0.00</strong>' in html
    assert ledger_of(session, bw.solo) == []
    charges = all_charges(session, bw.solo)
    assert [(c.status.value, c.amount_cents, c.failure_message) for c in charges] == [
        ("failed", 2500, reason), ("failed", 3000, reason)]
    assert session.scalars(select(OutboxMessage)).all() == []  # no receipt
    rows = table_rows(section(body(client.get(url(bw.solo))), "payment-history"))
    assert [r.cells[3:5] for r in rows] == [["$30.00", f"failed {reason}"],
                                            ["$25.00", f"failed {reason}"]]
    assert rows[0].hrefs == [url(bw.solo, f"payments/{charges[1].id}")]


def test_a_payment_the_processor_does_not_answer_is_pending(client, session, bw):
    slow = card(session, bw.solo, "4000000000000259")  # the sandbox's timeout card
    sign_in_as(client, bw.ann)
    response = pay(client, bw.solo, slow, "25")
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert flash("info", "The payment of $25.00 is pending: The payment processor didn't "
                         "answer yet; we retry automatically (never charging twice).") in html
    assert 'Available balance: <strong data-testid="balance">$0.00</strong>' in html
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[3:5] == ["$25.00", "Pending"]
    assert row.hrefs == []
    [charge] = all_charges(session, bw.solo)
    assert (charge.status.value, charge.attempts) == ("pending", 1)
    assert ledger_of(session, bw.solo) == []
    page = body(client.get(url(bw.solo, f"payments/{charge.id}")))
    assert '<div class="right"><h1>Payment pending</h1></div>' in page


def test_a_customer_billed_subs_payment_credits_the_sub_not_the_agency(client, session, bw):
    method = card(session, bw.harbor)
    sign_in_as(client, bw.avery)
    assert pay(client, bw.harbor, method, "30").status_code == 303
    assert balance(client, bw.harbor) == "$30.00"
    assert balance(client, bw.agency) == "$0.00"
    # the receipt goes to Harbor Law's billing contact, and to the agency owner who paid
    assert session.scalars(select(OutboxMessage.to_address)
                           .order_by(OutboxMessage.to_address)).all() == [
        "avery@example.test", "hal@example.test"]


def test_the_same_form_submitted_twice_charges_once(client, session, bw, visa):
    sign_in_as(client, bw.ann)
    key = form_key(client, bw.solo)
    first = pay(client, bw.solo, visa, "25", key)
    second = pay(client, bw.solo, visa, "25", key)
    assert first.status_code == second.status_code == 303
    [charge] = all_charges(session, bw.solo)
    assert charge.amount_cents == 2500
    assert len(ledger_of(session, bw.solo)) == 1
    assert balance(client, bw.solo) == "$25.00"
    assert session.scalars(select(OutboxMessage.to_address)).all() == ["ann@example.test"]
    # a new form (a new key) is a new payment
    assert pay(client, bw.solo, visa, "25").status_code == 303
    assert len(all_charges(session, bw.solo)) == 2
    assert balance(client, bw.solo) == "$50.00"


def test_a_declined_payment_tells_the_payment_history_to_refresh(client, session, bw):
    """A declined payment answers with the Make a Payment section alone (the form, its
    error); its HX-Trigger, payments-changed, is what the Account Payment History section
    listens for (from:body) to fetch itself again, now with the failed attempt."""
    method = card(session, bw.solo, DECLINED)
    sign_in_as(client, bw.ann)
    listener = section(body(client.get(url(bw.solo))), "payment-history").split(">", 1)[0]
    assert 'hx-trigger="payments-changed from:body"' in listener
    assert 'hx-select="#payment-history"' in listener
    refresh = re.search(r'hx-get="([^"]+)"', listener).group(1)

    response = pay(client, bw.solo, method, "25", headers=HX)
    assert response.status_code == 402
    [charge] = all_charges(session, bw.solo)
    assert json.loads(response.headers["HX-Trigger"]) == {"payments-changed": charge.id}
    assert 'id="payment-history"' not in body(response)  # the listener refreshes it

    # What the listener asks for (htmx's headers for an element's own request) holds the
    # section with the failed attempt in it.
    again = client.get(refresh, headers={**HX, "HX-Trigger": "payment-history",
                                         "HX-Target": "payment-history"})
    assert again.status_code == 200
    [row] = table_rows(section(body(again), "payment-history"))
    assert row.cells[3:5] == ["$25.00", "failed The card was declined."]


def test_a_declined_form_submitted_again_is_not_charged_again(client, session, bw):
    declined = card(session, bw.solo, DECLINED)
    sign_in_as(client, bw.ann)
    key = form_key(client, bw.solo)
    assert pay(client, bw.solo, declined, "25", key).status_code == 402
    assert pay(client, bw.solo, declined, "25", key).status_code == 402
    assert len(all_charges(session, bw.solo)) == 1


def test_each_payment_form_on_the_page_has_its_own_key(client, bw, visa):
    sign_in_as(client, bw.ann)
    keys = {form_key(client, bw.solo) for _ in range(3)}
    assert len(keys) == 3


AMOUNT = "amount"
METHOD = "method"
BAD_PAYMENTS = [
    pytest.param({"amount": "25.001"}, AMOUNT,
                 "The amount can't have fractions of a cent: use at most two decimals.",
                 id="fraction-of-a-cent"),
    pytest.param({"amount": "-25"}, AMOUNT, "The amount must be more than zero.", id="negative"),
    pytest.param({"amount": "0.00"}, AMOUNT, "The amount must be more than zero.", id="zero"),
    pytest.param({"amount": "NaN"}, AMOUNT,
                 "The amount must be a dollar amount, like 25 or 25.00.", id="nan"),
    pytest.param({"amount": "inf"}, AMOUNT,
                 "The amount must be a dollar amount, like 25 or 25.00.", id="inf"),
    pytest.param({"amount": "1e3"}, AMOUNT,
                 "The amount must be a dollar amount, like 25 or 25.00.", id="exponent"),
    pytest.param({"amount": ""}, AMOUNT, "The amount is required.", id="no-amount"),
    pytest.param({"amount": "10000.01"}, AMOUNT, "The amount can be at most $10,000.00.",
                 id="over-10000"),
    pytest.param({"method": ""}, METHOD, "Choose one of the account's payment methods.",
                 id="no-method"),
    pytest.param({"method": "abc"}, METHOD, "Choose one of the account's payment methods.",
                 id="not-an-id"),
    pytest.param({"method": "rivals"}, METHOD, "Choose one of the account's payment methods.",
                 id="another-accounts-method"),
    pytest.param({"method": "99999999999"}, METHOD,
                 "Choose one of the account's payment methods.", id="huge-id"),
    pytest.param({"form_key": ""}, "", "The form was out of date. Reload the page and try again.",
                 id="no-form-key"),
    pytest.param({"form_key": "x" * 32}, "",
                 "The form was out of date. Reload the page and try again.", id="bad-form-key"),
]


@pytest.mark.parametrize("change,field,message", BAD_PAYMENTS)
def test_a_bad_payment_is_refused_beside_its_field_and_nothing_is_charged(
        client, session, bw, visa, change, field, message):
    rivals = card(session, bw.rival)
    sign_in_as(client, bw.ann)
    form = {"method": str(visa.id), "amount": "25", "form_key": form_key(client, bw.solo),
            **change}
    if form["method"] == "rivals":
        form["method"] = str(rivals.id)
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "payments"), form, headers=headers)
        assert response.status_code == 422, headers
        html = (assert_fragment(response, '<section class="card" id="make-payment"')
                if headers else section(assert_full_page(response), "make-payment"))
        if field:
            assert field_error(field, message) in html
            element = "pay-amount" if field == AMOUNT else "pay-method"
            assert f'aria-describedby="{field}-error"' in tag(html, element)
        else:
            assert form_error(message) in html
        if field == AMOUNT:
            assert f'value="{shown(form["amount"])}"' in tag(html, "pay-amount")
        assert snapshot(session) == before
    assert all_charges(session, bw.solo) == []
    assert ledger_of(session, bw.solo) == []


def test_a_removed_method_cannot_pay(client, session, bw, visa):
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    key = form_key(client, bw.solo)
    assert post(client, url(bw.solo, f"payment-methods/{mc.id}/remove"),
                {"confirm": "yes"}).status_code == 303
    response = pay(client, bw.solo, mc, "25", key, headers=HX)
    assert response.status_code == 422
    assert field_error("method", "Choose one of the account's payment methods.") in body(response)
    assert all_charges(session, bw.solo) == []


# --- receipts ------------------------------------------------------------------------------------

def test_the_receipt_shows_number_method_amount_and_utc_date(client, session, bw, visa):
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "service-address"), {
        "address_line1": "1 Market St", "city": "San Francisco", "region": "CA",
        "postal_code": "94105"}).status_code == 303
    clock.freeze(NOW.replace(hour=23, minute=59, second=30))
    keep_active(client)  # the clock moved 12 hours: a real session would have expired
    assert pay(client, bw.solo, visa, "1234.5").status_code == 303
    [charge] = all_charges(session, bw.solo)
    response = client.get(url(bw.solo, f"payments/{charge.id}"))
    assert response.status_code == 200
    html = body(response)
    assert html.startswith("<!doctype html>")
    assert f"<title>Receipt {charge.receipt_number} · Acme Plumbing</title>" in html
    assert (f'<div class="right"><h1>Receipt</h1><p class="muted">{charge.receipt_number}</p>'
            "</div>") in html
    facts = dict(re.findall(
        r'<tr><th scope="row">([^<]+)</th><td(?: class="[a-z]+")?>(.*?)</td></tr>', html))
    assert facts["Account"] == f"Acme Plumbing (#{bw.solo.id})"
    assert facts["Date"] == "2026-11-23 23:59 UTC"
    assert facts["Payment method"] == "Visa ending 4242 (Pat Doe)"
    assert facts["Processor reference"] == charge.gateway_reference
    assert facts["Service address"] == "1 Market St<br>San Francisco, CA 94105"
    assert "<span>Amount paid</span><strong>$1,234.50</strong>" in html
    assert "Amounts in US dollars. Times in UTC." in html
    assert "Why it failed" not in html


def test_a_failed_charges_page_says_why(client, session, bw):
    declined = card(session, bw.solo, INSUFFICIENT)
    sign_in_as(client, bw.ann)
    assert pay(client, bw.solo, declined, "25").status_code == 402
    [charge] = all_charges(session, bw.solo)
    html = body(client.get(url(bw.solo, f"payments/{charge.id}")))
    assert "<title>Payment failed · Acme Plumbing</title>" in html
    assert '<div class="right"><h1>Payment failed</h1></div>' in html
    assert ('<p class="failure" role="alert"><strong>Why it failed:</strong> The card was '
            'declined: insufficient funds. <span class="muted">(insufficient_funds)</span></p>'
            ) in html
    assert "Nothing was charged." in html
    assert "<span>Amount</span><strong>$25.00</strong>" in html
    assert charge.receipt_number not in html  # no receipt for a charge that failed
    assert "Amount paid" not in html


def test_another_accounts_receipt_is_not_found(client, session, bw):
    rivals = paid(session, bw.rival, card(session, bw.rival), "99.00")
    sign_in_as(client, bw.ann)
    for path in (f"payments/{rivals.id}", "payments/2147483648", "payments/0"):
        response = client.get(url(bw.solo, path))
        assert response.status_code == 404, path
        assert NOT_FOUND in body(response)
        assert "$99.00" not in body(response)


# --- Account Payment History ---------------------------------------------------------------------

def test_the_payment_history_pages_through_every_payment(app, client, session, bw, visa):
    app.config["PAYMENTS_PER_PAGE"] = 2
    amounts = ["10.00", "20.00", "30.00", "40.00", "50.00"]
    for i, amount in enumerate(amounts):
        clock.freeze(NOW.replace(hour=i))
        paid(session, bw.solo, visa, amount, actor=bw.ann)
    sign_in_as(client, bw.ann)
    page = client.get(url(bw.solo, "payments"))
    assert page.status_code == 200
    html = assert_full_page(page)
    assert "<h1>Account Payment History <span class=\"muted\">· Acme Plumbing</span></h1>" in html
    assert [r.cells[:4] for r in table_rows(html)] == [
        ["2026-11-23 04:00", "Payment", "Visa ending 4242", "$50.00"],
        ["2026-11-23 03:00", "Payment", "Visa ending 4242", "$40.00"]]
    assert "Payments 1–2 of 5. Times are UTC." in text(html)
    links = pager_links(html)
    assert set(links) == {"next"}
    assert query(links["next"]) == {"page": "2"}

    partial = client.get(links["next"], headers=HX)
    assert partial.status_code == 200
    fragment = assert_fragment(partial, '<div id="results">')
    assert [r.cells[3] for r in table_rows(fragment)] == ["$30.00", "$20.00"]
    assert set(pager_links(fragment)) == {"prev", "next"}
    last = client.get(url(bw.solo, "payments"), query_string={"page": "3"})
    assert [r.cells[3] for r in table_rows(body(last))] == ["$10.00"]
    assert set(pager_links(body(last))) == {"prev"}
    # the settings page shows the first page and links to the history
    settings = body(client.get(url(bw.solo)))
    assert [r.cells[3] for r in table_rows(section(settings, "payment-history"))] == [
        "$50.00", "$40.00"]
    assert f'<a href="{url(bw.solo, "payments")}">All payments</a>' in settings


@pytest.mark.parametrize("page", ["0", "-1", "abc", "2000000"])
def test_a_bad_history_page_is_not_found(client, bw, page):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "payments"), query_string={"page": page})
    assert response.status_code == 404


# --- billing pause -------------------------------------------------------------------------------

def test_a_payment_that_brings_the_balance_to_zero_lifts_the_billing_pause(client, session, bw,
                                                                          visa):
    usage.post(session, bw.solo, {"minutes": "300"}, "batch-1")  # 300 × 5¢ = $15.00
    session.commit()
    session.refresh(bw.solo)
    assert (bw.solo.status, bw.solo.balance_cents) == (AccountStatus.BILLING_PAUSED, -1500)
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    assert 'Available balance: <strong data-testid="balance">-$15.00</strong>' in html
    assert '<span class="badge badge-billing_paused">Billing paused</span>' in html

    assert pay(client, bw.solo, visa, "14.99").status_code == 303  # still below zero
    session.refresh(bw.solo)
    assert (bw.solo.status, bw.solo.balance_cents) == (AccountStatus.BILLING_PAUSED, -1)
    assert "Billing paused" in body(client.get(url(bw.solo)))

    assert pay(client, bw.solo, visa, "0.01").status_code == 303  # exactly zero
    session.refresh(bw.solo)
    assert (bw.solo.status, bw.solo.balance_cents) == (AccountStatus.ACTIVE, 0)
    html = body(client.get(url(bw.solo)))
    assert 'Available balance: <strong data-testid="balance">$0.00</strong>' in html
    assert "Billing paused" not in html
    status = body(client.get(f"/accounts/{bw.solo.id}/"))
    assert 'data-testid="account-status">Active</span>' in status


def test_a_declined_payment_leaves_the_pause(client, session, bw):
    declined = card(session, bw.solo, DECLINED)
    usage.post(session, bw.solo, {"minutes": "300"}, "batch-1")
    session.commit()
    sign_in_as(client, bw.ann)
    assert pay(client, bw.solo, declined, "100").status_code == 402
    session.refresh(bw.solo)
    assert (bw.solo.status, bw.solo.balance_cents) == (AccountStatus.BILLING_PAUSED, -1500)


# --- issue 16: a payment whose card's bank asks the payer to confirm (3-D Secure) ------------

def challenge_of(html: str) -> tuple[str, str]:
    """(client secret, confirm URL) of the Make a Payment challenge the page hands the
    processor's script."""
    secret = re.search(r'data-next-action data-client-secret="([^"]+)"', html).group(1)
    confirm = re.search(r'<form method="post" action="([^"]+/confirm)"', html).group(1)
    return secret, confirm


@pytest.mark.parametrize("complete", [True, False], ids=["completed", "failed"])
def test_a_payment_the_cards_bank_asks_about_is_settled_after_the_challenge(
        client, session, bw, complete):
    from portal.sandbox import core

    card_3184 = processor_card(session, bw.solo, AUTHENTICATE_ALWAYS)
    sign_in_as(client, bw.ann)
    response = pay(client, bw.solo, card_3184, "40", headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="make-payment"')
    secret, confirm = challenge_of(html)
    [charge] = all_charges(session, bw.solo)
    assert charge.is_pending and charge.processor_status == "requires_action"
    assert charge.action_required_at is not None
    assert secret.startswith(charge.gateway_reference + "_secret_")
    assert ledger_of(session, bw.solo) == []
    assert core.authenticate(charge.gateway_reference, secret, complete) is not None
    response = post(client, confirm, {}, headers=HX)
    [charge] = all_charges(session, bw.solo)
    if complete:
        assert response.status_code == 200
        assert charge.is_succeeded
        assert ledger_of(session, bw.solo) == [("payment", 4000, 4000)]
        assert "Thank you: $40.00 was charged to Visa ending 3184" in body(response)
    else:
        assert response.status_code == 402
        assert charge.is_failed and charge.failure_code == "authentication_failed"
        assert ledger_of(session, bw.solo) == []
    # confirming again changes nothing (settled once)
    post(client, confirm, {}, headers=HX)
    assert len(ledger_of(session, bw.solo)) == (1 if complete else 0)


def test_an_abandoned_challenge_is_canceled_by_the_jobs_and_credits_nothing(
        client, session, bw):
    from datetime import timedelta

    from portal.services import charges
    from portal.services.gateway import SandboxGateway

    card_3184 = processor_card(session, bw.solo, AUTHENTICATE_ALWAYS)
    sign_in_as(client, bw.ann)
    response = pay(client, bw.solo, card_3184, "40", headers=HX)
    _secret, confirm = challenge_of(body(response))
    # the payer closed the challenge: still waiting, said so, nothing charged
    response = post(client, confirm, {}, headers=HX)
    assert response.status_code == 402
    assert shown("was not confirmed with the card's bank") in body(response)
    [charge] = all_charges(session, bw.solo)
    assert charge.is_pending
    # within the hour nothing happens; after it, the jobs cancel it at the processor
    assert charges.expire_actions(session, SandboxGateway(), NOW + timedelta(minutes=59)) == []
    done = charges.expire_actions(session, SandboxGateway(), NOW + timedelta(hours=1))
    assert [c.id for c in done] == [charge.id]
    [charge] = all_charges(session, bw.solo)
    assert charge.is_failed and charge.failure_code == "authentication_abandoned"
    assert ledger_of(session, bw.solo) == []


def test_a_retry_never_creates_a_known_intent_again(client, session, bw):
    """The jobs' retry of a charge whose intent is known looks it up (payment_status), it
    never sends the charge again."""
    from portal.services import charges
    from portal.services.gateway import SandboxGateway

    card_3184 = processor_card(session, bw.solo, AUTHENTICATE_ALWAYS)
    sign_in_as(client, bw.ann)
    pay(client, bw.solo, card_3184, "40", headers=HX)
    [charge] = all_charges(session, bw.solo)

    class Watching(SandboxGateway):
        requests = []

        def charge(self, request, *rest):
            self.requests.append(request)
            return super().charge(request, *rest)

    gateway = Watching()
    charges.attempt(session, gateway, charge)
    assert [r.reference for r in gateway.requests] == [charge.gateway_reference]
    assert [r.idempotency_key for r in gateway.requests] == [charge.idempotency_key]
    assert gateway.requests[0].on_session is True
    assert len(all_charges(session, bw.solo)) == 1
