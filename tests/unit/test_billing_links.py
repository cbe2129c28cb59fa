"""The billing links' service (billing_links/service.py), driven directly: Remove from Agency
Billing (a request and its link), Resend, Cancel, opening and paying a link, the link's
revocations, Add to Agency Billing (the balance moved with a pair of ledger entries) and the
public pages' rate limit."""

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service, tokens
from portal import clock, rules, signed_links
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import (
    Account,
    AccountEvent,
    BillingMode,
    BillingRequest,
    BillingSettings,
    Charge,
    ChargePurpose,
    ChargeStatus,
    EventKind,
    Invitation,
    InvitationStatus,
    LedgerEntry,
    LedgerKind,
    LinkHit,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
    Refund,
    RefundStatus,
    RequestStatus,
    Role,
    SandboxCharge,
    SandboxRefund,
)
from portal.sandbox import core
from portal.sandbox.cards import EnteredMethod
from portal.sandbox.testing import AUTHENTICATE_ONCE, paying_card
from portal.services import agency, charges, ledger, lifecycle, people, refunds
from portal.services.gateway import ChargeResult, GatewayTimeout, SandboxGateway
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = service.LinkSettings(keys=["unit-key"], ttl=timedelta(days=7),
                                base_url="https://portal.example/")
CARD = {"holder": "Pat Doe", "number": "4242424242424242", "exp_month": "12",
        "exp_year": "2030", "cvc": "123"}
DECLINED = "4000000000000002"
TIMEOUT = "4000000000000259"


@pytest.fixture
def gw(app):
    clock.freeze(NOW)
    return SandboxGateway()


@pytest.fixture
def w(session, gw):
    """Northwind Agency (owner avery, admin ada) with Bayside Dental on agency billing and
    Harbor Law on customer billing; Rival Agency with its own sub-account."""
    avery = f.user(session, "avery@example.test")
    ada = f.user(session, "ada@example.test")
    agency = f.agency(session, "Northwind Agency", owner=avery)
    f.member(session, ada, agency, Role.ADMIN)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    rival = f.agency(session, "Rival Agency")
    rival_sub = f.sub(session, rival, "Rival Clinic")
    session.commit()
    return type("World", (), dict(avery=avery, ada=ada, agency=agency, bayside=bayside,
                                  harbor=harbor, rival=rival, rival_sub=rival_sub))


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def send(session, w, sub=None, email="Pat@Bayside.Example", amount="25.00",
         message="Please pay.", now=None):
    request, url = service.request_removal(session, SETTINGS, w.agency, sub or w.bayside,
                                           w.avery, email, amount, message, now=now)
    session.commit()
    return request, url


def token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def pay(session, gw, url, amount="25.00", **fields):
    result = service.pay(session, gw, SETTINGS, token(url), {"amount": amount,
                                                             **entered(fields)})
    session.expire_all()
    return result


def entered(fields: dict) -> dict:
    """The sandbox's card form turns CARD (overridden by `fields`) into a payment-method id:
    what the page posts (issue 16); a given `payment_method` is posted as it is."""
    card = {**CARD, **{k: fields.pop(k) for k in list(fields) if k in CARD}}
    if "payment_method" not in fields:
        fields["payment_method"] = paying_card(
            card["number"], exp_month=int(card["exp_month"]), exp_year=int(card["exp_year"]),
            cvc=card["cvc"], holder=card["holder"])
    return fields


def state(session, sub) -> tuple:
    session.expire_all()
    account = session.get(Account, sub.id)
    methods = session.execute(select(PaymentMethod.last4, PaymentMethod.role).where(
        PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None))).all()
    entries = session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents).where(
        LedgerEntry.account_id == sub.id).order_by(LedgerEntry.id)).all()
    return account.billing_mode, account.balance_cents, methods, entries


AGENCY_BILLED = (BillingMode.AGENCY, 0, [], [])


# --------------------------------------------------------------- requesting

def test_a_request_stores_what_the_agency_asked_and_links_to_the_configured_url(session, w):
    request, url = send(session, w, amount="$1,250.50", message="  Hi Pat  ")
    assert (request.agency_id, request.sub_account_id, request.email, request.amount_cents,
            request.message, request.status, request.failed_attempts, request.created_by_id,
            request.created_at, request.expires_at, request.closed_at, request.charge_id) == (
        w.agency.id, w.bayside.id, "pat@bayside.example", 125050, "Hi Pat",
        RequestStatus.PENDING, 0, w.avery.id, NOW, NOW + timedelta(days=7), None, None)
    assert url == f"https://portal.example/billing-link/{token(url)}"
    assert tokens.verify(SETTINGS.keys, token(url), timedelta(days=8)) == request.link_id
    # the token carries the link id and nothing else (decoded here without the key)
    assert URLSafeTimedSerializer(["x"]).loads_unsafe(token(url)) == (False, request.link_id)
    event = session.scalar(select(AccountEvent).where(
        AccountEvent.kind == EventKind.BILLING_LINK_SENT))
    assert (event.account_id, event.actor_id) == (w.agency.id, w.avery.id)


