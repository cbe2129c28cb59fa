"""POST /webhooks/stripe against events the local fake Stripe generated and signed with the
SDK's scheme (tests/fake_stripe.py): the signature is verified (wrong, old, missing: 400 and
nothing changes), each event is applied once (replayed, or two deliveries at once: one
effect), out-of-order events can't undo a success, refunds are cumulative, disputes debit
and a won dispute credits back, and an error answers 500 with nothing committed."""

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from portal.models import (
    Account,
    AccountStatus,
    Charge,
    ChargePurpose,
    ChargeStatus,
    Dispute,
    LedgerEntry,
    LedgerKind,
    ProcessorEventRecord,
)
from portal.services import charges, processor_events
from portal.services.gateway import ChargeRequest
from portal.services.stripe_gateway import API_VERSION
from tests import factories
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripeServer, sign


@pytest.fixture
def fake(app):
    server = FakeStripeServer(api_version=API_VERSION)
    app.config.update(STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_PUBLISHABLE_KEY="pk_test_fake",
                      STRIPE_WEBHOOK_SECRET=f"whsec_old,{WEBHOOK_SECRET}",
                      STRIPE_API_BASE=server.fake.url, STRIPE_TIMEOUT_SECONDS=0.5,
                      STRIPE_MAX_NETWORK_RETRIES=0)
    yield server.fake
    server.stop()


@pytest.fixture
def gw(app, fake):
    from portal.blueprints.webhooks.routes import stripe_gateway

    with app.test_request_context():
        return stripe_gateway()


class World:
    """A standalone account with a $10 balance, and a pending Make a Payment charge of $25
    paid at Stripe (the portal never got the answer: the webhook brings it)."""

    def __init__(self, session, gw, fake, pm="pm_card_visa", cents=2500):
        self.session, self.gw, self.fake = session, gw, fake
        self.account = factories.standalone(session)
        factories.funds(session, self.account, 1000)
        self.method = factories.card(session, self.account)
        self.customer = gw.create_customer(str(self.account.id), self.account.name,
                                           f"customer:{self.account.id}")
        setup = gw.save_method(self.customer, pm, "card", f"setup:{self.account.id}")
        self.pm = setup.method.reference
        self.charge = charges.start(session, self.account, self.method, ChargePurpose.PAYMENT,
                                    cents, f"payment:{self.account.id}:x", "Payment")
        session.commit()
        self.result = gw.charge(ChargeRequest(
            method=self.pm, customer=self.customer, kind="payment", amount_cents=cents,
            idempotency_key=self.charge.idempotency_key, description="Payment"))
        self.pi = self.result.reference

    def balance(self) -> int:
        self.session.expire_all()
        return self.session.get(Account, self.account.id).balance_cents

    def entries(self, kind=None) -> list[LedgerEntry]:
        self.session.expire_all()
        query = select(LedgerEntry).where(LedgerEntry.account_id == self.account.id)
        if kind is not None:
            query = query.where(LedgerEntry.kind == kind)
        return list(self.session.scalars(query.order_by(LedgerEntry.id)))

    def status(self) -> ChargeStatus:
        self.session.expire_all()
        return self.session.get(Charge, self.charge.id).status


@pytest.fixture
def world(session, gw, fake):
    return World(session, gw, fake)


def deliver(client, event, header=None, body=None):
    payload = body if body is not None else json.dumps(event)
    headers = {"Content-Type": "application/json"}
    signature = sign(payload) if header is None else header
    if signature:
        headers["Stripe-Signature"] = signature
    return client.post("/webhooks/stripe", data=payload, headers=headers)


def event_rows(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(ProcessorEventRecord))


def copy_of(event, type_=None, **changes):
    """The same object in another event (a new id): what Stripe sends for a later change."""
    other = json.loads(json.dumps(event))
    other["id"] = event["id"] + "b"
    if type_:
        other["type"] = type_
    other["data"]["object"].update(changes)
    return other


# ------------------------------------------------------------------ signatures

