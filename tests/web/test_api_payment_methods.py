"""Issue 18 E2: /api/v1 payment methods: added through the processor (its pm_… id, never a
card number), the bank's challenge by a signed setup token, Primary/Backup with the page's
rules and warning, removal with the Primary's successor, and tenant isolation."""
# ruff: noqa: F811  (the `aw` fixture, imported, is each test's argument)

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from portal.models import PaymentMethod
from portal.sandbox import core
from portal.sandbox.cards import MICRODEPOSITS
from portal.sandbox.testing import bank_account, paying_card
from tests.web.api_billing_world import (  # noqa: F401
    API,
    assert_problem,
    aw,
    call,
    headers,
    snapshot,
)
from tests.web.billing_world import (
    AGENCY_BILLED,
    AUTHENTICATE_ONCE,
    DECLINES_WHEN_CHARGED,
    MASTERCARD,
    REFUSED_AT_ENTRY,
    VISA,
    card,
    methods,
    paid,
)

CARDS_GO = ("Card and bank account details go to the payment processor, never to this API: "
            "create the payment method with the processor (POST .../payment-methods/setup "
            "says how) and send its pm_… id as payment_method.")
NOT_REACHED = "No such account, or this key does not reach it."


def path(account, rest: str = "") -> str:
    return f"/accounts/{account.id}/payment-methods{rest}"


def add(client, w, account, pm, key="solo", kind="card"):
    return call(client, w, "POST", path(account), key=key,
                json={"payment_method": pm, "kind": kind})


def test_setup_then_the_processor_then_save(client, session, aw):
    setup = call(client, aw, "POST", path(aw.solo, "/setup"))
    assert setup.status_code == 200, setup.get_json()
    how = setup.get_json()
    assert (how["processor"], how["publishable_key"], how["kinds"]) == (
        "sandbox", "pk_sandbox", ["card", "ach"])
    assert how["script_url"].endswith("/sandbox/v1/sandbox.js")
    assert how["save_url"] == f"{API}/accounts/{aw.solo.id}/payment-methods"
    # The card goes to the processor (Stripe's POST /v1/payment_methods shape) ...
    made = client.post(urlsplit(how["payment_methods_url"]).path, data={
        "type": "card", "card[number]": VISA, "card[exp_month]": "12",
        "card[exp_year]": "2030", "card[cvc]": "123", "billing_details[name]": "Pat Doe"})
    assert made.status_code == 200, made.get_json()
    pm = made.get_json()["id"]
    assert pm.startswith("pm_")
    # ... and only its id to the portal.
    saved = add(client, aw, aw.solo, pm)
    assert saved.status_code == 201, saved.get_json()
    body = saved.get_json()
    assert (body["brand"], body["last4"], body["exp_month"], body["exp_year"], body["role"],
            body["verification"], body["label"]) == (
        "Visa", "4242", 12, 2030, "primary", "verified", "Visa ending 4242, expires 12/2030")
    assert body["standing"]["last_charge_status"] is None
    listed = call(client, aw, "GET", path(aw.solo))
    assert [m["id"] for m in listed.get_json()["data"]] == [body["id"]]
    text = listed.get_data(as_text=True)
    assert VISA not in text and pm not in text and "token" not in text
    assert methods(session, aw.solo) == [("Visa", "4242", "primary", False)]


def test_a_card_number_is_refused_and_never_echoed(client, session, aw):
    before = snapshot(session)
    response = call(client, aw, "POST", path(aw.solo), json={
        "number": VISA, "cvc": "123", "exp_month": 12, "exp_year": 2030})
    assert_problem(response, 422, response.get_json()["detail"], {
        "cvc": CARDS_GO, "exp_month": CARDS_GO, "exp_year": CARDS_GO, "number": CARDS_GO})
    assert VISA not in response.get_data(as_text=True)
    assert snapshot(session) == before


@pytest.mark.parametrize("number", [VISA, "4242 4242 4242 4242", "4000-0025-0000-3155"])
def test_a_card_number_as_the_payment_method_never_reaches_the_processor(client, session, aw,
                                                                        number):
    from portal.models import SandboxSetup
    from portal.services import payment_methods

    before = snapshot(session)
    response = add(client, aw, aw.solo, number)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"payment_method": CARDS_GO}
    assert number not in response.get_data(as_text=True)
    assert snapshot(session) == before
    kept = [row.payment_method + row.idempotency_key for row in session.scalars(
        select(SandboxSetup))]
    assert not any(number.replace(" ", "").replace("-", "")[:12] in k.replace(" ", "")
                   for k in kept)
    # the pages' service too (their card entry sends the processor's id)
    from portal.errors import ValidationFailed
    from portal.services.gateway import SandboxGateway

    with pytest.raises(ValidationFailed) as refused:
        payment_methods.add(session, aw.solo, SandboxGateway(), number, "card")
    assert refused.value.errors == {"payment_method": payment_methods.NOT_A_NUMBER}