def test_the_lifetime_comes_from_the_settings(session, w):
    short = service.LinkSettings(keys=["k"], ttl=timedelta(days=2), base_url="https://x")
    request, _url = service.request_removal(session, short, w.agency, w.bayside, w.avery,
                                            "pat@example.test", "25", "")
    assert request.expires_at == NOW + timedelta(days=2)
    assert rules.BILLING_LINK_TTL == timedelta(days=7)


@pytest.mark.parametrize("amount,message", [
    ("24.99", "The starting balance must be at least $25.00."),
    ("0", "The starting balance must be at least $25.00."),
    ("25.001", "The starting balance can't have fractions of a cent: use at most two "
               "decimals."),
    ("-25", "The starting balance must be more than zero."),
    ("1e3", "The starting balance must be a dollar amount, like 25 or 25.00."),
    ("NaN", "The starting balance must be a dollar amount, like 25 or 25.00."),
    ("inf", "The starting balance must be a dollar amount, like 25 or 25.00."),
    ("", "The starting balance is required."),
    ("10000.01", "The starting balance can be at most $10,000.00."),
])
def test_a_starting_balance_below_25_dollars_or_not_dollars_is_refused(session, w, amount,
                                                                       message):
    with pytest.raises(ValidationFailed) as e:
        service.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                "pat@example.test", amount, "")
    assert e.value.errors == {"amount": message}
    session.rollback()
    assert count(session, BillingRequest) == 0


@pytest.mark.parametrize("amount,cents", [("25.00", 2500), ("25", 2500), ("$25.5", 2550),
                                          ("10,000", 1_000_000)])
def test_25_dollars_or_more_is_accepted(session, w, amount, cents):
    request, _url = send(session, w, amount=amount)
    assert request.amount_cents == cents


@pytest.mark.parametrize("email", ["", "pat", "pat@", "pat@example", "pat @example.test",
                                   "a@b.c" + "c" * 260])
def test_the_customers_email_is_checked(session, w, email):
    with pytest.raises(ValidationFailed) as e:
        service.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery, email,
                                "25", "")
    assert e.value.errors == {
        "email": "Enter the customer's email address, like name@example.com."}


def test_the_message_is_at_most_2000_characters(session, w):
    with pytest.raises(ValidationFailed) as e:
        service.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                "pat@example.test", "25", "x" * 2001)
    assert e.value.errors == {"message": "Keep the message to 2,000 characters."}
    request, _url = send(session, w, message="x" * 2000)
    assert len(request.message) == 2000


def test_only_an_agency_billed_open_sub_account_of_an_open_agency_can_be_asked(session, w):
    with pytest.raises(NotAllowed, match="already pays from its own balance"):
        service.request_removal(session, SETTINGS, w.agency, w.harbor, w.avery,
                                "pat@example.test", "25", "")
    lifecycle.close(session, w.bayside, w.avery)
    with pytest.raises(NotAllowed, match="reactivate it first"):
        service.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                "pat@example.test", "25", "")
    session.rollback()
    agency.cancel(session, w.agency, w.avery, "Other")
    with pytest.raises(NotAllowed, match="Northwind Agency is canceled"):
        service.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                "pat@example.test", "25", "")


def test_a_sub_account_of_another_agency_is_not_found(session, w):
    assert service.sub_of(session, w.agency, w.bayside.id).id == w.bayside.id
    for sub_id in (w.rival_sub.id, w.agency.id, w.rival.id, 999999):
        with pytest.raises(NotFound):
            service.sub_of(session, w.agency, sub_id)


def test_a_new_request_replaces_the_pending_one(session, w):
    first, _ = send(session, w)
    clock.freeze(NOW + timedelta(hours=1))
    second, _ = send(session, w, email="other@example.test", amount="30")
    session.expire_all()
    assert (first.status, first.closed_at) == (RequestStatus.REPLACED, NOW + timedelta(hours=1))
    assert second.status == RequestStatus.PENDING
    assert service.pending_for(session, [w.bayside.id, w.harbor.id]) == {w.bayside.id: second}


def test_the_database_holds_one_pending_request_per_sub_account(session, w):
    first, _ = send(session, w)
    session.add(BillingRequest(link_id=signed_links.new_link_id(), agency_id=w.agency.id,
                               sub_account_id=w.bayside.id, email="x@example.test",
                               amount_cents=2500, status=RequestStatus.PENDING,
                               failed_attempts=0, expires_at=NOW + timedelta(days=7)))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_resend_makes_a_new_link_for_the_same_request(session, w):
    first, first_url = send(session, w, amount="42.10", message="Hello")
    second, second_url = service.resend(session, SETTINGS, w.agency, w.bayside, w.ada)
    session.commit()
    session.expire_all()
    assert first.status == RequestStatus.REPLACED
    assert (second.email, second.amount_cents, second.message, second.created_by_id) == (
        "pat@bayside.example", 4210, "Hello", w.ada.id)
    assert second.link_id != first.link_id and second_url != first_url
    with pytest.raises(service.LinkRevoked):
        service.open_link(session, SETTINGS, token(first_url))
    assert service.open_link(session, SETTINGS, token(second_url)).request.id == second.id


