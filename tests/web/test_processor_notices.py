# ruff: noqa: F811  (the webhook tests' fixtures, imported: pytest passes them by name)
"""Issue 16: the billing recipients hear of what happens at the processor without the portal
asking: a refund made in the processor's dashboard (charge.refunded), a dispute opened and
closed (charge.dispute.*). Each notice once per event, whatever the deliveries."""

import pytest
from sqlalchemy import select

from portal.models import OutboxMessage, Refund, RefundSource, RefundStatus, Role, User
from tests import factories
from tests.web.conftest import sign_in_as
from tests.web.pages import body
from tests.web.test_webhooks import (  # noqa: F401  (fixtures)
    copy_of,
    deliver,
    fake,
    gw,
    world,
)


@pytest.fixture
def told(session, world):
    owner = factories.user(session, email="owner@acme.example")
    factories.member(session, owner, world.account, Role.OWNER)
    session.commit()

    def outbox(kind: str) -> list[tuple[str, str]]:
        session.expire_all()
        return [(m.to_address, m.subject) for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id))]
    return outbox


def test_a_refund_made_at_the_processor_is_told_once_per_amount(client, world, fake, told):
    deliver(client, fake.event("payment_intent.succeeded"))
    fake._create_refund({"payment_intent": world.pi, "amount": "1000"})
    first = fake.event("charge.refunded")
    deliver(client, first)
    deliver(client, copy_of(first))  # the same news again: nothing more
    receipt = world.charge.receipt_number
    name = world.account.name
    assert told("processor_refund") == [
        ("owner@acme.example",
         f"Refunded $10.00 ({receipt}) for {name} at the payment processor")]


def test_a_dispute_is_told_when_opened_and_when_closed(client, session, world, fake, told):
    deliver(client, fake.event("payment_intent.succeeded"))
    dispute = fake._dispute(world.pi, {"reason": "fraudulent"})
    created = fake.event("charge.dispute.created")
    deliver(client, created)
    deliver(client, copy_of(created))
    dispute["status"] = "won"
    fake._emit("charge.dispute.closed", dispute)
    deliver(client, fake.event("charge.dispute.closed"))
    receipt, name = world.charge.receipt_number, world.account.name
    assert told("dispute") == [
        ("owner@acme.example", f"Action needed: a payment of $25.00 for {name} is disputed "
                               f"({receipt})"),
        ("owner@acme.example", f"The dispute of {receipt} for {name} was won: the payment "
                               "is back")]
    [opened] = session.scalars(select(OutboxMessage).where(
        OutboxMessage.subject.startswith("Action needed: a payment"))).all()
    assert "(reason: fraudulent)" in opened.text_body


def test_payment_history_and_the_receipt_show_a_refund_made_at_the_processor(
        client, session, world, fake, told):
    """Refunded in the processor's dashboard: Payment History's row and the receipt say so
    (partly: the amount), the amount growing with each refund there; nothing for the jobs
    to ask the processor (the refund is settled)."""
    deliver(client, fake.event("payment_intent.succeeded"))
    for cents in ("1000", "500"):
        fake._create_refund({"payment_intent": world.pi, "amount": cents})
        deliver(client, fake.event("charge.refunded"))
    session.expire_all()
    refund = session.scalars(select(Refund).where(Refund.charge_id == world.charge.id)).one()
    assert (refund.amount_cents, refund.source, refund.status) == (
        1500, RefundSource.PROCESSOR, RefundStatus.SUCCEEDED)
    owner = session.scalars(select(User).where(User.email == "owner@acme.example")).one()
    sign_in_as(client, owner)
    history = body(client.get(f"/accounts/{world.account.id}/billing/payments"))
    assert "Refunded $15.00" in history
    assert "it was refunded at the payment processor" in history
    receipt = body(client.get(f"/accounts/{world.account.id}/billing/payments/"
                              f"{world.charge.id}"))
    assert "Refunded:</strong>" in receipt and "$15.00" in receipt
