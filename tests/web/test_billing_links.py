"""The customer's public billing-link page (/billing-link/<token>): no sign-in; it shows what
the agency asked for, takes a card and the starting balance, and on success takes the
sub-account off agency billing. The link is signed, expires, works once and stops working
when revoked; every refused link gets a clear 4xx page and no charge.

Cards are the sandbox's test numbers (4242... approves, 4000...0002 declines, 4000...0259
charges but times out on the first try).
"""

import threading
import traceback
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from billing_links import tokens
from portal import clock, rules
from portal.models import (
    Account,
    AccountEvent,
    BillingMode,
    Charge,
    ChargePurpose,
    ChargeStatus,
    EventKind,
    LedgerEntry,
    LedgerKind,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
    RequestStatus,
    SandboxCharge,
)
from portal.sandbox import core
from portal.sandbox.cards import EnteredMethod
from portal.services import agency, charges, ledger, lifecycle
from portal.services.gateway import SandboxGateway
from tests.conftest import make_app
from tests.web.link_world import (
    BASE,
    CUSTOMER,
    DECLINED,
    MESSAGE,
    NOW,
    TIMEOUT,
    Customer,
    agency_billed,
    assert_private,
    assert_problem,
    build,
    configure,
    count,
    done_text,
    issue,
    money_moved,
    nothing_charged,
    path_of,
    request_of,
    sub_state,
    token_of,
)
from tests.web.pages import body, shown


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    return build(session)


@pytest.fixture
def customer(app):
    return Customer(app)


def form_error(message: str) -> str:
    return f'<p class="form-error" role="alert">{shown(message)}</p>'


def field_error(field: str, message: str) -> str:
    return f'<p class="field-error" id="{field}-error">{shown(message)}</p>'


def assert_paid(session, w, url, cents=2500):
    """The sub-account pays from its own balance: the card Primary, the payment its opening
    balance, the link used up."""
    assert sub_state(session, w.bayside) == {
        "billing": "customer", "balance": cents, "methods": [("4242", MethodRole.PRIMARY)],
        "ledger": [(LedgerKind.PAYMENT, cents)]}
    assert request_of(session, url).status == RequestStatus.PAID


# --- the page ------------------------------------------------------------------------------------

def test_the_page_shows_the_agency_the_sub_account_and_the_amount_asked(session, w, customer):
    url = issue(session, w, amount="40")
    assert url.startswith(f"{BASE}/billing-link/")
    response = customer.open(url)
    assert response.status_code == 200
    html = body(response)
    assert "<h1>Set up billing for Bayside Dental</h1>" in html
    assert ("<strong>Northwind Agency</strong> asks you to pay for <strong>Bayside Dental"
            "</strong>'s usage from its own balance.") in html
    assert '<strong data-testid="requested">$40.00</strong>' in html
    assert f'<blockquote class="agency-message">{MESSAGE}</blockquote>' in html
    assert 'name="amount" inputmode="decimal" autocomplete="off" value="40.00"' in html
    assert "This link works once, until November 30, 2026 12:00 UTC." in html
    assert_private(response)
    assert response.headers["X-Robots-Tag"] == "noindex"


def test_opening_the_link_many_times_never_uses_it_up(session, w, customer):
    url = issue(session, w)
    for _ in range(5):
        assert customer.open(url).status_code == 200
    assert request_of(session, url).status == RequestStatus.PENDING
    assert money_moved(session) == nothing_charged(session)
    assert customer.pay(url).status_code == 200
    assert_paid(session, w, url)


# --- paying --------------------------------------------------------------------------------------