def test_resend_and_cancel_need_a_pending_request(session, w):
    for action in (lambda: service.resend(session, SETTINGS, w.agency, w.bayside, w.avery),
                   lambda: service.cancel_request(session, w.agency, w.bayside, w.avery)):
        with pytest.raises(NotAllowed, match="no pending billing request for Bayside Dental"):
            action()
        session.rollback()


def test_cancel_revokes_the_link(session, w):
    request, url = send(session, w)
    canceled = service.cancel_request(session, w.agency, w.bayside, w.ada)
    session.commit()
    assert (canceled.id, canceled.status, canceled.closed_at) == (
        request.id, RequestStatus.CANCELED, NOW)
    with pytest.raises(service.LinkRevoked):
        service.open_link(session, SETTINGS, token(url))
    with pytest.raises(NotAllowed):
        service.cancel_request(session, w.agency, w.bayside, w.ada)
    assert count(session, AccountEvent,
                 AccountEvent.kind == EventKind.BILLING_LINK_CANCELED) == 1


# --------------------------------------------------------------- opening

def test_opening_a_link_changes_nothing(session, w):
    request, url = send(session, w)
    for _ in range(3):
        link = service.open_link(session, SETTINGS, token(url))
        assert (link.request.id, link.sub.id, link.agency.id) == (
            request.id, w.bayside.id, w.agency.id)
    session.expire_all()
    assert request.status == RequestStatus.PENDING
    assert state(session, w.bayside) == AGENCY_BILLED


def test_a_link_expires_at_its_expiry(session, w):
    _request, url = send(session, w)
    service.open_link(session, SETTINGS, token(url), now=NOW + timedelta(days=7, seconds=-1))
    with pytest.raises(tokens.LinkExpired):
        service.open_link(session, SETTINGS, token(url), now=NOW + timedelta(days=7))
    with pytest.raises(tokens.LinkExpired):
        service.pay(session, SandboxGateway(), SETTINGS, token(url), {**CARD, "amount": "25"},
                    now=NOW + timedelta(days=8))
    assert count(session, Charge) == count(session, SandboxCharge) == 0


def test_a_token_for_no_stored_request_is_tampered(session, w):
    with pytest.raises(tokens.LinkTampered):
        service.open_link(session, SETTINGS, tokens.sign(SETTINGS.keys, signed_links.new_link_id()))


def test_a_link_signed_with_a_retired_key_is_tampered_and_with_a_kept_one_works(session, w):
    request, url = send(session, w)
    rotated = service.LinkSettings(keys=["unit-key", "newer"], ttl=SETTINGS.ttl,
                                   base_url=SETTINGS.base_url)
    assert service.open_link(session, rotated, token(url)).request.id == request.id
    retired = service.LinkSettings(keys=["newer"], ttl=SETTINGS.ttl, base_url="https://x")
    with pytest.raises(tokens.LinkTampered):
        service.open_link(session, retired, token(url))


@pytest.mark.parametrize("revocation", ["replaced", "canceled", "switched", "closed",
                                        "agency canceled", "moved to another agency"])
def test_a_revoked_link_cannot_be_opened_or_paid(session, gw, w, revocation):
    _request, url = send(session, w)
    if revocation == "replaced":
        send(session, w)
    elif revocation == "canceled":
        service.cancel_request(session, w.agency, w.bayside, w.avery)
    elif revocation == "switched":
        session.execute(update(Account).where(Account.id == w.bayside.id)
                        .values(billing_mode=BillingMode.CUSTOMER))
    elif revocation == "closed":
        lifecycle.close(session, w.bayside, w.avery)
    elif revocation == "agency canceled":
        agency.cancel(session, w.agency, w.avery, "Other")
    else:
        session.execute(update(Account).where(Account.id == w.bayside.id)
                        .values(parent_id=w.rival.id))
    session.commit()
    with pytest.raises(service.LinkRevoked) as e:
        service.open_link(session, SETTINGS, token(url))
    assert e.value.reason == "revoked"
    with pytest.raises(service.LinkRevoked):
        pay(session, gw, url)
    assert count(session, Charge) == count(session, SandboxCharge) == 0
    assert count(session, LedgerEntry) == 0


# --------------------------------------------------------------- paying

