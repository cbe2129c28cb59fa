"""The sandbox's card entry in a browser (issue 16): a tiny host page (this file's, on its
own server) loads /sandbox/v1/sandbox.js as the portal's card pages will, mounts the card
frame, and saves the pm_sbx_ id it gets with the gateway. The card number is typed into the
frame and never reaches the host page or its requests; 3155's challenge completes or fails
in the sandbox's dialog."""

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, jsonify, request
from playwright.sync_api import Page, expect

from portal.extensions import csrf
from tests.browser.conftest import axe, goto, shots
from tests.conftest import make_app, serving

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Try the sandbox</title><link rel="stylesheet" href="/static/portal.css"></head>
<body><main class="content"><h1>Try the sandbox</h1>
<form id="host-form" class="card" data-kind="{kind}" novalidate>
  <div id="payment-element"></div>
  <button type="submit" class="primary">Save</button>
</form>
<p>Payment method: <output id="pm"></output></p>
<p id="result" role="status"></p>
</main>
<script src="/sandbox/v1/sandbox.js"></script><script src="/try.js"></script>
</body></html>"""

HOST_SCRIPT = """(function () {
  var form = document.getElementById("host-form");
  var kind = form.dataset.kind;
  var result = document.getElementById("result");
  var stripe = SandboxStripe("pk_sandbox");
  var elements = stripe.elements({mode: "setup", kind: kind});
  elements.create("payment").mount("#payment-element");
  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                       body: JSON.stringify(body)}).then(function (r) { return r.json(); });
  }
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    result.textContent = "";
    var submitted = await elements.submit();
    if (submitted.error) { result.textContent = "Error: " + submitted.error.message; return; }
    var made = await stripe.createPaymentMethod(
      {elements: elements, params: {billing_details: {name: ""}}});
    if (made.error) { result.textContent = "Error: " + made.error.message; return; }
    document.getElementById("pm").textContent = made.paymentMethod.id;
    var saved = await post("/try/save", {pm: made.paymentMethod.id, kind: kind});
    if (saved.status === "requires_action" && saved.next_action === "authenticate") {
      var acted = await stripe.handleNextAction({clientSecret: saved.client_secret});
      saved = await post("/try/status", {setup: acted.setupIntent.id});
    }
    if (saved.status === "succeeded") {
      result.textContent = "Saved " + saved.brand + " ending " + saved.last4;
    } else if (saved.next_action === "verify_microdeposits") {
      result.textContent = "Saved: verify the two deposits";
    } else {
      result.textContent = "Not saved: " + saved.message;
    }
  });
})();"""


def _answer(result):
    method = result.method
    return jsonify(status=result.outcome, next_action=result.next_action,
                   client_secret=result.client_secret, message=result.message,
                   brand=method.brand if method else "", last4=method.last4 if method else "")


@pytest.fixture(scope="module")
def host(database_url, _schema):
    """The app with a test-only host page, on its own loopback server."""
    app = make_app(database_url)
    bp = Blueprint("sandbox_host", __name__)
    csrf.exempt(bp)

    @bp.get("/try/<kind>")
    def page(kind):
        return HOST_PAGE.replace("{kind}", kind)

    @bp.get("/try.js")
    def script():
        return HOST_SCRIPT, 200, {"Content-Type": "text/javascript"}

    @bp.post("/try/save")
    def save():
        gateway = app.extensions["payment_gateway"]
        body = request.get_json()
        kind = "card" if body["kind"] == "card" else "ach"
        return _answer(gateway.save_method("cus_sbx_try", body["pm"], kind, uuid.uuid4().hex))

    @bp.post("/try/status")
    def status():
        return _answer(app.extensions["payment_gateway"].setup_status(
            request.get_json()["setup"]))

    app.register_blueprint(bp)
    with serving(app, "sandbox-host") as url:
        yield url


@pytest.fixture
def watched(page: Page):
    """Every request the host page itself makes (not its frames'): (url, body)."""
    seen: list[tuple[str, str]] = []
    page.on("request", lambda r: seen.append((r.url, r.post_data or ""))
            if r.frame == page.main_frame else None)
    return seen


def _open(page: Page, host: str, kind: str = "card"):
    goto(page, f"{host}/try/{kind}", heading="Try the sandbox")
    title = "Secure card entry" if kind == "card" else "Secure bank account entry"
    frame = page.frame_locator(f"iframe[title='{title}']")
    expect(frame.get_by_label("Name on card" if kind == "card" else "Account holder")
           ).to_be_visible()
    return frame


def _card(frame, number: str, exp: str = "12/34", cvc: str = "123", name: str = "Pat Doe"):
    frame.get_by_label("Name on card").fill(name)
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiry (MM/YY)").fill(exp)
    frame.get_by_label("Security code (CVC)").fill(cvc)


def test_a_card_typed_in_the_frame_gives_the_page_only_a_pm_id(page, host, screenshot,
                                                                watched):
    problems: list[str] = []
    frame = _open(page, host)
    _card(frame, "4242 4242 4242 4242")
    shots(page, screenshot, "i16-sandbox-card-filled", problems)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#result")).to_have_text("Saved Visa ending 4242")
    expect(page.locator("#pm")).to_have_text(re.compile(r"^pm_sbx_[0-9a-f]{24}$"))
    shots(page, screenshot, "i16-sandbox-card-saved", problems)
    # the host page never holds the number: not in its DOM, not in any request it made
    assert "4242 4242" not in page.content() and "4242424242424242" not in page.content()
    ours = [(url, body) for url, body in watched if urlsplit(url).path.startswith("/try")]
    assert any(url.endswith("/try/save") for url, _ in ours)
    for url, body in watched:
        assert "4242424242424242" not in body and "4242 4242" not in body, url
        assert "cvc" not in body.lower(), url
    saved = [json.loads(body) for url, body in watched if url.endswith("/try/save")]
    assert set(saved[0]) == {"pm", "kind"}
    assert problems == []


def test_the_frame_shows_its_errors_beside_the_fields(page, host, screenshot):
    problems: list[str] = []
    frame = _open(page, host)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#result")).to_have_text("Error: Enter the name on the card.")
    expect(frame.get_by_text("Enter the card number.")).to_be_visible()
    expect(frame.get_by_text("Enter the expiry as MM/YY, like 12/29.")).to_be_visible()
    expect(frame.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")
    shots(page, screenshot, "i16-sandbox-card-errors", problems)
    # the processor's own refusal (Diners passes the frame's Luhn check) beside the number
    _card(frame, "3622 7206 2716 67")
    page.get_by_role("button", name="Save").click()
    message = ("Diners Club cards are not accepted. We accept Visa, Mastercard, American "
               "Express and Discover.")
    expect(page.locator("#result")).to_have_text(f"Error: {message}")
    expect(frame.locator("#sbx-number-error")).to_have_text(message)
    expect(page.locator("#pm")).to_have_text("")
    # a card refused by its $0 authorization is not saved
    _card(frame, "4000 0000 0000 0002")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#result")).to_have_text("Not saved: The card was declined.")
    assert problems == []


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "fail"])
def test_3155_asks_for_authentication_in_the_sandbox_dialog(page, host, screenshot, complete):
    problems: list[str] = []
    frame = _open(page, host)
    _card(frame, "4000 0025 0000 3155")
    page.get_by_role("button", name="Save").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    check = page.frame_locator("iframe[title=\"Your bank's check\"]")
    expect(check.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    if complete:
        shots(page, screenshot, "i16-sandbox-3ds-challenge", problems)
    button = "Complete authentication" if complete else "Fail authentication"
    check.get_by_role("button", name=button).click()
    expect(dialog).to_have_count(0)
    expected = ("Saved Visa ending 3155" if complete else
                "Not saved: The card's bank couldn't confirm it was you: the card was not "
                "charged.")
    expect(page.locator("#result")).to_have_text(expected)
    assert problems == []


def test_a_bank_account_with_its_authorization(page, host, screenshot):
    problems: list[str] = []
    frame = _open(page, host, "us_bank_account")
    frame.get_by_label("Account holder").fill("Pat Doe")
    frame.get_by_label("Routing number").fill("021000021")
    frame.get_by_label("Account number").fill("000123456789")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#result")).to_have_text(
        "Error: Check the box to authorize debits from this account.")
    frame.get_by_label("I authorize debits").check()
    shots(page, screenshot, "i16-sandbox-ach-filled", problems)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#result")).to_have_text("Saved: verify the two deposits")
    assert problems == []


@pytest.mark.parametrize("kind", ["card", "us_bank_account"])
def test_the_frames_pass_axe(page, host, kind):
    goto(page, f"{host}/sandbox/v1/elements/{kind}")
    assert axe(page, "main") == []
