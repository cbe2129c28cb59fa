"""The Stripe adapter against Stripe's own test mode, with real test keys (issue 16). Skipped
unless STRIPE_TEST_SECRET_KEY is set, so the suite never needs the network:

    STRIPE_TEST_SECRET_KEY=sk_test_… .venv/bin/python -m pytest tests/unit/test_stripe_live.py

(STRIPE_TEST_API_BASE points it elsewhere, e.g. at tests/fake_stripe.py's server.) Only what
needs no person: a customer, a card saved off-session (Stripe's test PaymentMethod
pm_card_visa, cloned on attach), an off-session charge keyed like the ledger (the same key
again is the same PaymentIntent), its status, a partial refund and detaching the card. The
3-D Secure, decline and webhook cases are in test_stripe_gateway.py / test_webhooks.py
against the local fake, whose test ids are Stripe's."""

import os
import secrets

import pytest

from portal.services.gateway import ChargeRequest
from portal.services.stripe_gateway import StripeGateway

KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
pytestmark = pytest.mark.skipif(not KEY.startswith("sk_test_"),
                                reason="set STRIPE_TEST_SECRET_KEY=sk_test_… to run against "
                                       "Stripe's test mode")


@pytest.fixture(scope="module")
def gw():
    return StripeGateway(KEY, "pk_test_unused", ["whsec_unused"],
                         api_base=os.environ.get("STRIPE_TEST_API_BASE",
                                                 "https://api.stripe.com"),
                         max_network_retries=0)


def test_a_saved_card_is_charged_off_session_once_refunded_and_detached(gw):
    run = secrets.token_hex(6)  # keys of their own on every run (Stripe keeps them 24 h)
    customer = gw.create_customer(f"live-{run}", "Live test", f"customer:live:{run}")
    assert customer.startswith("cus_")
    saved = gw.save_method(customer, "pm_card_visa", "card", f"setup:live:{run}")
    assert saved.outcome == "succeeded", saved
    card = saved.method
    assert (card.brand, card.last4, card.kind) == ("Visa", "4242", "card")
    assert gw.describe_method(card.reference).last4 == "4242"

    request = ChargeRequest(method=card.reference, customer=customer, kind="recharge",
                            amount_cents=2500, idempotency_key=f"charge:live:{run}",
                            description="Auto recharge (live test)",
                            metadata=(("charge_key", f"charge:live:{run}"),))
    paid = gw.charge(request)
    assert paid.outcome == "succeeded", paid
    assert gw.charge(request).reference == paid.reference  # same key: same PaymentIntent
    assert gw.payment_status(paid.reference).outcome == "succeeded"

    refund = gw.refund(paid.reference, 1000, f"refund:live:{run}")
    assert refund.outcome in ("succeeded", "processing"), refund
    assert gw.refund_status(refund.reference).outcome in ("succeeded", "processing")
    gw.detach(card.reference)