def test_paying_switches_billing_in_the_payments_transaction(session, gw, w):
    request, url = send(session, w)
    payment = pay(session, gw, url, amount="30")
    assert payment.switched is True
    charge = payment.charge
    assert (charge.status, charge.purpose, charge.account_id, charge.amount_cents,
            charge.idempotency_key, charge.actor_id) == (
        ChargeStatus.SUCCEEDED, ChargePurpose.OPENING_BALANCE, w.bayside.id, 3000,
        f"billing-link:{request.link_id}:0", None)
    assert state(session, w.bayside) == (BillingMode.CUSTOMER, 3000,
                                         [("4242", MethodRole.PRIMARY)],
                                         [(LedgerKind.PAYMENT, 3000)])
    session.refresh(request)
    assert (request.status, request.charge_id, request.closed_at) == (
        RequestStatus.PAID, charge.id, NOW)
    assert session.get(Account, w.agency.id).balance_cents == 0
    mail = session.execute(select(OutboxMessage.kind, OutboxMessage.to_address)
                           .order_by(OutboxMessage.kind, OutboxMessage.to_address)).all()
    assert ("billing_switched", "ada@example.test") in mail
    assert ("billing_switched", "avery@example.test") in mail
    assert ("receipt", "pat@bayside.example") in mail
    assert ledger.check(session) == []
    with pytest.raises(service.LinkUsed) as e:
        pay(session, gw, url)
    assert e.value.reason == "used"
    assert count(session, SandboxCharge) == 1


def test_the_form_never_chooses_the_account_or_lowers_the_minimum(session, gw, w):
    _request, url = send(session, w, amount="30")
    extra = {"account_id": str(w.harbor.id), "sub_account_id": str(w.rival_sub.id),
             "agency_id": str(w.rival.id), "email": "mallory@example.test",
             "amount_cents": "100", "minimum": "1"}
    with pytest.raises(ValidationFailed) as e:
        pay(session, gw, url, amount="29.99", **extra)
    assert e.value.errors == {"amount": "The payment must be at least $30.00, the starting "
                                        "balance Northwind Agency asked for."}
    payment = pay(session, gw, url, amount="30", **extra)
    assert (payment.charge.account_id, payment.charge.amount_cents) == (w.bayside.id, 3000)
    assert state(session, w.harbor)[3] == []
    assert session.get(Account, w.rival_sub.id).billing_mode == BillingMode.AGENCY
    assert "mallory@example.test" not in session.scalars(select(OutboxMessage.to_address)).all()


@pytest.mark.parametrize("amount", ["25.001", "-25", "1e3", "NaN", "", "24.99"])
def test_bad_payment_amounts_are_refused_before_any_charge(session, gw, w, amount):
    _request, url = send(session, w)
    with pytest.raises(ValidationFailed) as e:
        pay(session, gw, url, amount=amount)
    assert set(e.value.errors) == {"amount"}
    session.rollback()
    assert count(session, Charge) == count(session, PaymentMethod) == 0


def test_a_decline_changes_nothing_and_the_next_attempt_gets_a_new_key(session, gw, w):
    request, url = send(session, w)
    declined = pay(session, gw, url, number=DECLINED)
    assert declined.switched is False
    assert (declined.charge.status, declined.charge.failure_message) == (
        ChargeStatus.FAILED, "The card was declined.")
    assert state(session, w.bayside) == AGENCY_BILLED
    session.refresh(request)
    assert (request.status, request.failed_attempts) == (RequestStatus.PENDING, 1)
    # the declined card is removed again: nothing on the account
    method = session.get(PaymentMethod, declined.charge.method_id)
    assert (method.role, method.removed_at) == (MethodRole.OTHER, NOW)

    paid = pay(session, gw, url)
    assert paid.switched is True
    assert [c.idempotency_key for c in session.scalars(select(Charge).order_by(Charge.id))] == [
        f"billing-link:{request.link_id}:0", f"billing-link:{request.link_id}:1"]
    assert state(session, w.bayside) == (BillingMode.CUSTOMER, 2500,
                                         [("4242", MethodRole.PRIMARY)],
                                         [(LedgerKind.PAYMENT, 2500)])


def test_a_timed_out_charge_stays_pending_and_its_retry_switches_billing(session, gw, w):
    request, url = send(session, w)
    pending = pay(session, gw, url, number=TIMEOUT)
    assert (pending.charge.status, pending.switched) == (ChargeStatus.PENDING, False)
    session.refresh(request)
    assert request.status == RequestStatus.PENDING
    assert state(session, w.bayside)[0] == BillingMode.AGENCY
    # submitting again meanwhile reuses the charge (its key): still one processor charge
    again = pay(session, gw, url, number=TIMEOUT)
    assert again.charge.id == pending.charge.id
    assert again.switched is True  # the processor's stored answer settled it
    assert count(session, SandboxCharge) == count(session, Charge) == 1
    assert state(session, w.bayside)[0] == BillingMode.CUSTOMER
    assert ledger.check(session) == []


def test_the_retry_job_settles_a_timed_out_charge_then_switches(session, gw, w):
    request, url = send(session, w)
    pay(session, gw, url, number=TIMEOUT)
    assert charges.retry_pending(session, gw, NOW + timedelta(seconds=59)) == []
    session.expire_all()
    assert session.get(BillingRequest, request.id).status == RequestStatus.PENDING
    [charge] = charges.retry_pending(session, gw, NOW + rules.CHARGE_RETRY_AFTER)
    assert charge.status == ChargeStatus.SUCCEEDED
    session.expire_all()
    assert session.get(BillingRequest, request.id).status == RequestStatus.PAID
    assert state(session, w.bayside)[0] == BillingMode.CUSTOMER
    assert count(session, SandboxCharge) == 1
    assert ledger.check(session) == []