def test_paying_switches_the_sub_account_to_customer_billing(session, w, customer):
    url = issue(session, w)
    agency_balance = session.get(Account, w.agency.id).balance_cents
    response = customer.pay(url, amount="25.00")
    assert response.status_code == 200
    assert_private(response)
    html = body(response)
    charge = session.scalar(select(Charge))
    assert '<h1>Thank you: billing is set up</h1>' in html
    assert (f"$25.00 was charged to Visa ending 4242 (receipt {charge.receipt_number})."
            in html)
    assert done_text() in html
    assert f"A receipt was emailed to {CUSTOMER}." in html

    # the card was tokenized by the gateway and charged once, for the opening balance
    method = session.get(PaymentMethod, charge.method_id)
    assert (method.account_id, method.brand, method.last4, method.role, method.removed_at) == (
        w.bayside.id, "Visa", "4242", MethodRole.PRIMARY, None)
    # the processor's id for the card the sandbox's form gave, saved to the sub-account's
    # customer there (issue 16: no card data crossed to the portal)
    assert method.token.startswith("pm_sbx_") and method.customer_ref.startswith("cus_sbx_")
    [sandbox] = session.scalars(select(SandboxCharge)).all()
    assert (sandbox.token, sandbox.amount_cents, sandbox.succeeded) == (method.token, 2500, True)
    assert (charge.account_id, charge.purpose, charge.status, charge.amount_cents) == (
        w.bayside.id, ChargePurpose.OPENING_BALANCE, ChargeStatus.SUCCEEDED, 2500)

    # the payment is the sub-account's opening balance, on the SUB's ledger
    assert_paid(session, w, url)
    entry = session.scalar(select(LedgerEntry))
    assert (entry.account_id, entry.kind, entry.amount_cents, entry.balance_after_cents) == (
        w.bayside.id, LedgerKind.PAYMENT, 2500, 2500)
    assert session.get(Account, w.agency.id).balance_cents == agency_balance
    request = request_of(session, url)
    assert (request.charge_id, request.closed_at) == (charge.id, NOW)
    assert ledger.check(session) == []

    # the agency's billing-email recipients are told; the customer gets a receipt
    switched = session.execute(select(OutboxMessage.to_address, OutboxMessage.subject).where(
        OutboxMessage.kind == "billing_switched").order_by(OutboxMessage.to_address)).all()
    subject = "Bayside Dental now pays from its own balance ($25.00 paid)"
    assert switched == [("ada@example.test", subject), ("avery@example.test", subject)]
    text = session.scalar(select(OutboxMessage.text_body).where(
        OutboxMessage.kind == "billing_switched"))
    assert "Bayside Dental now pays its usage from its own balance (Balance from: customer)" \
        in text
    assert f"{CUSTOMER} added Visa ending 4242 and paid $25.00" in text
    assert CUSTOMER in session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "receipt")).all()
    event = session.scalar(select(AccountEvent).where(
        AccountEvent.kind == EventKind.BILLING_MODE_CHANGED))
    assert event.account_id == w.agency.id


def test_the_customer_may_pay_more_than_asked(session, w, customer):
    url = issue(session, w, amount="30")
    assert customer.pay(url, amount="$1,000.50").status_code == 200
    assert_paid(session, w, url, cents=100050)


def test_a_used_link_gets_the_used_page_and_no_second_charge(session, w, customer):
    url = issue(session, w)
    assert customer.pay(url).status_code == 200
    before = money_moved(session)
    html = assert_problem(customer.open(url), "used")
    assert "billing is set up" in html
    assert_problem(customer.pay(url), "used")
    assert_problem(Customer(customer.client.application, "198.51.100.9").pay(url), "used")
    assert money_moved(session) == before == {"charges": 1, "sandbox": 1, "ledger": 1}


def test_the_used_page_does_not_say_no_payment_was_taken(session, w, customer):
    """The used page says the payment was made: it must not also say the opposite."""
    url = issue(session, w)
    assert customer.pay(url).status_code == 200
    html = assert_problem(customer.open(url), "used")
    assert "The payment was made and billing is set up." in html
    assert "No payment was taken." not in html


