"""An app with PAYMENT_GATEWAY=stripe against the local fake Stripe (tests/fake_stripe.py):
it refuses to start without its settings; with them, the app's gateway is Stripe, the
sandbox's processor routes are not there, and a payment Stripe made while the portal heard
nothing (a timeout) is settled by the webhook onto the same ledger entry the jobs' retry
writes. (The pages and the jobs move onto the Processor interface in the next round: this
covers what is wired now.)"""

import json

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, Charge, ChargePurpose, ChargeStatus, LedgerEntry
from portal.services import charges
from portal.services.gateway import ChargeRequest, GatewayTimeout
from portal.services.stripe_gateway import API_VERSION
from tests import factories
from tests.conftest import make_app
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripeServer, sign


@pytest.fixture
def fake():
    server = FakeStripeServer(api_version=API_VERSION)
    yield server.fake
    server.stop()


def stripe_settings(fake):
    return {"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": "pk_test_fake", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake.url, "STRIPE_TIMEOUT_SECONDS": 0.5,
            "STRIPE_MAX_NETWORK_RETRIES": 0}


def test_stripe_without_its_settings_refuses_to_start(app, database_url):
    with pytest.raises(RuntimeError, match="STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY, "
                                           "STRIPE_WEBHOOK_SECRET"):
        make_app(database_url, PAYMENT_GATEWAY="stripe")


def test_a_payment_stripe_made_during_a_timeout_is_settled_by_the_webhook(app, database_url,
                                                                          fake):
    stripe_app = make_app(database_url, **stripe_settings(fake))
    gateway = stripe_app.extensions["payment_gateway"]
    assert gateway.name == "stripe"
    assert gateway.browser().script_url == "https://js.stripe.com/v3/"
    client = stripe_app.test_client()
    assert client.get("/sandbox/v1/sandbox.js").status_code == 404  # not the sandbox here
    with stripe_app.app_context():
        session = db.session
        account = factories.standalone(session)
        method = factories.card(session, account)
        customer = gateway.create_customer(str(account.id), account.name, "cus-key")
        setup = gateway.save_method(customer, "pm_card_visa", "card", "setup-key")
        charge = charges.start(session, account, method, ChargePurpose.RECHARGE, 5000,
                               f"recharge:{account.id}:e2e", "Auto recharge")
        session.commit()
        charge_id, account_id = charge.id, account.id
        fake.fail_next("/v1/payment_intents", "timeout")
        with pytest.raises(GatewayTimeout):  # charged at Stripe; the answer came too late
            gateway.charge(ChargeRequest(
                method=setup.method.reference, customer=customer, kind="recharge",
                amount_cents=5000, idempotency_key=charge.idempotency_key,
                description="Auto recharge"))
        assert session.get(Charge, charge_id).status == ChargeStatus.PENDING
        payload = json.dumps(fake.event("payment_intent.succeeded"))
        answer = client.post("/webhooks/stripe", data=payload,
                             headers={"Stripe-Signature": sign(payload),
                                      "Content-Type": "application/json"})
        assert answer.status_code == 200 and answer.json["outcome"] == "applied"
        session.expire_all()
        settled = session.get(Charge, charge_id)
        assert settled.status == ChargeStatus.SUCCEEDED
        assert settled.gateway_reference == fake.of_type("pi_")[0]["id"]
        entries = session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents,
                                         LedgerEntry.idempotency_key)
                                  .where(LedgerEntry.account_id == account_id)).all()
        # what charges.settle writes when the jobs' retry learns of the success
        assert [(str(k), c, key) for k, c, key in entries] == [
            ("recharge", 5000, f"charge:{charge_id}")]
        assert session.get(Account, account_id).balance_cents == 5000
        assert len(fake.of_type("pi_")) == 1
        db.session.remove()
    with stripe_app.app_context():
        db.engine.dispose()