def test_a_signed_payment_intent_succeeded_settles_the_pending_charge_once(client, session,
                                                                           world, fake):
    assert world.status() == ChargeStatus.PENDING
    event = fake.event("payment_intent.succeeded")
    response = deliver(client, event)  # no session, no CSRF token: the signature is the key
    assert response.status_code == 200, response.data
    assert response.json == {"received": True, "outcome": "applied"}
    assert world.status() == ChargeStatus.SUCCEEDED
    paid = world.entries(LedgerKind.PAYMENT)[1:]  # after the opening $10
    assert [(e.amount_cents, e.idempotency_key) for e in paid] == [
        (2500, f"charge:{world.charge.id}")]  # the key the jobs' settle credits under
    assert world.balance() == 3500
    row = session.get(ProcessorEventRecord, event["id"])
    assert (row.gateway, row.type, row.object_ref, row.outcome) == (
        "stripe", "payment_intent.succeeded", world.pi, "applied")


@pytest.mark.parametrize("bad", ["wrong secret", "301 s old", "no v1", "body changed",
                                 "no header"])
def test_a_bad_signature_is_400_and_changes_nothing(client, session, world, fake, bad):
    event = fake.event("payment_intent.succeeded")
    payload = json.dumps(event)
    header, body = {
        "wrong secret": (sign(payload, "whsec_other"), payload),
        "301 s old": (sign(payload, t=int(time.time()) - 301), payload),
        "no v1": (sign(payload).split(",v1=")[0], payload),
        "body changed": (sign(payload), payload.replace('"amount": 2500', '"amount": 9')),
        "no header": ("", payload),
    }[bad]
    response = deliver(client, event, header=header, body=body)
    assert response.status_code == 400
    assert response.is_json and "signature" in response.json["error"]
    assert world.status() == ChargeStatus.PENDING
    assert world.balance() == 1000 and event_rows(session) == 0


def test_an_old_secret_still_verifies_during_a_rotation(client, world, fake):
    event = fake.event("payment_intent.succeeded")
    payload = json.dumps(event)
    assert deliver(client, event, header=sign(payload, "whsec_old")).status_code == 200
    assert world.status() == ChargeStatus.SUCCEEDED


def test_the_endpoint_takes_posts_only_and_answers_404_without_stripe_settings(app, client):
    assert client.get("/webhooks/stripe").status_code == 405
    app.config["STRIPE_WEBHOOK_SECRET"] = ""
    response = client.post("/webhooks/stripe", data="{}", headers={"Stripe-Signature": "t=1"})
    assert response.status_code == 404 and response.is_json


# ------------------------------------------------------------------ applied once

def test_a_replayed_event_is_answered_200_and_does_nothing(client, session, world, fake):
    event = fake.event("payment_intent.succeeded")
    assert deliver(client, event).json["outcome"] == "applied"
    again = deliver(client, event)
    assert again.status_code == 200 and again.json["outcome"] == "duplicate"
    assert len(world.entries(LedgerKind.PAYMENT)) == 2 and world.balance() == 3500
    assert event_rows(session) == 1


def test_two_deliveries_at_once_make_one_effect(app, session, world, fake):
    event = fake.event("payment_intent.succeeded")
    barrier = threading.Barrier(2)
    answers = []

    def post():
        client = app.test_client()
        barrier.wait()
        answers.append(deliver(client, event))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(a.status_code for a in answers) == [200, 200]
    assert sorted(a.json["outcome"] for a in answers) == ["applied", "duplicate"]
    assert len(world.entries(LedgerKind.PAYMENT)) == 2 and world.balance() == 3500
    assert event_rows(session) == 1


def test_a_failed_event_after_success_leaves_it_succeeded(client, world, fake):
    succeeded = fake.event("payment_intent.succeeded")
    deliver(client, succeeded)
    late = copy_of(succeeded, "payment_intent.payment_failed", status="requires_payment_method")
    answer = deliver(client, late)
    assert answer.status_code == 200 and answer.json["outcome"] == "already_settled"
    assert world.status() == ChargeStatus.SUCCEEDED and world.balance() == 3500


def test_events_out_of_order_settle_by_what_stripe_says_now(client, world, fake):
    """A stale payment_failed for a payment that then succeeded arrives first: the handler
    asks Stripe, which says succeeded."""
    stale = copy_of(fake.event("payment_intent.succeeded"), "payment_intent.payment_failed",
                    status="requires_payment_method")
    assert deliver(client, stale).json["outcome"] == "applied"
    assert world.status() == ChargeStatus.SUCCEEDED and world.balance() == 3500