def test_the_form_cannot_choose_the_account_agency_email_or_minimum(session, w, customer):
    """The token names only the link id: everything else comes from the stored request."""
    url = issue(session, w, amount="30")
    response = customer.pay(url, amount="30", account_id=str(w.harbor.id),
                            sub_account_id=str(w.rival_sub.id), agency_id=str(w.rival.id),
                            email="mallory@evil.example", minimum="1", amount_cents="100")
    assert response.status_code == 200
    charge = session.scalar(select(Charge))
    assert (charge.account_id, charge.amount_cents) == (w.bayside.id, 3000)
    assert_paid(session, w, url, cents=3000)
    assert sub_state(session, w.harbor)["ledger"] == []
    assert session.get(Account, w.harbor.id).billing_mode == BillingMode.CUSTOMER
    assert session.get(Account, w.rival_sub.id).billing_mode == BillingMode.AGENCY
    mail = session.scalars(select(OutboxMessage.to_address)).all()
    assert "mallory@evil.example" not in mail
    assert CUSTOMER in mail


def test_a_minimum_sent_in_the_form_does_not_lower_the_stored_one(session, w, customer):
    url = issue(session, w, amount="30")
    response = customer.pay(url, amount="25", minimum="25", amount_cents="2500")
    assert response.status_code == 422
    assert field_error("amount", "The payment must be at least $30.00, the starting balance "
                                 "Northwind Agency asked for.") in body(response)
    assert money_moved(session) == nothing_charged(session)


# --- declines ------------------------------------------------------------------------------------

def test_a_decline_shows_the_reason_changes_nothing_and_the_same_link_works_again(
        session, w, customer):
    url = issue(session, w)
    response = customer.pay(url, number=DECLINED)
    assert response.status_code == 402
    assert_private(response)
    html = body(response)
    assert form_error("The payment didn't go through: The card was declined. Nothing was "
                      "charged. Try again, or use another card.") in html
    assert 'value="25.00"' in html  # the amount is kept; the card is the processor's form's
    assert DECLINED not in html and "payment_method\" value=\"pm_" not in html
    assert sub_state(session, w.bayside) == agency_billed()
    assert request_of(session, url).status == RequestStatus.PENDING
    assert count(session, OutboxMessage, OutboxMessage.kind == "billing_switched") == 0

    again = customer.pay(url)
    assert again.status_code == 200
    assert done_text() in body(again)
    assert_paid(session, w, url)
    assert [(c.status, c.amount_cents) for c in session.scalars(
        select(Charge).order_by(Charge.id))] == [(ChargeStatus.FAILED, 2500),
                                                 (ChargeStatus.SUCCEEDED, 2500)]
    assert count(session, SandboxCharge) == 2
    assert ledger.check(session) == []


# --- amounts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount,message", [
    ("29.99", "The payment must be at least $30.00, the starting balance Northwind Agency "
              "asked for."),
    ("25", "The payment must be at least $30.00, the starting balance Northwind Agency asked "
           "for."),
    ("25.001", "The payment can't have fractions of a cent: use at most two decimals."),
    ("-25", "The payment must be more than zero."),
    ("1e3", "The payment must be a dollar amount, like 25 or 25.00."),
    ("NaN", "The payment must be a dollar amount, like 25 or 25.00."),
    ("", "The payment is required."),
])
def test_amounts_below_the_request_or_not_dollars_are_refused(session, w, customer, amount,
                                                              message):
    url = issue(session, w, amount="30")
    response = customer.pay(url, amount=amount)
    assert response.status_code == 422
    assert_private(response)
    html = body(response)
    assert field_error("amount", message) in html
    assert 'aria-invalid="true" aria-describedby="amount-error"' in html
    assert money_moved(session) == nothing_charged(session)
    assert sub_state(session, w.bayside) == agency_billed()
    assert request_of(session, url).status == RequestStatus.PENDING
    assert customer.pay(url, amount="30").status_code == 200