def outbox(session) -> list[tuple[str, str, str]]:
    """(kind, to, subject) of every queued message, in order."""
    session.expire_all()
    return [tuple(row) for row in session.execute(
        select(OutboxMessage.kind, OutboxMessage.to_address, OutboxMessage.subject)
        .order_by(OutboxMessage.id)).all()]


def test_a_request_canceled_while_its_charge_is_in_flight_is_still_honoured(session, gw, w):
    """The customer paid while the link worked: with the sub-account still open under the
    same agency and no newer link sent, the late answer completes the switch they paid for
    (the money must not sit on a ledger nothing uses), and they get their receipt."""
    request, url = send(session, w)
    pay(session, gw, url, number=TIMEOUT)
    service.cancel_request(session, w.agency, w.bayside, w.avery)
    session.commit()
    [charge] = charges.retry_pending(session, gw, NOW + rules.CHARGE_RETRY_AFTER)
    assert charge.status == ChargeStatus.SUCCEEDED
    session.expire_all()
    request = session.get(BillingRequest, request.id)
    assert (request.status, request.charge_id) == (RequestStatus.PAID, charge.id)
    assert state(session, w.bayside) == (BillingMode.CUSTOMER, 2500,
                                         [("0259", MethodRole.PRIMARY)],
                                         [(LedgerKind.PAYMENT, 2500)])
    with pytest.raises(service.LinkUsed):
        service.open_link(session, SETTINGS, token(url))
    sent = outbox(session)
    assert ("receipt", "pat@bayside.example",
            f"Receipt {charge.receipt_number}: Bayside Dental's opening balance") in sent
    assert {to for kind, to, _ in sent if kind == "billing_switched"} == {
        "avery@example.test", "ada@example.test"}
    assert count(session, Refund) == 0
    assert ledger.check(session) == []


def _late(session, gw, w, interrupt) -> tuple:
    """Pay with the card whose answer times out, do `interrupt`, let the jobs settle it."""
    request, url = send(session, w)
    pay(session, gw, url, number=TIMEOUT)
    interrupt()
    session.commit()
    [charge] = charges.retry_pending(session, gw, NOW + rules.CHARGE_RETRY_AFTER)
    session.expire_all()
    return request, url, session.get(Charge, charge.id)


def _assert_refunded(session, gw, w, charge, reason, balance_before=0):
    """Charged once and refunded once through the processor; no balance holds the money;
    the card is not kept; the customer has the receipt and the refund notice, the agency's
    recipients the refund notice."""
    assert charge.status == ChargeStatus.SUCCEEDED
    [refund] = session.scalars(select(Refund)).all()
    assert (refund.charge_id, refund.account_id, refund.amount_cents, refund.status,
            refund.reason, refund.notify_email) == (
        charge.id, w.bayside.id, 2500, RefundStatus.SUCCEEDED, reason, "pat@bayside.example")
    [given] = session.scalars(select(SandboxRefund)).all()
    assert (given.charge_reference, given.amount_cents, given.succeeded,
            given.idempotency_key) == (charge.gateway_reference, 2500, True,
                                       f"refund:{charge.id}")
    assert refund.gateway_reference == given.reference
    bayside = session.get(Account, w.bayside.id)
    assert bayside.balance_cents == balance_before
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.cause_ref == str(charge.id))) == 0  # never credited, never debited
    assert session.get(PaymentMethod, charge.method_id).removed_at is not None
    sent = outbox(session)
    assert ("receipt", "pat@bayside.example",
            f"Receipt {charge.receipt_number}: Bayside Dental's opening balance "
            "(being refunded)") in sent
    refunded = f"Refunded $25.00 ({charge.receipt_number}) for Bayside Dental"
    assert ("refund", "pat@bayside.example", refunded) in sent
    assert {to for kind, to, subject in sent if kind == "refund" and subject == refunded} == {
        "pat@bayside.example", "avery@example.test", "ada@example.test"}
    assert not [m for m in sent if m[0] == "billing_switched"]
    assert ledger.check(session) == []
    return refund


def test_a_payment_whose_link_was_replaced_meanwhile_is_refunded(session, gw, w):
    """A newer link went out while the first payment was in flight: the newer request is
    the one to honour, so the late payment goes back, and the newer link still works."""
    newer = {}

    def resend():
        newer["request"], newer["url"] = service.resend(session, SETTINGS, w.agency,
                                                        w.bayside, w.avery)

    request, _url, charge = _late(session, gw, w, resend)
    _assert_refunded(session, gw, w, charge, "Northwind Agency sent a newer billing link")
    assert session.get(BillingRequest, request.id).status == RequestStatus.REPLACED
    assert state(session, w.bayside)[0] == BillingMode.AGENCY
    assert service.open_link(session, SETTINGS, token(newer["url"])).request.id == \
        newer["request"].id
    paid = pay(session, gw, newer["url"])  # and it can still be paid, once
    assert paid.switched is True