def test_a_declined_payment_fails_the_charge_with_the_products_reason(client, session, gw,
                                                                      fake):
    world = World(session, gw, fake, pm="pm_card_chargeDeclinedInsufficientFunds")
    assert deliver(client, fake.event("payment_intent.payment_failed")).json["outcome"] == \
        "applied"
    charge = session.get(Charge, world.charge.id)
    assert (charge.status, charge.failure_code, charge.gateway_reference) == (
        ChargeStatus.FAILED, "insufficient_funds", world.pi)
    assert world.balance() == 1000


def test_a_payment_intent_the_portal_never_made_is_200_no_match(client, session, gw, fake):
    customer = gw.create_customer("x", "Elsewhere", "customer:x")
    gw.charge(ChargeRequest(method="pm_card_visa", customer=customer, kind="payment",
                            amount_cents=700, idempotency_key="not-ours", description="x"))
    answer = deliver(client, fake.event("payment_intent.succeeded"))
    assert answer.status_code == 200 and answer.json["outcome"] == "no_match"
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_an_event_nobody_handles_is_kept_as_ignored(client, session, world, fake):
    event = fake.event("charge.succeeded")
    assert deliver(client, event).json["outcome"] == "ignored"
    assert session.get(ProcessorEventRecord, event["id"]).outcome == "ignored"


# ------------------------------------------------------------------ refunds

def test_refunds_at_the_processor_are_cumulative_and_debited_once(client, world, fake):
    deliver(client, fake.event("payment_intent.succeeded"))
    fake._create_refund({"payment_intent": world.pi, "amount": "1000"})  # the Dashboard
    first = fake.event("charge.refunded")
    assert deliver(client, first).json["outcome"] == "applied"
    fake._create_refund({"payment_intent": world.pi, "amount": "500"})
    second = fake.event("charge.refunded")
    assert second["data"]["object"]["amount_refunded"] == 1500
    assert deliver(client, second).json["outcome"] == "applied"
    # the first again under another id (out of order): nothing more to debit
    assert deliver(client, copy_of(first)).json["outcome"] == "already_recorded"
    assert [(e.amount_cents, e.idempotency_key) for e in world.entries(LedgerKind.REFUND)] == [
        (-1000, f"processor-refund:{world.charge.id}:1000"),
        (-500, f"processor-refund:{world.charge.id}:1500")]
    assert world.balance() == 3500 - 1500


def test_a_refund_of_a_charge_not_yet_settled_waits(client, world, fake):
    fake._create_refund({"payment_intent": world.pi, "amount": "1000"})
    assert deliver(client, fake.event("charge.refunded")).json["outcome"] == "not_settled"
    assert world.entries(LedgerKind.REFUND) == []


# ------------------------------------------------------------------ disputes

def test_a_dispute_debits_and_pauses_billing_and_a_won_dispute_credits_back(client, session,
                                                                            world, fake):
    deliver(client, fake.event("payment_intent.succeeded"))
    factories.funds(session, world.account, -3000, key="spent")  # $5 left
    session.commit()
    dispute = fake._dispute(world.pi, {"reason": "fraudulent"})
    assert deliver(client, fake.event("charge.dispute.created")).json["outcome"] == "applied"
    row = session.scalar(select(Dispute).where(Dispute.reference == dispute["id"]))
    assert (row.charge_id, row.amount_cents, row.reason, row.status) == (
        world.charge.id, 2500, "fraudulent", "needs_response")
    assert [(e.amount_cents, e.idempotency_key) for e in world.entries(LedgerKind.DISPUTE)] \
        == [(-2500, f"dispute:{dispute['id']}")]
    assert world.balance() == -2000
    assert session.get(Account, world.account.id).status == AccountStatus.BILLING_PAUSED
    dispute["status"] = "won"
    fake._emit("charge.dispute.closed", dispute)
    assert deliver(client, fake.event("charge.dispute.closed")).json["outcome"] == "applied"
    assert [e.amount_cents for e in world.entries(LedgerKind.DISPUTE_REVERSAL)] == [2500]
    assert world.balance() == 500
    session.expire_all()
    row = session.scalar(select(Dispute).where(Dispute.reference == dispute["id"]))
    assert row.status == "won" and row.closed_at is not None