@pytest.mark.parametrize("sent, errors", [
    ({"payment_method": "pm_sbx_unknown"},
     {"payment_method": "Those details can't be used any more: enter them again."}),
    ({"payment_method": "pm_1", "kind": "paypal"}, {"kind": "Must be one of: card, ach."}),
    ({}, {"payment_method": "Missing data for required field."}),
])
def test_bad_methods_are_422_and_nothing_is_saved(client, session, aw, sent, errors):
    before = snapshot(session)
    response = call(client, aw, "POST", path(aw.solo), json=sent)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == errors
    assert snapshot(session) == before


def test_a_card_the_processor_refuses_is_422(client, session, aw):
    response = add(client, aw, aw.solo, paying_card(REFUSED_AT_ENTRY))
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"payment_method"}
    assert methods(session, aw.solo) == []


def test_the_banks_challenge_then_confirm_with_the_signed_setup(client, session, aw):
    from portal.models import ApiIdempotency

    sent = {"payment_method": paying_card(AUTHENTICATE_ONCE), "kind": "card"}
    retry = {**headers(aw), "Idempotency-Key": "add-3ds"}
    asked = client.post(API + path(aw.solo), json=sent, headers=retry)
    assert asked.status_code == 202, asked.get_json()
    assert asked.headers["Cache-Control"] == "no-store"
    body = asked.get_json()
    # The Idempotency-Key's replay store keeps the answer sealed: no client secret in it
    session.expire_all()
    [kept] = session.scalars(select(ApiIdempotency).where(ApiIdempotency.key == "add-3ds"))
    assert kept.body.startswith(b"sealed:") and body["client_secret"].encode() not in kept.body
    replayed = client.post(API + path(aw.solo), json=sent, headers=retry)
    assert (replayed.status_code, replayed.get_json()) == (202, body)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Cache-Control"] == "no-store"
    assert body["status"] == "requires_action" and body["client_secret"]
    assert body["confirm_url"] == f"{API}/accounts/{aw.solo.id}/payment-methods/confirm"
    assert methods(session, aw.solo) == []
    # Not for another account, not tampered, not before the holder answered.
    card(session, aw.rival)
    for key, account, token in (("rival", aw.rival, body["setup_token"]),
                                ("solo", aw.solo, body["setup_token"] + "x")):
        response = call(client, aw, "POST", path(account, "/confirm"), key=key,
                        json={"setup_token": token})
        assert_problem(response, 422, "This setup_token is not valid or has expired: add the "
                                      "payment method again.", {"setup_token": "This "
                       "setup_token is not valid or has expired: add the payment method "
                       "again."})
    waiting = call(client, aw, "POST", path(aw.solo, "/confirm"),
                   json={"setup_token": body["setup_token"]})
    assert waiting.status_code == 422
    assert "still waiting" in waiting.get_json()["errors"]["setup_token"]
    setup = body["authenticate_url"].split("/authenticate/")[1].split("?")[0]
    assert core.authenticate(setup, body["client_secret"], True) is not None
    done = call(client, aw, "POST", path(aw.solo, "/confirm"),
                json={"setup_token": body["setup_token"]})
    assert done.status_code == 201, done.get_json()
    assert methods(session, aw.solo) == [("Visa", "3155", "primary", False)]


def test_primary_and_backup_swap_and_a_failing_card_asks_first(client, session, aw):
    visa = card(session, aw.solo)
    master = card(session, aw.solo, MASTERCARD)
    backup = call(client, aw, "POST", path(aw.solo, f"/{master.id}/make-backup"))
    assert backup.status_code == 200 and backup.get_json()["role"] == "backup"
    primary = call(client, aw, "POST", path(aw.solo, f"/{master.id}/make-primary"), json={})
    assert primary.get_json()["role"] == "primary"
    assert methods(session, aw.solo) == [("Visa", "4242", "backup", False),
                                         ("Mastercard", "4444", "primary", False)]
    declining = card(session, aw.solo, DECLINES_WHEN_CHARGED)
    paid(session, aw.solo, declining)
    before = snapshot(session)
    asked = call(client, aw, "POST", path(aw.solo, f"/{declining.id}/make-primary"))
    body = assert_problem(asked, 409, "Visa ending 0341 may not pay: its last charge was "
                                      "declined on Nov 23: the bank gave no reason. Auto "
                                      "recharge and the plan fee charge the Primary first; "
                                      "if it declines, the Backup is tried, and if there is "
                                      "none or it declines too, the balance is not recharged.")
    assert body["standing"]["last_charge_status"] == "failed"
    assert snapshot(session) == before
    sure = call(client, aw, "POST", path(aw.solo, f"/{declining.id}/make-primary"),
                json={"confirm": True})
    assert sure.status_code == 200 and sure.get_json()["role"] == "primary"
    assert visa.id  # still there, the Backup
    refused = call(client, aw, "POST", path(aw.solo, f"/{declining.id}/make-backup"))
    assert_problem(refused, 422, "Make another method Primary first: the account needs one.",
                   {"role": "Make another method Primary first: the account needs one."})