def test_a_payment_for_a_sub_account_closed_meanwhile_is_refunded(session, gw, w):
    _request, url, charge = _late(
        session, gw, w, lambda: lifecycle.close(session, session.get(Account, w.bayside.id),
                                                w.avery))
    _assert_refunded(session, gw, w, charge, "Bayside Dental was closed")
    assert state(session, w.bayside)[0] == BillingMode.AGENCY
    with pytest.raises(service.LinkRevoked):
        service.open_link(session, SETTINGS, token(url))


def test_a_payment_for_an_agency_canceled_meanwhile_is_refunded(session, gw, w):
    _request, _url, charge = _late(
        session, gw, w, lambda: agency.cancel(session, w.agency, w.avery, "Other"))
    # the sub-account was closed with its agency: that is the reason the customer reads
    _assert_refunded(session, gw, w, charge, "Bayside Dental was closed")


class _SlowRefunds(SandboxGateway):
    """The sandbox, except that its first refund answer never arrives."""

    def __init__(self):
        self.timeouts = 1

    def refund(self, charge_reference, amount_cents, idempotency_key):
        answer = super().refund(charge_reference, amount_cents, idempotency_key)
        if self.timeouts:
            self.timeouts -= 1
            raise GatewayTimeout("no answer")
        return answer


def test_a_refund_whose_answer_times_out_is_asked_again_by_the_jobs_once(session, w):
    gw = _SlowRefunds()
    resend = lambda: service.resend(session, SETTINGS, w.agency, w.bayside, w.avery)  # noqa
    _request, _url, charge = _late(session, gw, w, resend)
    [refund] = session.scalars(select(Refund)).all()
    assert (refund.status, refund.attempts) == (RefundStatus.PENDING, 1)
    assert count(session, OutboxMessage, OutboxMessage.kind == "refund") == 0
    later = NOW + rules.CHARGE_RETRY_AFTER
    assert refunds.retry_pending(session, gw, later) == []  # its backoff has not passed
    [again] = refunds.retry_pending(session, gw, later + rules.CHARGE_RETRY_AFTER)
    assert (again.id, again.status, again.attempts) == (refund.id, RefundStatus.SUCCEEDED, 2)
    assert count(session, SandboxRefund) == 1  # the processor refunded once
    session.expire_all()
    _assert_refunded(session, gw, w, session.get(Charge, charge.id),
                     "Northwind Agency sent a newer billing link")
    assert refunds.retry_pending(session, gw, later + 10 * rules.CHARGE_RETRY_AFTER) == []


class _NoRefunds(SandboxGateway):
    def refund(self, charge_reference, amount_cents, idempotency_key):
        return ChargeResult(False, "re_x", "refund_refused", "Refunds are not allowed.")


def test_a_refund_the_processor_refuses_is_failed_and_everyone_is_told(session, w):
    gw = _NoRefunds()
    _request, _url, charge = _late(
        session, gw, w, lambda: service.resend(session, SETTINGS, w.agency, w.bayside,
                                               w.avery))
    [refund] = session.scalars(select(Refund)).all()
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED,
                                                       "Refunds are not allowed.")
    subject = "Action needed: a refund for Bayside Dental didn't go through"
    assert {to for kind, to, s in outbox(session) if kind == "refund" and s == subject} == {
        "pat@bayside.example", "avery@example.test", "ada@example.test"}
    # never credited, so there is no debit to give back: the ledgers are untouched
    assert count(session, LedgerEntry) == 0
    assert ledger.check(session) == []


def test_a_credited_payment_refunded_is_debited_from_whoever_holds_the_balance(session, gw,
                                                                               w):
    """A refund of a charge that was credited takes the money back from the account that
    holds the balance now (read under the lock): here Harbor Law's payment, made while it
    paid for itself, moved to the agency with its balance."""
    card = f.card(session, w.harbor)
    session.commit()
    charge = charges.start(session, w.harbor, card, ChargePurpose.PAYMENT, 4000, "pay-1",
                           "Payment to Harbor Law")
    session.commit()
    charges.attempt(session, gw, charge)
    service.add_to_agency_billing(session, w.agency, session.get(Account, w.harbor.id),
                                  w.avery)
    session.commit()
    refund = refunds.start(session, session.get(Charge, charge.id), "asked by the customer")
    session.commit()
    refunds.attempt(session, gw, refund)
    session.expire_all()
    debit = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.REFUND))
    assert (debit.account_id, debit.amount_cents, debit.for_account_id) == (
        w.agency.id, -4000, w.harbor.id)
    assert session.get(Account, w.agency.id).balance_cents == 0
    assert session.get(Account, w.harbor.id).balance_cents == 0
    assert session.get(Refund, refund.id).status == RefundStatus.SUCCEEDED
    assert ledger.check(session) == []