def test_a_lost_dispute_closed_before_its_created_event_debits_once(client, session, world,
                                                                    fake):
    deliver(client, fake.event("payment_intent.succeeded"))
    dispute = fake._dispute(world.pi, {})
    created = fake.event("charge.dispute.created")
    dispute["status"] = "lost"
    fake._emit("charge.dispute.closed", dispute)
    assert deliver(client, fake.event("charge.dispute.closed")).json["outcome"] == "applied"
    assert deliver(client, created).json["outcome"] == "applied"  # found: nothing more
    assert [e.amount_cents for e in world.entries(LedgerKind.DISPUTE)] == [-2500]
    assert world.entries(LedgerKind.DISPUTE_REVERSAL) == []
    assert world.balance() == 1000
    session.expire_all()
    assert session.scalar(select(Dispute)).status == "lost"


# ------------------------------------------------------------------ errors

def test_an_error_while_applying_is_500_and_commits_nothing(client, session, world, fake,
                                                            monkeypatch):
    deliver(client, fake.event("payment_intent.succeeded"))
    fake._dispute(world.pi, {})
    event = fake.event("charge.dispute.created")

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(processor_events.ledger, "post", broken)
    answer = deliver(client, event)
    assert answer.status_code == 500 and answer.is_json
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Dispute)) == 0
    assert session.get(ProcessorEventRecord, event["id"]) is None
    monkeypatch.undo()
    assert deliver(client, event).json["outcome"] == "applied"  # Stripe's next delivery
    assert world.balance() == 3500 - 2500


def test_a_processor_timeout_while_re_reading_is_500_so_stripe_retries(client, session, world,
                                                                       fake):
    fake.fail_next(f"/v1/payment_intents/{world.pi}", "timeout")
    event = fake.event("payment_intent.succeeded")
    assert deliver(client, event).status_code == 500
    assert world.status() == ChargeStatus.PENDING and event_rows(session) == 0
    assert deliver(client, event).json["outcome"] == "applied"


def test_the_portals_own_refund_is_not_debited_twice_and_a_failed_one_gives_it_back(
        client, session, world, fake):
    from portal.models import Refund, RefundStatus
    from portal.services import refunds

    deliver(client, fake.event("payment_intent.succeeded"))
    session.expire_all()
    refund = refunds.start(session, session.get(Charge, world.charge.id), "Came too late")
    session.commit()
    assert world.balance() == 1000  # debited when recorded, as today
    answer = world.gw.refund(world.pi, 2500, refund.idempotency_key)
    assert answer.succeeded
    assert deliver(client, fake.event("charge.refunded")).json["outcome"] == "already_recorded"
    assert world.balance() == 1000
    # the bank sends the refund back days later
    fake.objects[answer.reference]["status"] = "failed"
    fake._emit("refund.failed", fake.objects[answer.reference])
    assert deliver(client, fake.event("refund.failed")).json["outcome"] == "applied"
    session.expire_all()
    refund = session.get(Refund, refund.id)
    assert (refund.status, refund.gateway_reference) == (RefundStatus.FAILED, answer.reference)
    assert world.balance() == 3500  # the adjustment gave the balance back


def test_events_older_than_90_days_are_purged_and_a_late_duplicate_still_changes_nothing(
        client, session, world, fake):
    from datetime import timedelta

    from portal import clock

    event = fake.event("payment_intent.succeeded")
    deliver(client, event)
    later = clock.now() + timedelta(days=91)
    assert processor_events.purge(session, later) == 1
    session.commit()
    assert event_rows(session) == 0
    assert deliver(client, event).json["outcome"] == "already_settled"
    assert world.balance() == 3500


def test_a_settled_payment_goes_on_to_its_next_step_after_the_commit(client, world, fake,
                                                                    monkeypatch):
    """The charge an applied payment event settled is handed to charges.after_event (a
    declined recharge goes on to the Backup there, tests/unit/test_charges.py), once: a
    replay is a duplicate and hands nothing; a failing next step still answers 200 (the
    event is applied; a 500 would have Stripe send it again)."""
    handed = []

    def after_event(session, gateway, charge, now=None):
        handed.append((charge.id, charge.status))
        raise RuntimeError("the Backup's processor is down")

    monkeypatch.setattr(charges, "after_event", after_event)
    event = fake.event("payment_intent.succeeded")
    assert deliver(client, event).json == {"received": True, "outcome": "applied"}
    assert deliver(client, event).json["outcome"] == "duplicate"
    assert handed == [(world.charge.id, ChargeStatus.SUCCEEDED)]
    assert world.status() == ChargeStatus.SUCCEEDED
