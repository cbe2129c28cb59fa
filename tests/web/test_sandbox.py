"""The sandbox processor's blueprint (issue 16): its payment-method API in Stripe's wire
shape, its frame and 3-D Secure pages (framed by our own pages only), CSRF-exempt like a
processor's API, rate-limited, writing only its own sandbox_* tables, and absent when the
gateway is not the sandbox."""

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from portal.extensions import db
from portal.models import SandboxCharge, SandboxPaymentMethod
from portal.sandbox import core
from portal.sandbox.testing import AUTHENTICATE_ALWAYS, saved_card
from portal.services.gateway import ChargeRequest
from tests.conftest import make_app
from tests.web.test_security_headers import CSP_DIRECTIVES, INLINE, csp

API = "/sandbox/v1/payment_methods"
VISA = {"type": "card", "card[number]": "4242 4242 4242 4242", "card[exp_month]": "12",
        "card[exp_year]": "2031", "card[cvc]": "123", "billing_details[name]": "Pat Doe"}
BANK = {"type": "us_bank_account", "us_bank_account[routing_number]": "021000021",
        "us_bank_account[account_number]": "000123456789",
        "billing_details[name]": "Pat Doe"}


class OtherGateway:
    """A gateway that is not the sandbox (as Stripe would be)."""

    name = "other"


@pytest.fixture(autouse=True)
def _fresh_rate_limit(app):
    app.extensions["sandbox_rate"].reset()
    yield
    app.extensions["sandbox_rate"].reset()