@pytest.mark.parametrize("payment_method,message", [
    ("", "Enter your card in the card form (it needs JavaScript), then pay."),
    ("4242424242424242", "Enter your card in the card form (it needs JavaScript), then pay."),
    ("pm_sbx_unknown", "We couldn't read that card from the payment processor. Enter it again."),
    ("diners", "Diners Club cards are not accepted. We accept Visa, Mastercard, American "
               "Express and Discover."),
])
def test_card_errors_are_shown_beside_the_card_entry(app, session, w, customer, payment_method,
                                                     message):
    """Only a payment-method id of the processor's is taken: none (no JavaScript), a card
    number, an id the processor doesn't know, or a brand the portal doesn't take is refused
    beside the card entry, and nothing is charged or kept."""
    if payment_method == "diners":  # the sandbox's form refuses Diners; a processor might not
        with app.app_context():
            payment_method = core.create_payment_method(EnteredMethod(
                "card", "approved", "Diners Club", "0004", 12, 2030, "Pat Doe"))["id"]
    url = issue(session, w)
    response = customer.pay(url, payment_method=payment_method)
    assert response.status_code == 422
    html = body(response)
    assert field_error("payment_method", message) in html
    assert money_moved(session) == nothing_charged(session)
    assert count(session, PaymentMethod) == 0


def test_the_public_form_needs_its_csrf_token(session, w, customer):
    url = issue(session, w)
    assert customer.pay(url, csrf=False).status_code == 400
    assert money_moved(session) == nothing_charged(session)


# --- tampered, expired, revoked ------------------------------------------------------------------

def _changed(token: str, index: int) -> str:
    """The token with one character changed (to another base64url character)."""
    ch = token[index]
    other = "B" if ch != "B" else "C"
    return token[:index] + other + token[index + 1:]


@pytest.mark.parametrize("where", ["payload", "timestamp", "signature", "truncated",
                                   "extended", "garbage"])
def test_a_tampered_link_gets_the_invalid_page_and_no_charge(session, w, customer, where):
    url = issue(session, w)
    token = token_of(url)
    payload, timestamp, signature = token.rsplit(".", 2)
    bad = {
        "payload": _changed(token, 3),
        "timestamp": f"{payload}.{_changed(timestamp, 1)}.{signature}",
        # not the last character: its low bits are base64 padding, which decoding ignores
        "signature": f"{payload}.{timestamp}.{_changed(signature, 5)}",
        "truncated": token[:-4],
        "extended": token + "A",
        "garbage": "not-a-token",
    }[where]
    tampered = url.replace(token, bad)
    html = assert_problem(customer.open(tampered), "tampered")
    assert "<h1>This link isn&#39;t valid</h1>" in html
    assert_problem(customer.pay(tampered), "tampered")
    assert money_moved(session) == nothing_charged(session)
    assert request_of(session, url).status == RequestStatus.PENDING
    assert customer.open(url).status_code == 200  # the real link still works


def test_a_token_signed_with_an_unknown_key_is_tampered(session, w, customer):
    url = issue(session, w)
    link_id = request_of(session, url).link_id
    forged = tokens.sign(["someone-elses-key"], link_id)
    assert_problem(customer.open(f"{BASE}/billing-link/{forged}"), "tampered")
    assert_problem(customer.pay(f"{BASE}/billing-link/{forged}"), "tampered")
    assert money_moved(session) == nothing_charged(session)


@pytest.mark.parametrize("salt", ["itsdangerous", "billing-link.v2", "password-reset"])
def test_the_salt_matters(app, session, w, customer, salt):
    """Another signature made with the app's own key but for another purpose is refused."""
    url = issue(session, w)
    link_id = request_of(session, url).link_id
    keys = app.config.get("BILLING_LINK_SECRET_KEYS") or [app.config["SECRET_KEY"]]
    other = URLSafeTimedSerializer(keys, salt=salt).dumps(link_id)
    assert_problem(customer.open(f"{BASE}/billing-link/{other}"), "tampered")
    assert money_moved(session) == nothing_charged(session)
    # the same key with the link's salt is the real token
    same = URLSafeTimedSerializer(keys, salt=tokens.SALT).dumps(link_id)
    assert customer.open(f"{BASE}/billing-link/{same}").status_code == 200