def test_a_late_decline_frees_the_link_for_another_card(session, w):
    """The jobs settle a timed-out link payment as declined: the card is removed and the
    customer's next try gets a new charge (before, the declined charge was found again by
    its key and the link could never be paid)."""

    class _DeclineOnRetry(SandboxGateway):
        calls = 0

        def charge(self, request, *_old_signature):  # ChargeRequest (or today's jobs' call)
            self.calls += 1
            if self.calls == 1:
                raise GatewayTimeout("no answer")
            return ChargeResult(False, "ch_x", "card_declined", "The card was declined.")

    gw = _DeclineOnRetry()
    request, url = send(session, w)
    pay(session, gw, url)
    [declined] = charges.retry_pending(session, gw, NOW + rules.CHARGE_RETRY_AFTER)
    assert declined.status == ChargeStatus.FAILED
    session.expire_all()
    assert session.get(BillingRequest, request.id).failed_attempts == 1
    assert session.get(PaymentMethod, declined.method_id).removed_at is not None
    paid = pay(session, SandboxGateway(), url)
    assert (paid.charge.id != declined.id, paid.switched) == (True, True)


def test_the_opening_balance_settles_through_the_links_service(session, w):
    assert charges.ON_SUCCESS[ChargePurpose.OPENING_BALANCE] is service._paid
    assert charges.ON_FAILURE[ChargePurpose.OPENING_BALANCE] is service._declined


# --------------------------------------------------------------- Add to Agency Billing

def test_add_to_agency_billing_moves_the_balance_with_a_pair_of_entries(session, gw, w):
    f.card(session, w.harbor)
    f.card(session, w.harbor, "5555555555554444", role="backup")
    f.recharge_settings(session, w.harbor, "10", "50")
    f.funds(session, w.harbor, 4321)
    session.commit()
    moved = service.add_to_agency_billing(session, w.agency, w.harbor, w.ada)
    session.commit()
    assert moved == 4321
    session.expire_all()
    harbor = session.get(Account, w.harbor.id)
    assert (harbor.billing_mode, harbor.balance_cents) == (BillingMode.AGENCY, 0)
    assert session.get(Account, w.agency.id).balance_cents == 4321
    assert session.execute(select(PaymentMethod.role, PaymentMethod.removed_at).where(
        PaymentMethod.account_id == w.harbor.id)).all() == [(MethodRole.OTHER, NOW)] * 2
    settings = session.get(BillingSettings, w.harbor.id)
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents,
            settings.direct_charge) == (None, None, False)
    out = session.scalar(select(LedgerEntry).where(
        LedgerEntry.kind == LedgerKind.TRANSFER_OUT))
    into = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.TRANSFER_IN))
    assert (out.account_id, out.amount_cents, out.balance_after_cents, out.actor_id) == (
        w.harbor.id, -4321, 0, w.ada.id)
    assert (into.account_id, into.amount_cents, into.balance_after_cents, into.for_account_id,
            into.actor_id) == (w.agency.id, 4321, 4321, w.harbor.id, w.ada.id)
    assert (out.cause_ref, into.cause_ref) == (f"entry:{into.id}", f"entry:{out.id}")
    assert ledger.check(session) == []
    with pytest.raises(NotAllowed, match="already on agency billing"):
        service.add_to_agency_billing(session, w.agency, w.harbor, w.ada)


def test_add_to_agency_billing_with_no_balance_moves_nothing(session, gw, w):
    assert service.add_to_agency_billing(session, w.agency, w.harbor, w.ada) == 0
    session.commit()
    assert count(session, LedgerEntry) == 0
    assert session.get(Account, w.harbor.id).billing_mode == BillingMode.AGENCY


def test_add_to_agency_billing_revokes_a_pending_request(session, gw, w):
    request, url = send(session, w)
    session.execute(update(Account).where(Account.id == w.bayside.id)
                    .values(billing_mode=BillingMode.CUSTOMER))  # switched another way
    session.commit()
    service.add_to_agency_billing(session, w.agency, session.get(Account, w.bayside.id),
                                  w.avery)
    session.commit()
    session.expire_all()
    assert session.get(BillingRequest, request.id).status == RequestStatus.CANCELED
    with pytest.raises(service.LinkRevoked):  # agency billing again, but the link stays dead
        service.open_link(session, SETTINGS, token(url))



def test_add_to_agency_billing_revokes_its_pending_billing_invitations_only(session, gw, w):
    """Back on agency billing, a sub-account has no billing to manage: an invitation to be
    its billing user is revoked with the switch (the link then says so); one to be its
    admin stays."""
    session.execute(update(Account).where(Account.id == w.bayside.id)
                    .values(billing_mode=BillingMode.CUSTOMER))
    billing, _ = people.invite(session, SETTINGS, w.bayside, w.avery, Role.OWNER,
                               "payer@bayside.example", "billing")
    admin, _ = people.invite(session, SETTINGS, w.bayside, w.avery, Role.OWNER,
                             "office@bayside.example", "admin")
    session.commit()
    service.add_to_agency_billing(session, w.agency, session.get(Account, w.bayside.id),
                                  w.avery)
    session.commit()
    session.expire_all()
    assert (session.get(Invitation, billing.id).status,
            session.get(Invitation, admin.id).status) == (InvitationStatus.REVOKED,
                                                          InvitationStatus.PENDING)