@contextmanager
def writes():
    """The tables each INSERT/UPDATE/DELETE on the app's engine names."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        found = re.match(r"\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", statement, re.I)
        if found:
            seen.append(found.group(1))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_a_card_gives_a_pm_id_in_stripes_shape_without_csrf(client, session):
    with writes() as tables:
        answer = client.post(API, data=VISA)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert re.fullmatch(r"pm_sbx_[0-9a-f]{24}", body["id"])
    assert (body["object"], body["type"]) == ("payment_method", "card")
    assert body["card"] == {"brand": "Visa", "last4": "4242", "exp_month": 12, "exp_year": 2031}
    assert body["billing_details"] == {"name": "Pat Doe"}
    assert tables and set(tables) == {"sandbox_payment_methods"}
    row = session.get(SandboxPaymentMethod, body["id"])
    assert "4242424242424242" not in str([getattr(row, c.name) for c in row.__table__.c])


def test_a_bank_account_in_stripes_shape(client):
    body = client.post(API, data=BANK).get_json()
    assert body["type"] == "us_bank_account"
    assert body["us_bank_account"] == {"last4": "6789", "bank_name": "JPMorgan Chase"}


@pytest.mark.parametrize("change,status,code,param,message", [
    ({"card[number]": "4242424242424241"}, 402, "incorrect_number", "card[number]",
     "This card number isn't valid: check the digits."),
    ({"card[number]": "36227206271667"}, 402, "incorrect_number", "card[number]",
     "Diners Club cards are not accepted. We accept Visa, Mastercard, American Express and "
     "Discover."),
    ({"card[exp_year]": "2020"}, 402, "expired_card", "card[exp_year]",
     "This card has expired."),
    ({"card[cvc]": "12"}, 402, "invalid_cvc", "card[cvc]",
     "The security code is 4 digits on American Express cards and 3 on others."),
    ({"billing_details[name]": ""}, 402, "parameter_missing", "billing_details[name]",
     "Enter the name on the card."),
    ({"type": "paypal"}, 400, "parameter_invalid_empty", "type",
     "Choose the payment method type: card or us_bank_account."),
])
def test_refusals_are_stripes_error_bodies_and_keep_nothing(client, session, change, status,
                                                           code, param, message):
    with writes() as tables:
        answer = client.post(API, data={**VISA, **change})
    assert answer.status_code == status
    error = answer.get_json()["error"]
    assert (error["code"], error["param"], error["message"]) == (code, param, message)
    assert error["type"] == ("card_error" if status == 402 else "invalid_request_error")
    assert tables == []


def test_a_bad_routing_number_is_an_invalid_request(client):
    answer = client.post(API, data={**BANK, "us_bank_account[routing_number]": "123456789"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["param"] == "us_bank_account[routing_number]"


def test_the_api_is_rate_limited_per_address(app, client, session):
    app.config["SANDBOX_RATE_LIMIT"] = 3
    for _ in range(3):
        assert client.post(API, data=VISA).status_code == 200
    with writes() as tables:
        limited = client.post(API, data=VISA)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["type"] == "rate_limit_error"
    assert tables == []
    assert len(session.scalars(select(SandboxPaymentMethod)).all()) == 3
    # another address is not limited by this one's requests
    other = client.post(API, data=VISA, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200
    # pages are not counted
    assert client.get("/sandbox/v1/elements/card").status_code == 200


@pytest.mark.parametrize("kind,labels", [
    ("card", ["Name on card", "Card number", "Expiry (MM/YY)", "Security code (CVC)"]),
    ("us_bank_account", ["Account holder", "Routing number", "Account number",
                         "I authorize debits"]),
])
def test_the_frame_page_may_be_framed_by_our_pages_only(client, kind, labels):
    page = client.get(f"/sandbox/v1/elements/{kind}")
    assert page.status_code == 200
    policy = csp(page.headers["Content-Security-Policy"])
    assert policy == {**CSP_DIRECTIVES, "frame-ancestors": "'self'"}
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.get_data(as_text=True)
    for label in labels:
        assert label in html
    for pattern, what in INLINE:
        assert pattern.search(html) is None, what
    # the fields have no name: nothing in the frame is ever posted as a form
    assert not re.search(r"<input[^>]*\sname=", html)
    assert client.get("/sandbox/v1/elements/paypal").status_code == 404


def test_the_portal_pages_still_deny_framing(client):
    answer = client.get("/login")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_the_scripts_are_served(client):
    for path, mimetype in [("/sandbox/v1/sandbox.js", "text/javascript"),
                           ("/sandbox/v1/frame.js", "text/javascript"),
                           ("/sandbox/v1/sandbox.css", "text/css")]:
        answer = client.get(path)
        assert (answer.status_code, answer.mimetype) == (200, mimetype), path
    assert b"window.SandboxStripe" in client.get("/sandbox/v1/sandbox.js").data


def _waiting_payment():
    card = saved_card(AUTHENTICATE_ALWAYS, customer="cus_sbx_web")
    answer = core.charge(card.reference, "cus_sbx_web", 4250, "web-3ds", on_session=True)
    assert answer.outcome == "requires_action"
    return answer


def test_the_3ds_page_completes_a_payment_once(client, session):
    answer = _waiting_payment()
    url = f"/sandbox/v1/authenticate/{answer.reference}"
    page = client.get(f"{url}?client_secret={answer.client_secret}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "$42.50" in html and "Complete authentication" in html
    assert "Fail authentication" in html
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # a wrong secret shows nothing and changes nothing
    assert client.get(f"{url}?client_secret=pi_x_secret_y").status_code == 404
    wrong = client.post(url, data={"client_secret": "nope", "outcome": "complete"})
    assert wrong.status_code == 404
    assert core.payment_status(answer.reference).outcome == "requires_action"
    with writes() as tables:
        done = client.post(url, data={"client_secret": answer.client_secret,
                                      "outcome": "complete"})
    assert done.status_code == 200
    assert 'data-status="succeeded"' in done.get_data(as_text=True)
    assert set(tables) <= {"sandbox_charges", "sandbox_payment_methods"}
    assert core.payment_status(answer.reference).succeeded
    again = client.post(url, data={"client_secret": answer.client_secret, "outcome": "fail"})
    assert again.status_code == 404
    assert core.payment_status(answer.reference).succeeded
    assert session.scalar(select(SandboxCharge.status)) == "succeeded"


def test_the_3ds_page_fails_a_payment(client):
    answer = _waiting_payment()
    url = f"/sandbox/v1/authenticate/{answer.reference}"
    done = client.post(url, data={"client_secret": answer.client_secret, "outcome": "fail"})
    assert 'data-status="failed"' in done.get_data(as_text=True)
    assert core.payment_status(answer.reference).code == "authentication_failed"
    assert client.post(url, data={"client_secret": answer.client_secret,
                                  "outcome": "maybe"}).status_code == 400


def test_the_gateway_answers_a_request_the_browser_saved(app, client):
    """The round trip the portal will make: the frame's pm id, then the gateway."""
    pm = client.post(API, data=VISA).get_json()["id"]
    gateway = app.extensions["payment_gateway"]
    saved = gateway.save_method("cus_sbx_web", pm, "card", "web-save")
    assert saved.succeeded and saved.method.last4 == "4242"
    paid = gateway.charge(ChargeRequest(method=pm, customer="cus_sbx_web", kind="recharge",
                                        amount_cents=1000, idempotency_key="web-pay",
                                        description="Recharge"))
    assert paid.succeeded


def test_no_sandbox_routes_when_the_gateway_is_not_the_sandbox(database_url, _schema):
    other = make_app(database_url, PAYMENT_GATEWAY="tests.web.test_sandbox:OtherGateway")
    assert "sandbox" not in other.blueprints
    client = other.test_client()
    for path in ("/sandbox/v1/sandbox.js", "/sandbox/v1/elements/card"):
        assert client.get(path).status_code == 404
    assert client.post(API, data=VISA).status_code == 404
    with other.app_context():
        db.engine.dispose()
