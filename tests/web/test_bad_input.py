"""Numbers typed with other digits than 0-9, and control characters in free text, through the
pages (issue 12, items 11 and 12).

`4²42…` as a card number, `²²²…` as a routing number and `¹²` as a support number id were
500s (str.isdigit() passes "²", int() then refuses it); fullwidth `４２４２…` passed the checks
and reached the gateway, `２５` was charged as $25.00 and `1_2` read as month 12 (re's \\d and
int() take them). NUL was stored in holder names and the billing-request message. Each is
now a 422 with the field's message, and nothing is stored or charged."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import (
    BillingRequest,
    Charge,
    OutboxMessage,
    PaymentMethod,
    StatementSchedule,
    SupportRequest,
)
from tests.web import billing_world as bworld
from tests.web import link_world
from tests.web.billing_world import url
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post
from tests.web.pages import body, shown

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VISA_FULLWIDTH = "４２４２４２４２４２４２４２４２"
DIGITS_ONLY = "{} must be written with the digits 0-9."


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return bworld.build(session)


def field_error(field: str, message: str) -> str:
    return f'<p class="field-error" id="{field}-error">{shown(message)}</p>'


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


# --- payment methods -------------------------------------------------------------------------

CARD_CASES = [
    pytest.param({"number": "4²42424242424242"}, "number",
                 DIGITS_ONLY.format("The card number"), id="superscript-number"),
    pytest.param({"number": VISA_FULLWIDTH}, "number", DIGITS_ONLY.format("The card number"),
                 id="fullwidth-number"),
    pytest.param({"number": "4242 4242 4242 424٢"}, "number",
                 DIGITS_ONLY.format("The card number"), id="arabic-indic-digit"),
    pytest.param({"number": "4242_4242_4242_4242"}, "number",
                 "The card number has only digits.", id="underscores"),
    pytest.param({"exp_month": "1_2"}, "exp_month", "Choose the expiry month.",
                 id="month-1_2"),
    pytest.param({"exp_month": "１２"}, "exp_month", "Choose the expiry month.",
                 id="fullwidth-month"),
    pytest.param({"exp_month": "+12"}, "exp_month", "Choose the expiry month.", id="month-+12"),
    pytest.param({"exp_year": "２０３０"}, "exp_year", "Enter the expiry year, like 2029.",
                 id="fullwidth-year"),
    pytest.param({"cvc": "９８７"}, "cvc",
                 "The security code is 4 digits on American Express cards and 3 on others.",
                 id="fullwidth-cvc"),
    pytest.param({"cvc": "9²7"}, "cvc",
                 "The security code is 4 digits on American Express cards and 3 on others.",
                 id="superscript-cvc"),
    pytest.param({"holder": "Pat\x00Doe"}, "holder",
                 "The name can't contain control characters or line breaks.", id="nul-holder"),
    pytest.param({"holder": "Pat\nDoe"}, "holder",
                 "The name can't contain control characters or line breaks.",
                 id="newline-holder"),
    pytest.param({"holder": "Pat\x1b[31mDoe"}, "holder",
                 "The name can't contain control characters or line breaks.",
                 id="escape-holder"),
]


SANDBOX_PARAMS = {"number": "card[number]", "exp_month": "card[exp_month]",
                  "exp_year": "card[exp_year]", "cvc": "card[cvc]",
                  "holder": "billing_details[name]",
                  "routing": "us_bank_account[routing_number]",
                  "account_number": "us_bank_account[account_number]"}
SANDBOX_CARD = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                "card[exp_year]": "2030", "card[cvc]": "987",
                "billing_details[name]": "Pat Doe"}
SANDBOX_BANK = {"type": "us_bank_account", "us_bank_account[routing_number]": "110000000",
                "us_bank_account[account_number]": "000123456789",
                "billing_details[name]": "Pat Doe"}


def refused_by_the_processors_form(client, session, form, field, message):
    """Issue 16: card and bank details are typed into the processor's form (its frame), never
    a portal form; that form's POST refuses them beside the field, and no method is made."""
    from portal.models import SandboxPaymentMethod

    before = count(session, SandboxPaymentMethod)
    response = client.post("/sandbox/v1/payment_methods", data=form)
    assert response.status_code in (400, 402)
    error = response.get_json()["error"]
    assert (error["param"], error["message"]) == (SANDBOX_PARAMS[field], message)
    assert count(session, SandboxPaymentMethod) == before
    assert count(session, PaymentMethod) == 1  # the closed shop's, from the set-up