def test_a_link_signed_with_the_old_key_works_after_rotation(app, session, w, customer):
    app.config["BILLING_LINK_SECRET_KEYS"] = ["old-key"]
    old_url = issue(session, w)
    app.config["BILLING_LINK_SECRET_KEYS"] = ["old-key", "new-key"]  # oldest first
    assert customer.open(old_url).status_code == 200
    # the newest key signs the links sent from now on
    new_url = issue(session, w, sub=w.bayside)
    link_id = request_of(session, new_url).link_id
    assert tokens.verify(["new-key"], token_of(new_url), timedelta(days=8)) == link_id
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["old-key"], token_of(new_url), timedelta(days=8))
    assert_problem(customer.open(old_url), "revoked")  # replaced by the new one, not invalid
    assert customer.pay(new_url).status_code == 200
    assert_paid(session, w, new_url)


def test_a_link_pays_after_rotation_and_is_invalid_once_its_key_is_retired(
        app, session, w, customer):
    app.config["BILLING_LINK_SECRET_KEYS"] = ["old-key"]
    url = issue(session, w)
    app.config["BILLING_LINK_SECRET_KEYS"] = ["new-key"]
    assert_problem(customer.open(url), "tampered")
    app.config["BILLING_LINK_SECRET_KEYS"] = ["old-key", "new-key"]
    assert customer.pay(url).status_code == 200
    assert_paid(session, w, url)


def test_a_link_expires_after_seven_days(session, w, customer):
    url = issue(session, w)
    assert request_of(session, url).expires_at == NOW + timedelta(days=7)
    clock.freeze(NOW + timedelta(days=7) - timedelta(seconds=1))
    assert customer.open(url).status_code == 200
    clock.freeze(NOW + timedelta(days=7))
    assert_problem(customer.open(url), "expired")
    clock.freeze(NOW + timedelta(days=7, minutes=5))
    assert_problem(customer.open(url), "expired")
    assert_problem(customer.pay(url), "expired")
    assert money_moved(session) == nothing_charged(session)
    assert sub_state(session, w.bayside) == agency_billed()


def test_the_lifetime_is_configurable(app, session, w, customer):
    app.config["BILLING_LINK_TTL_DAYS"] = 2
    url = issue(session, w)
    assert request_of(session, url).expires_at == NOW + timedelta(days=2)
    clock.freeze(NOW + timedelta(days=1, hours=23))
    assert customer.open(url).status_code == 200
    clock.freeze(NOW + timedelta(days=2, seconds=1))
    assert_problem(customer.open(url), "expired")
    assert_problem(customer.pay(url), "expired")
    assert money_moved(session) == nothing_charged(session)


def _newer_link(session, w):
    issue(session, w, email="someone@bayside.example")


def _canceled(session, w):
    from billing_links import service

    service.cancel_request(session, w.agency, w.bayside, w.avery)
    session.commit()


def _switched_by_another_route(session, w):
    session.execute(update(Account).where(Account.id == w.bayside.id)
                    .values(billing_mode=BillingMode.CUSTOMER))
    session.commit()


def _sub_closed(session, w):
    lifecycle.close(session, w.bayside, w.avery)
    session.commit()


def _agency_canceled(session, w):
    agency.cancel(session, w.agency, w.avery, "Closing the business")
    session.commit()


REVOCATIONS = {"a newer link": _newer_link, "the request canceled": _canceled,
               "billing switched by another route": _switched_by_another_route,
               "the sub-account closed": _sub_closed, "the agency canceled": _agency_canceled}


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_a_revoked_link_gets_the_revoked_page_and_no_charge(session, w, customer, revoke):
    url = issue(session, w)
    assert customer.open(url).status_code == 200
    revoke(session, w)
    before = sub_state(session, w.bayside)
    assert_problem(customer.open(url), "revoked")
    assert_problem(customer.pay(url), "revoked")
    assert money_moved(session) == nothing_charged(session)
    assert sub_state(session, w.bayside) == before
    assert request_of(session, url).status != RequestStatus.PAID