def test_removing_the_primary_names_its_successor(client, session, aw):
    visa = card(session, aw.solo)
    master = card(session, aw.solo, MASTERCARD)
    before = snapshot(session)
    response = call(client, aw, "DELETE", path(aw.solo, f"/{visa.id}"))
    assert_problem(response, 422, "Choose which method becomes Primary.",
                   {"promote_id": "Choose which method becomes Primary."})
    assert snapshot(session) == before
    gone = call(client, aw, "DELETE", path(aw.solo, f"/{visa.id}?promote_id={master.id}"))
    assert gone.status_code == 204
    assert methods(session, aw.solo) == [("Visa", "4242", "other", True),
                                         ("Mastercard", "4444", "primary", False)]
    assert call(client, aw, "DELETE", path(aw.solo, f"/{master.id}")).status_code == 204
    assert call(client, aw, "GET", path(aw.solo)).get_json() == {"data": []}
    assert_problem(call(client, aw, "DELETE", path(aw.solo, f"/{master.id}")), 404,
                   "Payment method not found.")


def test_agency_billed_sub_account_has_no_methods(client, session, aw):
    for method, rest in (("GET", ""), ("POST", "/setup"), ("POST", "")):
        response = call(client, aw, method, path(aw.bayside, rest), key="agency",
                        json={"payment_method": "pm_x"} if rest == "" and method == "POST"
                        else None)
        assert_problem(response, 403, AGENCY_BILLED.format("Bayside Dental"))
    harbor = card(session, aw.harbor)
    listed = call(client, aw, "GET", path(aw.harbor), key="agency").get_json()
    assert [m["id"] for m in listed["data"]] == [harbor.id]


def test_another_tenants_key_gets_404(client, session, aw):
    visa = card(session, aw.solo)
    before = snapshot(session)
    for method, rest in (("GET", ""), ("POST", ""), ("POST", "/setup"), ("GET", f"/{visa.id}"),
                         ("DELETE", f"/{visa.id}"), ("POST", f"/{visa.id}/make-backup"),
                         ("POST", f"/{visa.id}/make-primary"), ("POST", "/confirm")):
        body = {"payment_method": "pm_x"} if rest == "" and method == "POST" else \
            {"setup_token": "x"} if rest == "/confirm" else None
        response = call(client, aw, method, path(aw.solo, rest), key="rival", json=body)
        assert_problem(response, 404, NOT_REACHED)
    # The rival's own account, Acme's method id: not found.
    response = call(client, aw, "DELETE", path(aw.rival, f"/{visa.id}"), key="rival")
    assert_problem(response, 404, "Payment method not found.")
    assert snapshot(session) == before
    assert session.scalar(select(PaymentMethod.removed_at).where(
        PaymentMethod.id == visa.id)) is None


def test_a_bank_account_waits_for_its_micro_deposits(client, session, aw):
    added = add(client, aw, aw.solo, bank_account("000123456789", routing="110000000"),
                kind="ach")
    assert added.status_code == 201, added.get_json()
    bank = added.get_json()
    assert (bank["kind"], bank["brand"], bank["last4"], bank["verification"], bank["role"]) \
        == ("ach", "Bank account", "6789", "pending", "other")
    early = call(client, aw, "POST", path(aw.solo, f"/{bank['id']}/make-primary"))
    message = "Verify this bank account's micro-deposits first: until then it can't pay."
    assert_problem(early, 422, message, {"role": message})
    wrong = call(client, aw, "POST", path(aw.solo, f"/{bank['id']}/verify"),
                 json={"first_cents": 1, "second_cents": 2})
    assert wrong.status_code == 422
    assert set(wrong.get_json()["errors"]) == {"first_cents"}
    first, second = MICRODEPOSITS
    right = call(client, aw, "POST", path(aw.solo, f"/{bank['id']}/verify"),
                 json={"first_cents": second, "second_cents": first})
    assert right.status_code == 200, right.get_json()
    assert (right.get_json()["verification"], right.get_json()["role"]) == (
        "verified", "primary")
