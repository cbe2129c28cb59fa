"""The Stripe adapter against the local fake Stripe (tests/fake_stripe.py): the official SDK
makes real HTTP requests to a server on 127.0.0.1 that answers in Stripe's wire format.

Customers, saved cards (ok, refused at entry, 3-D Secure, ACH micro-deposits), charges
(ok, each decline, off-session authentication_required, on-session requires_action), a
timeout retried with the same key (one PaymentIntent), a replayed 500 reconciled by listing,
a first try over 23 hours old reconciled and never re-sent, a key reused with other
parameters, refunds (full, partial, too large, pending), detach, the Idempotency-Key header
being the ledger's key and the API version pinned.
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from portal import clock
from portal.services.gateway import BadSignature, ChargeRequest, GatewayTimeout
from portal.services.stripe_gateway import API_VERSION, StripeGateway, missing_settings
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripeServer, sign


@pytest.fixture
def fake():
    server = FakeStripeServer(api_version=API_VERSION)
    yield server.fake
    server.stop()


@pytest.fixture
def gw(fake):
    gateway = StripeGateway(SECRET_KEY, "pk_test_fake", [WEBHOOK_SECRET], api_base=fake.url,
                            timeout_seconds=0.5, max_network_retries=0)
    gateway.fake = fake  # for `saved`: the cardholder completes a setup challenge
    return gateway


@pytest.fixture(autouse=True)
def _clock():
    yield
    clock.freeze(None)


def customer(gw, ref="acct-1"):
    return gw.create_customer(ref, "Acme Dental", f"customer:{ref}")


def saved(gw, cus, pm="pm_card_visa", key="setup:1"):
    result = gw.save_method(cus, pm, "card", key)
    if result.outcome == "requires_action":
        gw.fake._authenticate(result.reference, "complete")
        result = gw.setup_status(result.reference)
    assert result.outcome == "succeeded", result
    return result.method.reference


def req(cus, pm, key="charge:1", cents=2500, **kw):
    return ChargeRequest(method=pm, customer=cus, kind="recharge", amount_cents=cents,
                         idempotency_key=key, description="Auto recharge", **kw)


# ------------------------------------------------------------------ pinned, keys, customers

def test_the_api_version_is_pinned_to_the_package_and_sent_on_every_request(gw, fake):
    assert API_VERSION == stripe.api_version  # a package upgrade is a deliberate change
    customer(gw)
    assert [r.stripe_version for r in fake.requests] == [API_VERSION]


def test_a_customer_is_created_once_per_key(gw, fake):
    first = customer(gw)
    again = customer(gw)
    assert first == again and first.startswith("cus_")
    assert len(fake.of_type("cus_")) == 1
    assert fake.requests[0].params == {"name": "Acme Dental",
                                       "metadata": {"account_ref": "acct-1"}}


def test_a_wrong_secret_key_raises_and_is_never_a_decline(fake):
    gw = StripeGateway("sk_test_wrong", "pk", [WEBHOOK_SECRET], api_base=fake.url,
                       timeout_seconds=0.5, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        gw.charge(req("cus_x", "pm_card_visa"))


def test_production_settings_are_required():
    assert missing_settings({"STRIPE_SECRET_KEY": "sk", "STRIPE_WEBHOOK_SECRET": " "}) == [
        "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"]
    with pytest.raises(RuntimeError, match="STRIPE_SECRET_KEY"):
        StripeGateway.from_config({})
    from portal.config import gateway_path
    from portal.services import gateway

    assert gateway_path("stripe") == "portal.services.stripe_gateway:StripeGateway"
    assert gateway_path("sandbox") == gateway_path("") == "portal.services.gateway:SandboxGateway"
    with pytest.raises(RuntimeError, match="STRIPE_PUBLISHABLE_KEY, STRIPE_WEBHOOK_SECRET"):
        gateway.load(gateway_path("stripe"), {"STRIPE_SECRET_KEY": "sk_test_x"})
    made = gateway.load(gateway_path("stripe"), {
        "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_PUBLISHABLE_KEY": "pk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b"})
    assert made.name == "stripe" and made.webhook_secrets == ["whsec_a", "whsec_b"]
    assert made.browser().publishable_key == "pk_test_x"


# ------------------------------------------------------------------ saving methods

def test_saving_a_card_returns_the_clone_stripe_attached_not_the_id_sent(gw, fake):
    cus = customer(gw)
    result = gw.save_method(cus, "pm_card_visa", "card", "setup:1")
    assert result.succeeded and result.reference.startswith("seti_")
    m = result.method
    assert m.reference.startswith("pm_") and m.reference != "pm_card_visa"
    assert (m.kind, m.brand, m.last4, m.exp_month, m.exp_year) == ("card", "Visa", "4242", 12,
                                                                  2034)
    sent = fake.posts("/v1/setup_intents")[0]
    assert sent.idempotency_key == "setup:1"
    assert sent.params["usage"] == "off_session" and sent.params["confirm"] == "true"
    assert sent.params["payment_method_types"] == ["card"]


@pytest.mark.parametrize("pm, code", [
    ("pm_card_chargeDeclined", "card_declined"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc"),
])
def test_a_card_the_zero_authorization_refuses_is_not_saved(gw, pm, code):
    result = gw.save_method(customer(gw), pm, "card", "setup:x")
    assert (result.succeeded, result.outcome, result.code) == (False, "failed", code)
    assert result.reference.startswith("seti_") and result.method is None
    assert result.message


def test_a_card_asking_for_authentication_at_setup_gives_the_browser_a_challenge(gw, fake):
    cus = customer(gw)
    result = gw.save_method(cus, "pm_card_authenticationRequiredOnSetup", "card", "setup:3ds")
    assert (result.outcome, result.next_action) == ("requires_action", "authenticate")
    assert result.client_secret.startswith(result.reference + "_secret_")
    assert gw.setup_status(result.reference).outcome == "requires_action"
    fake._authenticate(result.reference, "complete")
    done = gw.setup_status(result.reference)
    assert done.succeeded and done.method.last4 == "3155"
    # saved and authenticated: off-session charges go through, on-session ones ask again
    assert gw.charge(req(cus, done.method.reference, "c:off")).succeeded
    on = gw.charge(req(cus, done.method.reference, "c:on", on_session=True))
    assert on.outcome == "requires_action" and on.client_secret


def test_a_failed_setup_challenge_is_a_failure(gw, fake):
    result = gw.save_method(customer(gw), "pm_card_authenticationRequired", "card", "s")
    fake._authenticate(result.reference, "fail")
    after = gw.setup_status(result.reference)
    assert (after.outcome, after.code) == ("failed", "setup_intent_authentication_failure")


def test_a_bank_account_is_verified_by_its_two_micro_deposits(gw, fake):
    class Mandate:
        ip, user_agent = "203.0.113.9", "Mozilla/5.0"

    cus = customer(gw)
    started = gw.save_method(cus, "pm_usBankAccount", "ach", "setup:ach", Mandate())
    assert (started.outcome, started.next_action) == ("requires_action", "verify_microdeposits")
    sent = fake.posts("/v1/setup_intents")[0].params
    assert sent["mandate_data"]["customer_acceptance"]["online"] == {
        "ip_address": "203.0.113.9", "user_agent": "Mozilla/5.0"}
    wrong = gw.verify_microdeposits(started.reference, (10, 11))
    assert (wrong.succeeded, wrong.outcome, wrong.code) == (
        False, "requires_action", "payment_method_microdeposit_verification_amounts_mismatch")
    ok = gw.verify_microdeposits(started.reference, (32, 45))
    assert ok.succeeded and (ok.method.kind, ok.method.brand, ok.method.last4) == (
        "ach", "Bank account", "6789")
    assert ok.method.bank_name == "STRIPE TEST BANK"
    # ACH charges are "processing" for days: not a success, not a failure
    paid = gw.charge(req(cus, ok.method.reference, "c:ach"))
    assert (paid.succeeded, paid.outcome) == (False, "processing")


def test_three_wrong_micro_deposit_amounts_fail_the_bank_account(gw):
    class Mandate:
        ip, user_agent = "203.0.113.9", "UA"

    started = gw.save_method(customer(gw), "pm_usBankAccount", "ach", "s", Mandate())
    results = [gw.verify_microdeposits(started.reference, (1, 2)) for _ in range(3)]
    assert [r.outcome for r in results] == ["requires_action", "requires_action", "failed"]
    assert results[-1].code == "payment_method_microdeposit_verification_attempts_exceeded"


def test_a_method_attached_to_another_customer_is_refused(gw):
    first, second = customer(gw, "a"), customer(gw, "b")
    pm = saved(gw, first)
    result = gw.save_method(second, pm, "card", "setup:2")
    assert (result.outcome, result.code) == ("failed", "payment_method_unavailable")


def test_describe_and_detach(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus, "pm_card_amex")
    described = gw.describe_method(pm)
    assert (described.brand, described.last4, described.holder) == ("American Express", "8431",
                                                                     "Jenny Rosen")
    gw.detach(pm)
    assert fake.objects[pm]["customer"] is None
    gw.detach("pm_missing")  # best effort: logged, not raised


# ------------------------------------------------------------------ charges

def test_an_off_session_charge_succeeds_with_the_ledger_key_as_idempotency_key(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    result = gw.charge(req(cus, pm, "recharge:7:abc", 2500,
                           metadata=(("account_id", "7"),)))
    assert (result.succeeded, result.outcome, result.code) == (True, "succeeded", "approved")
    assert result.reference.startswith("pi_")
    sent = fake.posts("/v1/payment_intents")[0]
    assert sent.idempotency_key == "recharge:7:abc"
    assert sent.params["metadata"] == {"account_id": "7", "charge_key": "recharge:7:abc"}
    assert sent.params["off_session"] == "true" and "use_stripe_sdk" not in sent.params
    assert (sent.params["amount"], sent.params["currency"]) == ("2500", "usd")
    assert fake.objects[result.reference]["amount_received"] == 2500


@pytest.mark.parametrize("pm, code", [
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ("pm_card_chargeDeclinedProcessingError", "processing_error"),
    ("pm_card_chargeCustomerFail", "card_declined"),
    ("pm_card_authenticationRequired", "authentication_required"),
])
def test_each_decline_of_a_saved_method_maps_to_the_products_reason(gw, pm, code):
    cus = customer(gw)
    result = gw.charge(req(cus, saved(gw, cus, pm), f"c:{pm}"))
    assert (result.succeeded, result.outcome, result.code) == (False, "failed", code)
    assert result.reference.startswith("pi_") and result.message


def test_an_on_session_payment_may_ask_for_authentication_then_completes(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus, "pm_card_visa")
    fake._behaviour[pm] = ("card", "visa", "3184", "ok", "authenticate")
    result = gw.charge(req(cus, pm, "payment:1", on_session=True))
    assert (result.outcome, result.next_action) == ("requires_action", "authenticate")
    assert result.client_secret.startswith(result.reference + "_secret_")
    assert fake.posts("/v1/payment_intents")[0].params["use_stripe_sdk"] == "true"
    fake._authenticate(result.reference, "complete")
    assert gw.payment_status(result.reference).succeeded
    # a retry of the row now carries the reference: retrieved, never created again
    again = gw.charge(req(cus, pm, "payment:1", on_session=True, reference=result.reference))
    assert again.succeeded and len(fake.posts("/v1/payment_intents")) == 1


def test_an_abandoned_challenge_is_canceled_unless_it_completed_first(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    fake._behaviour[pm] = ("card", "visa", "3184", "ok", "authenticate")
    first = gw.charge(req(cus, pm, "p:1", on_session=True))
    canceled = gw.cancel_payment(first.reference)
    assert (canceled.outcome, canceled.code) == ("failed", "canceled")
    second = gw.charge(req(cus, pm, "p:2", on_session=True))
    fake._authenticate(second.reference, "complete")
    assert gw.cancel_payment(second.reference).succeeded  # the customer won the race


def test_a_link_payment_saves_the_method_for_later(gw, fake):
    cus = customer(gw)
    result = gw.charge(req(cus, "pm_card_mastercard", "link:1", save_method=True,
                           on_session=True))
    assert result.succeeded and result.method.brand == "Mastercard"
    assert result.method.reference != "pm_card_mastercard"
    assert fake.posts("/v1/payment_intents")[0].params["setup_future_usage"] == "off_session"


def test_a_timeout_is_gateway_timeout_and_the_retry_with_the_same_key_makes_one_payment(gw,
                                                                                       fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    fake.fail_next("/v1/payment_intents", "timeout")
    started = time.monotonic()
    with pytest.raises(GatewayTimeout):
        gw.charge(req(cus, pm, "recharge:1:t"))
    assert time.monotonic() - started < 1.1  # the client's read timeout, not the server's
    retry = gw.charge(req(cus, pm, "recharge:1:t"))
    assert retry.succeeded
    assert len(fake.of_type("pi_")) == 1
    keys = [r.idempotency_key for r in fake.posts("/v1/payment_intents")]
    assert keys == ["recharge:1:t", "recharge:1:t"]


def test_a_dropped_request_times_out_and_the_retry_charges_once(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    fake.fail_next("/v1/payment_intents", "drop")
    with pytest.raises(GatewayTimeout):
        gw.charge(req(cus, pm, "k"))
    assert fake.of_type("pi_") == []
    assert gw.charge(req(cus, pm, "k")).succeeded and len(fake.of_type("pi_")) == 1


def test_a_409_conflict_or_a_429_is_gateway_timeout(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    fake._in_flight.add("busy")
    with pytest.raises(GatewayTimeout):
        gw.charge(req(cus, pm, "busy"))
    fake._in_flight.discard("busy")
    fake.fail_next("/v1/payment_intents", "429")
    with pytest.raises(GatewayTimeout):
        gw.charge(req(cus, pm, "busy"))
    assert fake.of_type("pi_") == []
    assert gw.charge(req(cus, pm, "busy")).succeeded  # neither answer was stored


def test_a_500_is_replayed_forever_so_the_payment_is_found_by_listing(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    clock.freeze(datetime.now(UTC))
    fake.fail_next("/v1/payment_intents", "500")  # charged, but the answer was a 500
    result = gw.charge(req(cus, pm, "recharge:5", first_tried_at=clock.now()))
    assert result.succeeded and result.reference == fake.of_type("pi_")[0]["id"]
    again = gw.charge(req(cus, pm, "recharge:5", first_tried_at=clock.now()))
    assert again.succeeded and again.reference == result.reference
    assert len(fake.of_type("pi_")) == 1
    listed = [r for r in fake.requests if r.method == "GET" and r.path == "/v1/payment_intents"]
    assert len(listed) == 2 and listed[0].params["customer"] == cus


def test_a_500_with_nothing_charged_is_a_processing_error_not_a_retry_forever(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    fake.fail_next("/v1/payment_intents", "500_before")
    result = gw.charge(req(cus, pm, "recharge:6"))
    assert (result.outcome, result.code) == ("failed", "processing_error")
    assert fake.of_type("pi_") == []


def test_a_first_try_older_than_23_hours_is_reconciled_never_re_sent(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    first = gw.charge(req(cus, pm, "recharge:old"))
    clock.freeze(datetime.now(UTC) + timedelta(hours=23, minutes=1))
    tried = datetime.now(UTC)
    found = gw.charge(req(cus, pm, "recharge:old", first_tried_at=tried))
    assert found.succeeded and found.reference == first.reference
    missing = gw.charge(req(cus, pm, "recharge:never", first_tried_at=tried))
    assert (missing.outcome, missing.code) == ("failed", "not_found")
    assert len(fake.posts("/v1/payment_intents")) == 1  # neither was POSTed again


def test_a_key_reused_with_other_parameters_is_refused(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    assert gw.charge(req(cus, pm, "k", 2500)).succeeded
    other = gw.charge(req(cus, pm, "k", 2600))
    assert (other.succeeded, other.code) == (False, "idempotency_mismatch")
    assert len(fake.of_type("pi_")) == 1


def test_a_replayed_answer_is_the_first_one(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus, "pm_card_chargeDeclinedInsufficientFunds")
    first = gw.charge(req(cus, pm, "k"))
    second = gw.charge(req(cus, pm, "k"))
    assert first == second and first.code == "insufficient_funds"
    assert len(fake.of_type("pi_")) == 1


# ------------------------------------------------------------------ refunds

def test_refunds_full_partial_too_large_and_already_refunded(gw, fake):
    cus = customer(gw)
    pm = saved(gw, cus)
    paid = gw.charge(req(cus, pm, "c", 5000))
    part = gw.refund(paid.reference, 2000, "refund:1")
    assert part.succeeded and part.reference.startswith("re_")
    assert fake.posts("/v1/refunds")[0].idempotency_key == "refund:1"
    assert gw.refund(paid.reference, 2000, "refund:1") == part  # the same key: once
    too_large = gw.refund(paid.reference, 3001, "refund:2")
    assert (too_large.succeeded, too_large.code) == (False, "amount_too_large")
    rest = gw.refund(paid.reference, 3000, "refund:3")
    assert rest.succeeded and gw.refund_status(rest.reference).succeeded
    done = gw.refund(paid.reference, 1, "refund:4")
    assert done.code == "charge_already_refunded"
    assert fake.objects[fake.objects[paid.reference]["latest_charge"]]["amount_refunded"] == 5000


def test_a_refund_of_a_failed_payment_is_refused(gw):
    cus = customer(gw)
    failed = gw.charge(req(cus, saved(gw, cus, "pm_card_chargeCustomerFail"), "c"))
    result = gw.refund(failed.reference, 100, "refund:x")
    assert (result.succeeded, result.code) == (False, "charge_not_found")


def test_a_bank_refund_is_pending_until_it_settles(gw, fake):
    class Mandate:
        ip, user_agent = "203.0.113.9", "UA"

    cus = customer(gw)
    setup = gw.save_method(cus, "pm_usBankAccount", "ach", "s", Mandate())
    pm = gw.verify_microdeposits(setup.reference, (32, 45)).method.reference
    pi = gw.charge(req(cus, pm, "c:ach")).reference
    fake.objects[pi]["status"] = "requires_confirmation"  # settled days later
    fake._succeed(fake.objects[pi])
    refund = gw.refund(pi, 500, "refund:ach")
    assert (refund.succeeded, refund.outcome) == (False, "processing")
    assert gw.refund_status(refund.reference).outcome == "processing"
    fake.objects[refund.reference]["status"] = "succeeded"
    assert gw.refund_status(refund.reference).succeeded


# ------------------------------------------------------------------ events

def test_parse_event_checks_the_signature_with_the_sdk(gw, fake):
    cus = customer(gw)
    gw.charge(req(cus, saved(gw, cus), "c"))
    event = fake.event("payment_intent.succeeded")
    import json

    payload = json.dumps(event)
    parsed = gw.parse_event(payload.encode(), sign(payload))
    assert (parsed.id, parsed.type) == (event["id"], "payment_intent.succeeded")
    assert parsed.object["metadata"]["charge_key"] == "c"
    rotated = StripeGateway(SECRET_KEY, "pk", ["whsec_new", WEBHOOK_SECRET], api_base=fake.url)
    assert rotated.parse_event(payload.encode(), sign(payload)).id == event["id"]
    bad = [sign(payload, "whsec_other"), sign(payload, t=int(time.time()) - 301),
           sign(payload).split(",v1=")[0], ""]
    for header in bad:
        with pytest.raises(BadSignature):
            gw.parse_event(payload.encode(), header)
    with pytest.raises(BadSignature):
        gw.parse_event(payload.replace('"c"', '"d"').encode(), sign(payload))