def test_a_link_stays_revoked_when_the_closed_sub_account_is_reactivated(session, w, customer):
    """Closing the sub-account stops the link for good: reactivating it (within 60 days)
    must not bring an old emailed link back to life."""
    url = issue(session, w)
    lifecycle.close(session, w.bayside, w.avery)
    session.commit()
    assert_problem(customer.open(url), "revoked")
    clock.freeze(NOW + timedelta(days=1))
    lifecycle.reactivate(session, session.get(Account, w.bayside.id), w.avery)
    session.commit()
    assert_problem(customer.open(url), "revoked")
    assert_problem(customer.pay(url), "revoked")
    assert money_moved(session) == nothing_charged(session)
    assert sub_state(session, w.bayside) == agency_billed()


# --- the pages are private and rate-limited ------------------------------------------------------

def test_every_public_page_is_private(session, w, customer):
    url = issue(session, w)
    responses = [customer.open(url), customer.pay(url, amount="1"),
                 customer.pay(url, number=DECLINED),
                 customer.open(url.replace(token_of(url), "nope")), customer.pay(url),
                 customer.open(url)]
    assert [r.status_code for r in responses] == [200, 422, 402, 404, 200, 410]
    for response in responses:
        assert_private(response)


@pytest.fixture
def limited_app(database_url, _schema, app):
    """A second app on the same database, with a small per-address limit (`app` first: it
    empties the database afterwards)."""
    limited = make_app(database_url, BILLING_LINK_RATE_LIMIT=3,
                       EXTERNAL_BASE_URL=BASE)
    yield limited
    from portal.extensions import db

    with limited.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_pages_are_rate_limited_per_address(session, w, limited_app):
    url = issue(session, w)
    first = Customer(limited_app, "192.0.2.1")
    for _ in range(3):
        assert first.open(url).status_code == 200
    refused = first.open(url)
    assert refused.status_code == 429
    assert_private(refused)
    html = body(refused)
    assert "<h1>Too many attempts</h1>" in html
    assert "Wait a few minutes and try again." in html
    assert first.pay(url).status_code == 429
    # a forged X-Forwarded-For doesn't make another address (no trusted proxy)
    assert first.open(url, headers={"X-Forwarded-For": "192.0.2.99"}).status_code == 429
    # another address is not limited
    assert Customer(limited_app, "192.0.2.2").open(url).status_code == 200
    assert money_moved(session) == nothing_charged(session)
    # the window passes
    clock.freeze(NOW + timedelta(minutes=11))
    assert first.pay(url).status_code == 200
    assert_paid(session, w, url)


# --- a charge the processor doesn't answer -------------------------------------------------------

def test_a_timed_out_charge_is_processing_then_the_retry_switches_billing(
        app, session, w, customer):
    url = issue(session, w)
    response = customer.pay(url, number=TIMEOUT)
    assert response.status_code == 200
    html = body(response)
    assert "<h1>Payment processing</h1>" in html
    assert "never charge twice" in html
    assert "Thank you" not in html
    assert request_of(session, url).status == RequestStatus.PENDING
    # nothing changes on the account until the processor answers (the card is not Primary)
    assert sub_state(session, w.bayside) == {**agency_billed(),
                                             "methods": [(TIMEOUT[-4:], MethodRole.OTHER)]}
    [charge] = session.scalars(select(Charge)).all()
    assert charge.status == ChargeStatus.PENDING
    assert count(session, SandboxCharge) == 1  # the processor did charge

    # not yet due: nothing happens
    assert charges.retry_pending(session, SandboxGateway(), NOW) == []
    later = NOW + rules.CHARGE_RETRY_AFTER
    clock.freeze(later)
    [settled] = charges.retry_pending(session, SandboxGateway())
    assert (settled.id, settled.status) == (charge.id, ChargeStatus.SUCCEEDED)
    session.expire_all()
    assert sub_state(session, w.bayside)["billing"] == "customer"
    assert sub_state(session, w.bayside)["methods"] == [(TIMEOUT[-4:], MethodRole.PRIMARY)]
    assert sub_state(session, w.bayside)["ledger"] == [(LedgerKind.PAYMENT, 2500)]
    request = request_of(session, url)
    assert (request.status, request.charge_id, request.closed_at) == (
        RequestStatus.PAID, charge.id, later)
    assert count(session, SandboxCharge) == 1
    assert count(session, Charge) == 1
    assert count(session, OutboxMessage, OutboxMessage.kind == "billing_switched") == 2
    assert ledger.check(session) == []
    assert_problem(customer.open(url), "used")