@pytest.mark.parametrize("change,field,message", CARD_CASES)
def test_a_card_with_other_digits_or_control_characters_is_refused(client, session, bw,
                                                                   change, field, message):
    form = {**SANDBOX_CARD, **{SANDBOX_PARAMS[k]: v for k, v in change.items()}}
    refused_by_the_processors_form(client, session, form, field, message)


ACH_CASES = [
    pytest.param({"routing": "²²²²²²²²²"}, "routing", DIGITS_ONLY.format("The routing number"),
                 id="superscript-routing"),
    pytest.param({"routing": "１１００００００"}, "routing",
                 DIGITS_ONLY.format("The routing number"), id="fullwidth-routing"),
    pytest.param({"account_number": "０００１２３４５６７８９"}, "account_number",
                 DIGITS_ONLY.format("The account number"), id="fullwidth-account"),
    pytest.param({"holder": "Pat\x00Doe"}, "holder",
                 "The name can't contain control characters or line breaks.", id="nul-holder"),
]


@pytest.mark.parametrize("change,field,message", ACH_CASES)
def test_a_bank_account_with_other_digits_or_control_characters_is_refused(
        client, session, bw, change, field, message):
    form = {**SANDBOX_BANK, **{SANDBOX_PARAMS[k]: v for k, v in change.items()}}
    refused_by_the_processors_form(client, session, form, field, message)


@pytest.mark.parametrize("amount", ["２５", "2５.00", "²5", "25.0٠"])
def test_a_payment_in_other_digits_is_refused_not_charged(client, session, bw, amount):
    """`２５` was charged as $25.00."""
    visa = bworld.card(session, bw.solo)
    sign_in_as(client, bw.ann)
    before = count(session, Charge)
    response = post(client, url(bw.solo, "payments"), {
        "method": str(visa.id), "amount": amount, "form_key": bworld.form_key(client, bw.solo)})
    assert response.status_code == 422
    assert field_error("amount", "The amount must be written with the digits 0-9, like 25 or "
                                 "25.00.") in body(response)
    assert count(session, Charge) == before


@pytest.mark.parametrize("method", ["１", "¹", "1_0", "+1"])
def test_a_payment_method_id_in_other_digits_is_not_one(client, session, bw, method):
    bworld.card(session, bw.solo)
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "payments"), {
        "method": method, "amount": "25", "form_key": bworld.form_key(client, bw.solo)})
    assert response.status_code == 422
    assert field_error("method", "Choose one of the account's payment methods.") in body(
        response)


@pytest.mark.parametrize("change,field,message", [
    ({"postal_code": "９４１０５"}, "postal_code",
     "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234."),
    ({"address_line1": "1 Market\x00 St"}, "address_line1",
     "The address can't contain control characters or line breaks."),
    ({"city": "San\nFrancisco"}, "city",
     "The address can't contain control characters or line breaks."),
])
def test_a_service_address_with_other_digits_or_control_characters_is_refused(
        client, bw, change, field, message):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "service-address"), {**bworld.ADDRESS, **change})
    assert response.status_code == 422
    assert field_error(field, message) in body(response)


def test_a_critical_phone_in_fullwidth_digits_is_refused(client, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "critical-phone"), {"phone": "+1 ４１５ ５５５ ０１３４"})
    assert response.status_code == 422
    assert field_error("phone", "Enter the number with its country code, like +1 415 555 0134 "
                                "(E.164).") in body(response)


# --- statements --------------------------------------------------------------------------------

RECIPIENT = "Choose who receives the statement, or enter an email address."


@pytest.mark.parametrize("other", ["a@b.com\r\nBcc: x@y.test", "a@b.com\nBcc: x@y.test",
                                   "a@b.com, c@d.com", "Ann <ann@example.test>", "a@b",
                                   "a@b.invalid", "a\x00@b.com"])