def test_add_to_agency_billing_is_refused_for_a_canceled_or_foreign_sub_account(session, gw,
                                                                              w):
    with pytest.raises(NotAllowed):
        service.add_to_agency_billing(session, w.rival, w.harbor, w.avery)
    session.rollback()
    lifecycle.close(session, w.harbor, w.avery)
    session.commit()
    with pytest.raises(NotAllowed, match="Harbor Law is canceled"):
        service.add_to_agency_billing(session, w.agency, w.harbor, w.avery)


# --------------------------------------------------------------- rate limit

def test_the_rate_limit_counts_each_address_in_its_window(session, gw):
    window = timedelta(minutes=10)
    assert [service.throttled(session, "192.0.2.1", 2, window) for _ in range(4)] == [
        False, False, True, True]
    assert service.throttled(session, "192.0.2.2", 2, window) is False
    later = NOW + window + timedelta(seconds=1)
    assert service.throttled(session, "192.0.2.1", 2, window, now=later) is False
    session.commit()
    assert count(session, LinkHit) == 6


# --- 3-D Secure on the link's page (issue 16) ----------------------------------------------------

def test_a_card_that_asks_for_authentication_pays_once_the_challenge_is_completed(session, w):
    gw = SandboxGateway()
    request, url = send(session, w)
    waiting = pay(session, gw, url, number=AUTHENTICATE_ONCE)
    assert waiting.action.startswith(waiting.charge.gateway_reference + "_secret_")
    assert (waiting.charge.status, waiting.switched) == (ChargeStatus.PENDING, False)
    # waiting: the card is on record beside the pending charge, nothing else moved
    assert state(session, w.bayside) == (BillingMode.AGENCY, 0,
                                         [("3155", MethodRole.OTHER)], [])
    # nothing waits to be confirmed for another attempt: confirming before the challenge
    # settles nothing
    early = service.confirm(session, gw, SETTINGS, token(url))
    assert (early.charge.status, early.action != "") == (ChargeStatus.PENDING, True)

    core.authenticate(waiting.charge.gateway_reference, waiting.action, True)
    done = service.confirm(session, gw, SETTINGS, token(url))
    assert (done.charge.id, done.charge.status, done.switched) == (
        waiting.charge.id, ChargeStatus.SUCCEEDED, True)
    assert state(session, w.bayside) == (BillingMode.CUSTOMER, 2500,
                                         [("3155", MethodRole.PRIMARY)],
                                         [(LedgerKind.PAYMENT, 2500)])
    assert count(session, SandboxCharge) == 1
    assert ledger.check(session) == []


def test_a_failed_challenge_is_a_decline_and_the_link_works_again(session, w):
    gw = SandboxGateway()
    request, url = send(session, w)
    waiting = pay(session, gw, url, number=AUTHENTICATE_ONCE)
    core.authenticate(waiting.charge.gateway_reference, waiting.action, False)
    failed = service.confirm(session, gw, SETTINGS, token(url))
    assert (failed.charge.status, failed.switched, failed.charge.failure_code) == (
        ChargeStatus.FAILED, False, "authentication_failed")
    session.refresh(request)
    assert (request.status, request.failed_attempts) == (RequestStatus.PENDING, 1)
    assert state(session, w.bayside) == AGENCY_BILLED
    assert service.confirm(session, gw, SETTINGS, token(url)) is None  # nothing waits now
    assert pay(session, gw, url).switched is True


def test_the_challenge_completed_after_the_page_was_left_is_settled_by_confirm_once(
        session, w):
    """The payer completes the challenge, but the page's confirm comes twice (a reload): the
    second finds the link used, and one charge, one entry."""
    gw = SandboxGateway()
    _request, url = send(session, w)
    waiting = pay(session, gw, url, number=AUTHENTICATE_ONCE)
    core.authenticate(waiting.charge.gateway_reference, waiting.action, True)
    assert service.confirm(session, gw, SETTINGS, token(url)).switched is True
    with pytest.raises(service.LinkUsed):
        service.confirm(session, gw, SETTINGS, token(url))
    assert count(session, Charge) == count(session, SandboxCharge) == 1
    assert ledger.check(session) == []


def test_a_card_brand_the_portal_does_not_take_is_refused_before_anything_is_kept(session, w):
    diners = core.create_payment_method(EnteredMethod(
        "card", "approved", "Diners Club", "0004", 12, 2030, "Pat Doe"))["id"]
    _request, url = send(session, w)
    with pytest.raises(ValidationFailed) as e:
        pay(session, SandboxGateway(), url, payment_method=diners)
    assert e.value.errors == {"payment_method": "Diners Club cards are not accepted. We accept "
                                                "Visa, Mastercard, American Express and "
                                                "Discover."}
    session.rollback()
    assert count(session, Charge) == count(session, PaymentMethod) == 0