# --- the race ------------------------------------------------------------------------------------

CUSTOMERS = 20


def test_twenty_submits_of_one_link_at_once_charge_once_and_switch_once(app, session, w):
    """Twenty browsers submit the same link at the same moment (a double click, tabs, a
    replayed request), each with its own session and address.

    Every thread may see exactly one of two pages:
    - 200, the success page for THE charge (its receipt number, "now pays from its own
      balance"): the thread whose settle credited it, or a twin that passed the link check
      while the request was still pending and then found the same charge by its key
      ("billing-link:<link id>:0") and got the processor's stored answer;
    - 410, "This link was already used": it checked the link after the payment's
      transaction committed.
    Nothing else: no second charge, no decline, no "processing", no error page.
    """
    url = issue(session, w)
    sub_id, agency_id = w.bayside.id, w.agency.id
    customers = [Customer(app, f"10.0.0.{i + 1}") for i in range(CUSTOMERS)]
    for c in customers:  # each opens the page (and gets its CSRF token) first
        assert c.open(url).status_code == 200
        c.token()
    session.commit()
    barrier = threading.Barrier(CUSTOMERS)
    results, errors = {}, []

    def submit(i):
        try:
            barrier.wait(timeout=30)
            response = customers[i].pay(url)
            results[i] = (response.status_code, body(response))
        except Exception:  # surfaced below
            errors.append(traceback.format_exc())  # the whole trace, where it failed

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(CUSTOMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(results) == list(range(CUSTOMERS))

    session.expire_all()
    [charge] = session.scalars(select(Charge)).all()
    assert (charge.status, charge.account_id, charge.amount_cents) == (
        ChargeStatus.SUCCEEDED, sub_id, 2500)
    assert count(session, SandboxCharge) == 1
    assert count(session, Charge, Charge.status == ChargeStatus.SUCCEEDED) == 1
    success = f"(receipt {charge.receipt_number})"
    statuses = {}
    for i, (status, html) in results.items():
        if status == 200:
            assert "<h1>Thank you: billing is set up</h1>" in html, html[:800]
            assert success in html and done_text() in html
            statuses[i] = "paid"
        else:
            assert status == 410, (status, html[:800])
            assert 'data-reason="used"' in html
            assert "<h1>This link was already used</h1>" in html
            statuses[i] = "used"
    assert "paid" in statuses.values()
    assert len(statuses) == CUSTOMERS

    # one opening balance, one card, one switch, one note to each agency recipient
    assert session.execute(select(LedgerEntry.account_id, LedgerEntry.kind,
                                  LedgerEntry.amount_cents)).all() == [
        (sub_id, LedgerKind.PAYMENT, 2500)]
    assert session.execute(select(PaymentMethod.account_id, PaymentMethod.role,
                                  PaymentMethod.removed_at)).all() == [
        (sub_id, MethodRole.PRIMARY, None)]
    assert session.get(Account, sub_id).billing_mode == BillingMode.CUSTOMER
    assert session.get(Account, sub_id).balance_cents == 2500
    assert count(session, AccountEvent, AccountEvent.kind == EventKind.BILLING_MODE_CHANGED,
                 AccountEvent.account_id == agency_id) == 1
    assert count(session, OutboxMessage, OutboxMessage.kind == "billing_switched") == 2
    request = request_of(session, url)
    assert (request.status, request.charge_id) == (RequestStatus.PAID, charge.id)
    assert ledger.check(session) == []


def test_the_link_is_the_configured_base_and_the_token(session, w):
    """The link's path is exactly /billing-link/<token> on the configured base."""
    url = issue(session, w)
    assert path_of(url) == f"/billing-link/{token_of(url)}"
    assert url == f"{BASE}{path_of(url)}"