def test_a_statement_recipient_must_be_one_email_address(client, session, bw, other):
    """`a@b.com\\r\\nBcc: x@y` was accepted: then every `jobs run` crashed on it."""
    sign_in_as(client, bw.ann)
    before = count(session, OutboxMessage)
    for path, extra in (("statements", {"from": "2026-10-01", "to": "2026-10-31"}),
                        ("statements/schedules", {"frequency": "monthly"})):
        response = post(client, url(bw.solo, path),
                        {**extra, "recipient": "other", "other": other})
        assert response.status_code == 422, path
        assert field_error("recipient", RECIPIENT) in body(response)
    assert count(session, OutboxMessage) == before
    assert count(session, StatementSchedule) == 0


def test_a_good_statement_recipient_is_kept_lowercased(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements/schedules"),
                    {"frequency": "monthly", "recipient": "other",
                     "other": " Books@Acme.Example "})
    assert response.status_code == 303
    assert session.scalars(select(StatementSchedule.recipient)).all() == ["books@acme.example"]


# --- support requests -------------------------------------------------------------------------

@pytest.mark.parametrize("number_id", ["¹²", "１２", "1_2", "+12", "-1", "99999999999999"])
def test_a_support_request_names_a_number_in_digits_0_to_9(client, session, w, number_id):
    """`¹²` as number_id was a 500."""
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/support/",
                    {"kind": "restore_number", "number_id": number_id})
    assert response.status_code == 422
    assert shown("Choose a released number of this account.") in body(response)
    assert count(session, SupportRequest) == 0


@pytest.mark.parametrize("message,error", [
    ("Please\x00help", "The message can't contain control characters."),
    ("Please\x1b help", "The message can't contain control characters."),
    ("Tab\there", "The message can't contain control characters."),
])
def test_a_support_message_with_control_characters_is_refused(client, session, w, message,
                                                              error):
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/support/",
                    {"kind": "other", "message": message})
    assert response.status_code == 422
    assert field_error("message", error) in body(response)
    assert count(session, SupportRequest) == 0


def test_a_support_message_keeps_its_line_breaks(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/support/",
                    {"kind": "other", "message": "Line one\r\nLine two\r\n"})
    assert response.status_code == 303
    assert session.scalars(select(SupportRequest.message)).all() == ["Line one\nLine two"]


def test_agency_cancel_feedback_with_control_characters_is_refused(client, session, w):
    from tests.web.lifecycle_world import snapshot

    sign_in_as(client, w.avery)
    client.get(f"/accounts/{w.agency.id}/parent/cancel")  # (the review page)
    before = snapshot(session)
    response = post(client, f"/accounts/{w.agency.id}/parent/cancel",
                    {"confirm": "yes", "reason": "Other", "comments": "Bye\x00"})
    assert response.status_code == 422
    assert field_error("comments", "Comments can't contain control characters.") in body(
        response)
    assert snapshot(session) == before


# --- numbers in the URL and the query string -------------------------------------------------

@pytest.mark.parametrize("page", ["４", "²", "1_0", "%2B2"])  # (%2B: a plus sign)
def test_a_page_number_in_other_digits_is_refused(client, w, page):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.agency.id}/sub-accounts?page={page}")
    assert response.status_code == 422
    assert shown("Page must be a whole number.") in body(response)


def test_an_id_in_the_path_is_digits_0_to_9(client, w):
    """Werkzeug's <int:> takes fullwidth digits: /accounts/４/ opened account 4."""
    sign_in_as(client, w.sam)
    assert client.get(f"/accounts/{w.solo.id}/").status_code == 200
    fullwidth = str(w.solo.id).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert client.get(f"/accounts/{fullwidth}/").status_code == 404


# --- the billing link: the agency's request and the customer's public page --------------------

@pytest.fixture
def lw(app, session):
    clock.freeze(link_world.NOW)
    link_world.configure(app)
    return link_world.build(session)


def _remove(client, lw, **data):
    form = {"email": link_world.CUSTOMER, "amount": "25.00", "message": "Hello", **data}
    return post(client, f"/accounts/{lw.agency.id}/sub-accounts/{lw.bayside.id}/billing/remove",
                form)


@pytest.mark.parametrize("data,field,message", [
    ({"message": "Pay\x00now"}, "message", "The message can't contain control characters."),
    ({"email": "pat@example.test\r\nBcc: x@y.test"}, "email",
     "Enter the customer's email address, like name@example.com."),
    ({"email": "Pat <pat@example.test>"}, "email",
     "Enter the customer's email address, like name@example.com."),
    ({"amount": "２５"}, "amount",
     "The starting balance must be written with the digits 0-9, like 25 or 25.00."),
])
def test_a_billing_request_with_bad_text_is_refused(client, session, lw, data, field,
                                                    message):
    sign_in_as(client, lw.avery)
    response = _remove(client, lw, **data)
    assert response.status_code == 422
    assert field_error(field, message) in body(response)
    assert count(session, BillingRequest) == 0


def test_a_billing_request_message_keeps_its_line_breaks(client, session, lw):
    sign_in_as(client, lw.avery)
    assert _remove(client, lw, message="Hi,\r\n\r\nplease pay.").status_code in (200, 303)
    assert session.scalars(select(BillingRequest.message)).all() == ["Hi,\n\nplease pay."]


@pytest.mark.parametrize("fields,field,message", [
    ({"amount": "２５"}, "amount",
     "The payment must be written with the digits 0-9, like 25 or 25.00."),
])
def test_the_public_link_page_refuses_other_digits_and_control_characters(
        app, session, lw, fields, field, message):
    url = link_world.issue(session, lw)
    customer = link_world.Customer(app)
    response = customer.pay(url, **fields)
    assert response.status_code == 422
    assert field_error(field, message) in body(response)
    assert count(session, Charge) == 0
    assert count(session, PaymentMethod) == 0


@pytest.mark.parametrize("fields,field,message", [
    ({"number": "4²42424242424242"}, "number", DIGITS_ONLY.format("The card number")),
    ({"number": VISA_FULLWIDTH}, "number", DIGITS_ONLY.format("The card number")),
    ({"exp_month": "1_2"}, "exp_month", "Choose the expiry month."),
    ({"holder": "Pat\x00Doe"}, "holder",
     "The name can't contain control characters or line breaks."),
])
def test_the_link_payers_card_form_refuses_other_digits_and_control_characters(
        app, client, session, lw, fields, field, message):
    """Issue 16: the link's payer types the card into the processor's form (the sandbox's
    POST /payment_methods), which refuses these beside the field: no method, no charge."""
    from portal.models import SandboxPaymentMethod

    link_world.issue(session, lw)
    form = {**SANDBOX_CARD, **{SANDBOX_PARAMS[k]: v for k, v in fields.items()}}
    response = client.post("/sandbox/v1/payment_methods", data=form)
    assert response.status_code in (400, 402)
    error = response.get_json()["error"]
    assert (error["param"], error["message"]) == (SANDBOX_PARAMS[field], message)
    assert count(session, SandboxPaymentMethod) == 0
    assert count(session, Charge) == 0
    assert count(session, PaymentMethod) == 0


# --- the staff and metering commands read numbers the same way ------------------------------

@pytest.mark.parametrize("args", [["usage", "post", "{id}", "--key", "k1", "--minutes", "１２０"],
                                  ["usage", "post", "{id}", "--key", "k1", "--minutes", "1_20"],
                                  ["usage", "post", "４", "--key", "k1", "--minutes", "1"],
                                  ["support", "resolve", "¹²"]])
def test_commands_take_numbers_in_the_digits_0_to_9(app, session, w, args):
    from portal.models import LedgerEntry

    before = count(session, LedgerEntry)
    result = app.test_cli_runner().invoke(args=[a.format(id=w.solo.id) for a in args])
    assert result.exit_code == 2, result.output
    assert "in the digits 0-9." in result.output
    assert count(session, LedgerEntry) == before


def test_a_support_note_with_control_characters_is_refused(app, session, w):
    from portal.models import SupportStatus
    from portal.services import support

    ticket = support.request(session, w.solo, w.sam, "other", "Help")
    session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["support", "resolve", str(ticket.id), "--note", "Done\x00"])
    assert result.exit_code == 1
    assert "The note can't contain control characters." in result.output
    session.expire_all()
    assert session.get(SupportRequest, ticket.id).status == SupportStatus.OPEN
    result = runner.invoke(args=["support", "resolve", str(ticket.id), "--note",
                                 "Done.\nRefunded."])
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get(SupportRequest, ticket.id).resolution == "Done.\nRefunded."
