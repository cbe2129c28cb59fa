"""Settings → Billing Settings: the page, Payment Methods (new card / ACH dialogs, the pencil,
remove), the settings sections (auto recharge, critical phone, service address, direct
charge, billing-email recipients), full page vs htmx fragment, and who may do what."""

import json
import re

import pytest
from sqlalchemy import select

from portal import clock
from portal.extensions import db
from portal.models import (
    BillingEmailRecipient,
    BillingSettings,
    Charge,
    OutboxMessage,
    PaymentMethod,
)
from portal.sandbox import core
from tests.conftest import HX
from tests.web.billing_world import (
    ADDRESS,
    AGENCY_BILLED,
    AMEX,
    AUTHENTICATE_ONCE,
    BANK_ACCOUNT,
    BILLING_ONLY,
    DECLINED,
    MASTERCARD,
    NOW,
    READ_ONLY,
    REFUSED_AT_ENTRY,
    ROUTING,
    VISA,
    ach_form,
    build,
    card,
    card_form,
    field_error,
    flash,
    form_error,
    form_key,
    methods,
    paid,
    post,
    save_recharge_confirmed,
    section,
    snapshot,
    tag,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    shown,
    table_rows,
    text,
)

SECTIONS = ["Payment Methods", "Balance Auto Recharge Settings", "Make a Payment",
            "Critical Billing Phone Number", "Opt-in Direct Charge for Plan Subscription",
            "Account Payment History", "Billing Logs", "Service Address", "Taxes and Fees",
            "Low-Balance Alert", "Recent alerts", "Where the money goes"]  # issue 17
RECIPIENTS = "Users who Receive Billing Emails"
BUDGET = "Budget"  # issue 17 (B): a sub-account's page, read-only for its own people
CVC_MESSAGE = "The security code is 4 digits on American Express cards and 3 on others."


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def headings(html: str) -> list[str]:
    """The page's section headings, in alphabetical order (the page's order is its own)."""
    return sorted(re.findall(r'<h2 id="[a-z-]+">([^<]+)</h2>', html))


def settings_row(session, account):
    session.expire_all()
    return session.get(BillingSettings, account.id)


# --- the page ----------------------------------------------------------------------------------

def test_a_standalone_accounts_page_has_every_section_but_recipients(client, bw):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo))
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "<h1>Billing Settings <span class=\"muted\">· Acme Plumbing</span></h1>" in html
    assert headings(html) == sorted(SECTIONS)
    assert RECIPIENTS not in html
    assert 'Available balance: <strong data-testid="balance">$0.00</strong>' in html
    assert "No payment methods yet." in html
    assert "Add a payment method first." in section(html, "make-payment")
    assert "No payments yet." in section(html, "payment-history")
    assert (f'<a href="/accounts/{bw.solo.id}/billing/logs">View, search and export the '
            "billing logs</a>") in html


def test_an_agency_page_adds_users_who_receive_billing_emails(client, bw):
    sign_in_as(client, bw.avery)
    html = assert_full_page(client.get(url(bw.agency)))
    assert headings(html) == sorted(SECTIONS + [RECIPIENTS])
    recipients = section(html, "billing-recipients")
    assert "None chosen yet: every owner and admin receives them." in recipients
    # every user of the agency offered; the owner and admin receive by default
    boxes = re.findall(r'<input type="checkbox" name="users" value="(\d+)"( checked)? ?> '
                       r'([^ ]+) <span class="muted small">\((\w+)\)</span>', recipients)
    assert boxes == [(str(bw.ada.id), " checked", "ada@example.test", "admin"),
                     (str(bw.avery.id), " checked", "avery@example.test", "owner"),
                     (str(bw.staff.id), "", "staff@example.test", "user")]


def test_a_customer_billed_sub_has_its_own_page_no_recipients(client, bw):
    sign_in_as(client, bw.hal)
    html = assert_full_page(client.get(url(bw.harbor)))
    assert headings(html) == sorted(SECTIONS + [BUDGET])
    assert "Balance from: agency" not in html


# --- Payment Methods: New Credit Card -----------------------------------------------------------

def test_new_card_dialog_is_a_fragment_for_htmx_and_a_page_otherwise(client, bw):
    sign_in_as(client, bw.ann)
    for path, heading in [("payment-methods/new-card", "New Credit Card"),
                          ("payment-methods/new-ach", "New ACH")]:
        fragment = client.get(url(bw.solo, path), headers=HX)
        assert fragment.status_code == 200
        html = assert_fragment(fragment, "<dialog")
        assert f'<h2 id="method-h">{heading}</h2>' in html
        assert html.strip().startswith('<dialog class="confirm" aria-labelledby="method-h" >')
        page = client.get(url(bw.solo, path))
        assert page.status_code == 200
        full = assert_full_page(page)
        assert '<dialog class="confirm" aria-labelledby="method-h" open>' in full
        assert f'<h2 id="method-h">{heading}</h2>' in full
        assert f'action="/accounts/{bw.solo.id}/billing/{path}"' in full


def test_adding_cards_the_first_is_primary(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "payment-methods/new-card"), card_form())
    assert response.status_code == 303
    assert response.location == url(bw.solo)
    html = body(client.get(response.location))
    assert flash("success", "Visa ending 4242, expires 12/2030 was added as the Primary "
                            "method.") in html
    assert VISA not in html
    response = post(client, url(bw.solo, "payment-methods/new-card"),
                    card_form(MASTERCARD, exp_month=3, exp_year=2029, holder="  Lee   Roe "),
                    headers={**HX, "HX-Target": "dialog-slot"})
    # htmx (issue 14): no reload; the sections that changed, swapped where they are (out of
    # band), the dialog closed, the message in the Payment Methods section
    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers
    assert response.headers["HX-Reswap"] == "none"
    assert json.loads(response.headers["HX-Trigger"]) == {"close-dialog": True}
    html = body(response)
    assert "<html" not in html
    assert '<section class="card" id="payment-methods" aria-labelledby="methods-h" ' \
        'hx-swap-oob="true">' in html
    assert '<section class="card" id="make-payment" aria-labelledby="payment-h" ' \
        'hx-swap-oob="true">' in html
    methods_html = section(html, "payment-methods")
    assert flash("success", "Mastercard ending 4444, expires 03/2029 was added: use the pencil "
                            "to make it Primary or Backup.") in methods_html
    for shown_now in (methods_html, body(client.get(url(bw.solo)))):
        assert [r.cells[:4] for r in table_rows(section(shown_now, "payment-methods"))] == [
            ["Visa ending 4242", "Pat Doe", "12/2030", "Primary"],
            ["Mastercard ending 4444", "Lee Roe", "03/2029", "—"]]
    assert "Mastercard ending 4444</option>" in section(html, "make-payment")
    assert methods(session, bw.solo) == [("Visa", "4242", "primary", False),
                                         ("Mastercard", "4444", "other", False)]


def card_entry_error(html: str) -> str:
    """The message shown beside the processor's card entry."""
    match = re.search(r'<p class="field-error" id="payment_method-error" data-card-entry-error '
                      r'role="alert"( hidden)?>([^<]*)</p>', html)
    assert match, "no card-entry error element"
    return "" if match.group(1) else match.group(2)


def test_the_new_card_form_has_the_processors_frame_and_no_card_field(client, bw):
    """Issue 16: the processor's form is mounted in the page; the portal's form carries only
    the hidden payment_method, and the page's CSP lets the sandbox's frame in."""
    sign_in_as(client, bw.ann)
    for path, kind in [("payment-methods/new-card", "card"),
                       ("payment-methods/new-ach", "us_bank_account")]:
        response = client.get(url(bw.solo, path))
        html = assert_full_page(response)
        assert f'data-card-entry data-kind="{kind}"' in html
        assert 'data-processor-script="/sandbox/v1/sandbox.js"' in html
        assert 'data-processor-factory="SandboxStripe"' in html
        assert '<div class="card-entry" data-card-entry-mount></div>' in html
        assert '<input type="hidden" name="payment_method" value="">' in html
        names = set(re.findall(r'<input[^>]* name="([^"]+)"', html))
        assert names <= {"csrf_token", "payment_method", "q", "next", "dark_mode"}, names
        assert "autocomplete=\"cc-" not in html
        csp = response.headers["Content-Security-Policy"]
        assert "frame-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "frame-src" in client.get(url(bw.solo)).headers["Content-Security-Policy"]
    assert "frame-src" not in client.get(url(bw.solo, "logs")).headers[
        "Content-Security-Policy"]


REFUSALS = [
    pytest.param(lambda: {}, "Enter the card details.", id="no-payment-method"),
    pytest.param(lambda: {"payment_method": "pm_sbx_doesnotexist"},
                 "Those details can't be used any more: enter them again.", id="unknown-pm"),
    pytest.param(lambda: card_form(REFUSED_AT_ENTRY), "The card was declined.",
                 id="0002-at-setup"),
    pytest.param(lambda: ach_form(), "Those details can't be used any more: enter them again.",
                 id="bank-account-on-the-card-form"),
]


@pytest.mark.parametrize("form,message", REFUSALS)
def test_a_card_the_processor_refuses_is_said_beside_the_entry_and_nothing_is_stored(
        client, session, bw, form, message):
    sign_in_as(client, bw.ann)
    form = form()
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "payment-methods/new-card"), form,
                        headers=headers)
        assert response.status_code == 422, headers
        html = (assert_fragment(response, "<dialog") if headers
                else assert_full_page(response))
        assert card_entry_error(html).startswith(shown(message).rstrip(".")), html
        # the form starts again: a new entry, never the refused id
        assert '<input type="hidden" name="payment_method" value="">' in html
        assert snapshot(session) == before


def test_card_numbers_and_cvcs_are_stored_nowhere(client, session, bw):
    """Cards and a bank account added through the dialogs, then every row of every table
    read back: only the last 4 digits are there."""
    sign_in_as(client, bw.ann)
    for form, headers in [(card_form(cvc="987"), {}),
                          (card_form(AMEX, cvc="4321"), HX),
                          (card_form(MASTERCARD, cvc="765"), HX)]:
        response = post(client, url(bw.solo, "payment-methods/new-card"), form,
                        headers=headers)
        assert response.status_code == (200 if headers else 303)
    assert post(client, url(bw.solo, "payment-methods/new-ach"), ach_form()).status_code == 303
    page = body(client.get(url(bw.solo)))
    for secret in (VISA, AMEX, MASTERCARD, BANK_ACCOUNT, ROUTING):
        assert secret not in page
    session.expire_all()
    everything = []
    for table in db.metadata.sorted_tables:
        everything += [" ".join(str(v) for v in row) for row in session.execute(
            select(table)).all()]
    dump = "\n".join(everything)
    for secret in (VISA, AMEX, MASTERCARD, BANK_ACCOUNT, ROUTING):
        assert secret not in dump
    table = db.metadata.tables["payment_methods"]
    rows = session.execute(select(table).where(table.c.account_id == bw.solo.id)).all()
    assert len(rows) == 4
    for row in rows:
        values = [v for v in row if isinstance(v, str)]  # not ids: they could be 987
        for cvc in ("987", "4321", "765"):
            assert cvc not in values
            assert not any(re.search(rf"(?<![0-9a-f]){cvc}(?![0-9a-f])", v) for v in values)
    assert methods(session, bw.solo) == [
        ("Visa", "4242", "primary", False), ("American Express", "0005", "other", False),
        ("Mastercard", "4444", "other", False), ("Bank account", "6789", "other", False)]


def test_a_card_whose_bank_asks_is_saved_after_the_challenge(client, session, bw):
    """3155: the setup asks the holder to authenticate. The dialog hands the processor's
    script the client secret; after the challenge the portal reads the setup's answer."""
    sign_in_as(client, bw.ann)
    for complete in (False, True):
        response = post(client, url(bw.solo, "payment-methods/new-card"),
                        card_form(AUTHENTICATE_ONCE), headers=HX)
        assert response.status_code == 200
        html = assert_fragment(response, "<dialog")
        secret = re.search(r'data-next-action data-client-secret="([^"]+)"', html).group(1)
        assert "_secret_" in secret
        assert methods(session, bw.solo) == []
        intent = secret.split("_secret_")[0]
        assert core.authenticate(intent, secret, complete) is not None
        response = post(client, url(bw.solo, "payment-methods/confirm"), {}, headers=HX)
        if not complete:
            assert response.status_code == 422
            assert shown("couldn't confirm it's you") in card_entry_error(body(response))
            assert methods(session, bw.solo) == []
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {"close-dialog": True}
    assert methods(session, bw.solo) == [("Visa", "3155", "primary", False)]
    # nothing is waiting any more: a second confirm saves nothing
    again = post(client, url(bw.solo, "payment-methods/confirm"), {}, headers=HX)
    assert again.status_code == 422
    assert methods(session, bw.solo) == [("Visa", "3155", "primary", False)]


# --- Payment Methods: New ACH --------------------------------------------------------------------

def test_a_bank_account_waits_for_its_micro_deposits(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "payment-methods/new-ach"), ach_form())
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert "Bank account ending 6789 was added. In 1–2 business days" in html
    assert [r.cells[:4] for r in table_rows(section(html, "payment-methods"))] == [
        ["Bank account ending 6789 Waiting for micro-deposits", "Pat Doe", "—", "—"]]
    method = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == bw.solo.id)).one()
    assert method.verification.value == "pending"
    # it can't be Primary or Backup until verified
    response = post(client, url(bw.solo, f"payment-methods/{method.id}/edit"),
                    {"role": "backup"}, headers=HX)
    assert response.status_code == 422
    verify = url(bw.solo, f"payment-methods/{method.id}/verify")
    for first, second, field, message in [
            ("0.3", "0.45", "first", "Enter the deposit as it shows on the statement"),
            ("0.10", "0.45", "first", "Those amounts don't match"),
    ]:
        response = post(client, verify, {"first": first, "second": second}, headers=HX)
        assert response.status_code == 422
        assert f'<p class="field-error" id="{field}-error">{shown(message)}' in body(response)
    response = post(client, verify, {"first": "0.45", "second": "0.32"}, headers=HX)
    assert response.status_code == 200
    assert methods(session, bw.solo) == [("Bank account", "6789", "primary", False)]
    session.refresh(method)
    assert method.verification.value == "verified"


def test_three_wrong_micro_deposits_fail_the_bank_account(client, session, bw):
    sign_in_as(client, bw.ann)
    post(client, url(bw.solo, "payment-methods/new-ach"), ach_form())
    method = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == bw.solo.id)).one()
    verify = url(bw.solo, f"payment-methods/{method.id}/verify")
    for _ in range(3):
        response = post(client, verify, {"first": "0.01", "second": "0.02"}, headers=HX)
        assert response.status_code == 422
    assert shown("can't be verified") in body(response)
    session.refresh(method)
    assert method.verification.value == "failed"


# --- Payment Methods: the pencil and remove ------------------------------------------------------

def test_dialogs_of_a_method_are_fragments_for_htmx_and_pages_otherwise(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    for path, heading in [(f"payment-methods/{visa.id}/edit", "Visa ending 4242"),
                          (f"payment-methods/{visa.id}/remove", "Remove Visa ending 4242?")]:
        fragment = client.get(url(bw.solo, path), headers=HX)
        assert fragment.status_code == 200
        html = assert_fragment(fragment, "<dialog")
        assert html.split(">", 1)[0].endswith(" ")  # no "open": htmx shows it as a modal
        assert f">{heading}</h2>" in html
        full = assert_full_page(client.get(url(bw.solo, path)))
        assert re.search(r'<dialog class="confirm" aria-labelledby="\w+-h" open>', full)
        assert f">{heading}</h2>" in full


def test_the_pencil_sets_backup_then_primary_and_they_swap(client, session, bw):
    visa = card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    edit = url(bw.solo, f"payment-methods/{mc.id}/edit")

    response = post(client, edit, {"role": "backup"})
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert flash("success", "Mastercard ending 4444 is now the Backup.") in html
    assert methods(session, bw.solo) == [("Visa", "4242", "primary", False),
                                         ("Mastercard", "4444", "backup", False)]
    assert [r.cells[3] for r in table_rows(section(html, "payment-methods"))] == [
        "Primary", "Backup"]

    response = post(client, edit, {"role": "primary"})
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert flash("success", "Mastercard ending 4444 is now the Primary method.") in html
    assert methods(session, bw.solo) == [("Visa", "4242", "backup", False),
                                         ("Mastercard", "4444", "primary", False)]
    assert [r.cells[:4] for r in table_rows(section(html, "payment-methods"))] == [
        ["Mastercard ending 4444", "Pat Doe", "12/2030", "Primary"],
        ["Visa ending 4242", "Pat Doe", "12/2030", "Backup"]]
    assert ">Visa ending 4242 (Backup)</option>" in section(html, "make-payment")

    response = post(client, url(bw.solo, f"payment-methods/{visa.id}/edit"), {"role": "other"})
    assert response.status_code == 303
    assert flash("success", "Visa ending 4242 is now neither Primary nor Backup.") in body(
        client.get(response.location))
    assert methods(session, bw.solo) == [("Visa", "4242", "other", False),
                                         ("Mastercard", "4444", "primary", False)]


@pytest.mark.parametrize("role,message", [
    ("boss", "Choose Primary, Backup or neither."),
    ("", "Choose Primary, Backup or neither."),
    ("other", "Make another method Primary first: the account needs one."),
    ("backup", "Make another method Primary first: the account needs one."),
])
def test_the_pencil_refuses_a_bad_role(client, session, bw, role, message):
    visa = card(session, bw.solo)
    card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = post(client, url(bw.solo, f"payment-methods/{visa.id}/edit"), {"role": role},
                    headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, "<dialog")
    assert field_error("role", message) in html
    assert snapshot(session) == before


def test_removing_the_primary_asks_which_method_becomes_primary(client, session, bw):
    visa = card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, f"payment-methods/{mc.id}/edit"),
                {"role": "backup"}).status_code == 303
    # a payment with the Visa, so its history outlives it
    assert post(client, url(bw.solo, "payments"), {
        "method": str(visa.id), "amount": "30", "form_key": form_key(client, bw.solo),
    }).status_code == 303
    remove = url(bw.solo, f"payment-methods/{visa.id}/remove")

    dialog = body(client.get(remove, headers=HX))
    assert "This is the Primary method. Choose the method that becomes Primary:" in dialog
    assert re.findall(r'<option value="(\d*)">([^<]+)</option>', dialog) == [
        ("", "Choose…"), (str(mc.id), "Mastercard ending 4444 (Backup)")]

    before = snapshot(session)
    response = post(client, remove, {"confirm": "yes"}, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, "<dialog")
    assert field_error("promote", "Choose which method becomes Primary.") in html
    assert 'aria-invalid="true" aria-describedby="promote-error"' in tag(html, "promote")
    for data in ({"promote": str(mc.id)}, {"confirm": "no", "promote": str(mc.id)}):
        response = post(client, remove, data, headers=HX)
        assert response.status_code == 422
        assert form_error("Removing needs the confirmation: nothing was changed.") in body(
            response)
    response = post(client, remove, {"confirm": "yes", "promote": str(visa.id)}, headers=HX)
    assert response.status_code == 422  # it can't promote itself
    assert snapshot(session) == before

    response = post(client, remove, {"confirm": "yes", "promote": str(mc.id)})
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert flash("success", "Visa ending 4242 was removed. Its past payments stay in the "
                            "payment history.") in html
    assert methods(session, bw.solo) == [("Visa", "4242", "other", True),
                                         ("Mastercard", "4444", "primary", False)]
    assert [r.cells[:4] for r in table_rows(section(html, "payment-methods"))] == [
        ["Mastercard ending 4444", "Pat Doe", "12/2030", "Primary"]]
    assert "Visa ending 4242" not in section(html, "make-payment")
    [payment] = table_rows(section(html, "payment-history"))
    assert payment.cells[1:5] == ["Payment", "Visa ending 4242", "$30.00", "Paid"]
    history = body(client.get(url(bw.solo, "payments")))
    assert [r.cells[2] for r in table_rows(history)] == ["Visa ending 4242"]
    # the removed method is gone from the dialogs
    for path in ("edit", "remove"):
        gone = client.get(url(bw.solo, f"payment-methods/{visa.id}/{path}"))
        assert gone.status_code == 404
        assert NOT_FOUND in body(gone)


def test_removing_a_method_that_is_not_primary_needs_no_promote(client, session, bw):
    card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, f"payment-methods/{mc.id}/remove"),
                    {"confirm": "yes"}, headers=HX)
    assert response.status_code == 200  # the sections swapped in place (issue 14)
    shown_now = section(body(response), "payment-methods")
    assert flash("success", "Mastercard ending 4444 was removed. Its past payments stay in "
                            "the payment history.") in shown_now
    assert [r.cells[0] for r in table_rows(shown_now)] == ["Visa ending 4242"]
    assert methods(session, bw.solo) == [("Visa", "4242", "primary", False),
                                         ("Mastercard", "4444", "other", True)]


def test_another_accounts_method_is_not_found(client, session, bw):
    rivals = card(session, bw.rival)
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for path in ("edit", "remove"):
        assert client.get(url(bw.solo, f"payment-methods/{rivals.id}/{path}")).status_code \
            == 404
        response = post(client, url(bw.solo, f"payment-methods/{rivals.id}/{path}"),
                        {"role": "backup", "confirm": "yes"})
        assert response.status_code == 404
        assert NOT_FOUND in body(response)
    assert snapshot(session) == before


# --- Balance Auto Recharge Settings --------------------------------------------------------------

RECHARGE_ERRORS = [
    pytest.param("50", "40", "amount", "The recharge amount must be more than the threshold "
                 "($50.00): the balance is recharged up to it.", id="amount-below-threshold"),
    pytest.param("50", "50.00", "amount", "The recharge amount must be more than the threshold "
                 "($50.00): the balance is recharged up to it.", id="amount-equal-threshold"),
    pytest.param("-10", "100", "threshold", "The threshold must be more than zero.",
                 id="negative-threshold"),
    pytest.param("20", "-100", "amount", "The recharge amount must be more than zero.",
                 id="negative-amount"),
    pytest.param("0", "100", "threshold", "The threshold must be more than zero.",
                 id="zero-threshold"),
    pytest.param("20", "1e3", "amount",
                 "The recharge amount must be a dollar amount, like 25 or 25.00.", id="1e3"),
    pytest.param("20", "10000.01", "amount", "The recharge amount can be at most $10,000.00.",
                 id="over-10000"),
    pytest.param("20", "$10,001", "amount", "The recharge amount can be at most $10,000.00.",
                 id="over-10000-with-comma"),
    pytest.param("20.005", "100", "threshold", "The threshold can't have fractions of a cent: "
                 "use at most two decimals.", id="fraction-of-a-cent"),
    pytest.param("", "100", "threshold", "The threshold is required.", id="no-threshold"),
]


@pytest.mark.parametrize("threshold,amount,field,message", RECHARGE_ERRORS)
def test_bad_recharge_settings_are_refused_beside_the_field(client, session, bw, threshold,
                                                           amount, field, message):
    card(session, bw.solo)  # a Primary: a saved setting would charge it at once
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    form = {"threshold": threshold, "amount": amount}
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "auto-recharge"), form, headers=headers)
        assert response.status_code == 422, headers
        html = (assert_fragment(response, '<section class="card" id="auto-recharge"')
                if headers else section(assert_full_page(response), "auto-recharge"))
        assert field_error(field, message) in html
        assert f'aria-describedby="{field}-error"' in tag(html, field)
        assert f'value="{shown(form[field])}"' in tag(html, field)  # as typed
        assert 'class="flash' not in html
        assert snapshot(session) == before
    assert settings_row(session, bw.solo) is None


def test_recharge_settings_are_saved_and_turned_off(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "auto-recharge"),
                    {"threshold": "20", "amount": "$1,000.50"}, headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="auto-recharge"')
    saved = ("Saved: when the balance falls below $20.00, the Primary method is charged to "
             "bring it back up to $1,000.50.")
    assert flash("success", saved) in html
    assert 'value="20.00"' in tag(html, "threshold")
    assert 'value="1000.50"' in tag(html, "amount")
    assert '<button type="submit" name="enabled" value="off">Turn auto recharge off</button>' \
        in html
    row = settings_row(session, bw.solo)
    assert (row.recharge_threshold_cents, row.recharge_amount_cents) == (2000, 100050)
    assert session.scalars(select(Charge)).all() == []  # no Primary: nothing to charge

    response = post(client, url(bw.solo, "auto-recharge"),
                    {"threshold": "", "amount": "", "enabled": "off"})
    assert response.status_code == 303
    assert flash("success", "Auto recharge is off.") in body(client.get(response.location))
    row = settings_row(session, bw.solo)
    assert (row.recharge_threshold_cents, row.recharge_amount_cents) == (None, None)


def test_the_page_suggests_recharge_settings_from_the_last_30_days(client, session, bw):
    from datetime import timedelta

    from portal.models import Cause, LedgerKind
    from portal.services import ledger

    ledger.post(session, bw.solo, LedgerKind.USAGE, -900, "Usage: 180 minutes", "u1",
                Cause.USAGE, now=NOW - timedelta(days=29))
    ledger.post(session, bw.solo, LedgerKind.USAGE, -600, "Usage: 120 minutes", "u2",
                Cause.USAGE, now=NOW - timedelta(hours=1))
    ledger.post(session, bw.solo, LedgerKind.USAGE, -5000, "Usage: long ago", "u0",
                Cause.USAGE, now=NOW - timedelta(days=31))
    session.commit()
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    suggestion = re.search(r'data-testid="recharge-suggestion">(.*?)</p>', html, re.S).group(1)
    assert text(suggestion) == (
        "Suggestion: your usage in the last 30 days was $15.00. A threshold of $10.00 and a "
        "recharge amount of $25.00 would charge your card about once a month.")


def test_saving_a_threshold_above_the_balance_recharges_at_once(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    # Issue 14: the save says what it charges and asks first (tests/web/test_recharge_confirm.py)
    response = save_recharge_confirmed(client, bw.solo, {"threshold": "20", "amount": "100"})
    assert response.status_code == 303
    [charge] = session.scalars(select(Charge)).all()
    assert (charge.method_id, charge.amount_cents, charge.status.value) == (
        visa.id, 10000, "succeeded")
    html = body(client.get(response.location))
    assert flash("success", "Saved: when the balance falls below $20.00, the Primary method is "
                 "charged to bring it back up to $100.00. The balance was below the threshold: "
                 f"$100.00 was charged to Visa ending 4242 (receipt {charge.receipt_number}).") \
        in html
    assert 'Available balance: <strong data-testid="balance">$100.00</strong>' in html
    [row] = table_rows(section(html, "payment-history"))
    assert row.cells[1:5] == ["Auto recharge", "Visa ending 4242", "$100.00", "Paid"]


def test_a_declined_primary_falls_back_to_the_backup(client, session, bw):
    declined = card(session, bw.solo, DECLINED)
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, f"payment-methods/{mc.id}/edit"),
                {"role": "backup"}).status_code == 303
    response = save_recharge_confirmed(client, bw.solo, {"threshold": "20", "amount": "100"},
                                       headers=HX)
    # Money moved: the whole page again (the balance and the history changed too).
    assert (response.status_code, response.headers["HX-Redirect"]) == (204, url(bw.solo))
    first, second = session.scalars(select(Charge).order_by(Charge.id)).all()
    assert (first.method_id, first.status.value) == (declined.id, "failed")
    assert (second.method_id, second.status.value) == (mc.id, "succeeded")
    assert (f"The balance was below the threshold: $100.00 was charged to Mastercard ending "
            f"4444 (receipt {second.receipt_number}).") in body(client.get(url(bw.solo)))
    # The receipt, and (issue 14) the notice that the Primary declined.
    assert session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all() == [
        "receipt", "primary_declined"]


def test_when_every_card_declines_the_recipients_are_told(client, session, bw):
    card(session, bw.solo, DECLINED)
    sign_in_as(client, bw.ann)
    response = save_recharge_confirmed(client, bw.solo, {"threshold": "20", "amount": "100"},
                                       headers=HX)
    assert (response.status_code, response.headers["HX-Redirect"]) == (204, url(bw.solo))
    html = body(client.get(url(bw.solo)))
    assert ("The balance was below the threshold: the charge failed: The card was declined."
            in html)
    assert 'data-testid="balance">$0.00<' in html
    messages = session.execute(select(OutboxMessage.kind, OutboxMessage.to_address)).all()
    assert messages == [("decline", "ann@example.test")]


# --- Critical Billing Phone Number ---------------------------------------------------------------

@pytest.mark.parametrize("typed,stored", [
    ("+1 415 555 0134", "+14155550134"),
    ("(415) 555-0134", "+14155550134"),
    ("415.555.0134", "+14155550134"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_the_critical_phone_is_saved_in_e164(client, session, bw, typed, stored):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "critical-phone"), {"phone": typed}, headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="critical-phone"')
    assert flash("success", f"Critical billing texts go to {stored}.") in html
    assert f'value="{stored}"' in tag(html, "phone")
    assert settings_row(session, bw.solo).critical_phone == stored


def test_an_empty_phone_removes_it(client, session, bw):
    sign_in_as(client, bw.ann)
    post(client, url(bw.solo, "critical-phone"), {"phone": "+14155550134"})
    response = post(client, url(bw.solo, "critical-phone"), {"phone": "  "})
    assert response.status_code == 303
    assert flash("success", "The critical billing phone number was removed.") in body(
        client.get(response.location))
    assert settings_row(session, bw.solo).critical_phone == ""


@pytest.mark.parametrize("typed", ["12345", "+1 415 555 013", "+1 415 555 01345", "4155550134x",
                                   "+0 415 555 0134", "0044 20 7946 0958", "call me"])
def test_a_phone_not_in_e164_is_refused(client, session, bw, typed):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "critical-phone"), {"phone": typed},
                        headers=headers)
        assert response.status_code == 422
        html = (assert_fragment(response, '<section class="card" id="critical-phone"')
                if headers else section(assert_full_page(response), "critical-phone"))
        assert field_error("phone", "Enter the number with its country code, like "
                                    "+1 415 555 0134 (E.164).") in html
        assert f'value="{shown(typed)}"' in tag(html, "phone")
        assert snapshot(session) == before


# --- Service Address -----------------------------------------------------------------------------

def test_the_service_address_is_saved(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "service-address"),
                    {**ADDRESS, "region": "ca", "postal_code": "94107-1234",
                     "city": "  San   Francisco "})
    assert response.status_code == 303
    html = body(client.get(response.location))
    assert flash("success", "The service address is saved.") in html
    assert '<option selected>CA</option>' in section(html, "service-address")
    row = settings_row(session, bw.solo)
    assert (row.address_line1, row.address_line2, row.city, row.region, row.postal_code,
            row.country) == ("1 Market St", "Suite 400", "San Francisco", "CA", "94107-1234",
                             "US")


STREET, CITY = "Enter the street address.", "Enter the city."
STATE = "Choose the state (we bill in US dollars, for US addresses)."
ZIP = "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234."


@pytest.mark.parametrize("change,expected", [
    pytest.param({"address_line1": " "}, {"address_line1": STREET}, id="no-street"),
    pytest.param({"city": ""}, {"city": CITY}, id="no-city"),
    pytest.param({"region": ""}, {"region": STATE}, id="no-state"),
    pytest.param({"region": "ZZ"}, {"region": STATE}, id="bad-state"),
    pytest.param({"region": "Ontario"}, {"region": STATE}, id="not-a-us-state"),
    pytest.param({"postal_code": "9410"}, {"postal_code": ZIP}, id="4-digit-zip"),
    pytest.param({"postal_code": "94105-12"}, {"postal_code": ZIP}, id="bad-zip-plus-4"),
    pytest.param({"postal_code": "SW1A 1AA"}, {"postal_code": ZIP}, id="uk-postcode"),
    pytest.param({"address_line1": "x" * 121}, {"address_line1": "At most 120 characters."},
                 id="street-too-long"),
    pytest.param({f: "" for f in ADDRESS},
                 {"address_line1": STREET, "city": CITY, "region": STATE, "postal_code": ZIP},
                 id="all-missing"),
])
def test_a_bad_service_address_is_refused_beside_each_field(client, session, bw, change,
                                                            expected):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = post(client, url(bw.solo, "service-address"), {**ADDRESS, **change}, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<section class="card" id="service-address"')
    errors = dict(re.findall(r'<p class="field-error" id="(\w+)-error">([^<]*)</p>', html))
    assert errors == {field: shown(message) for field, message in expected.items()}
    assert snapshot(session) == before


# --- Opt-in Direct Charge for Plan Subscription --------------------------------------------------

def test_direct_charge_is_turned_on_and_off(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "direct-charge"), {"direct_charge": "on"}, headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="direct-charge"')
    assert flash("success", "The plan subscription fee will be charged to your Primary "
                            "method.") in html
    assert '<input type="checkbox" name="direct_charge" checked>' in html
    assert "(Pro: $179.00)" in html
    assert settings_row(session, bw.solo).direct_charge is True
    response = post(client, url(bw.solo, "direct-charge"), {})
    assert response.status_code == 303
    assert flash("success", "The plan subscription fee will be paid from the available "
                            "balance.") in body(client.get(response.location))
    assert settings_row(session, bw.solo).direct_charge is False


# --- full page vs fragment, for every section ----------------------------------------------------

SECTION_POSTS = [
    ("auto-recharge", "auto-recharge", {"threshold": "20", "amount": "100"},
     "Saved: when the balance falls below $20.00, the Primary method is charged to bring it "
     "back up to $100.00."),
    ("critical-phone", "critical-phone", {"phone": "+14155550134"},
     "Critical billing texts go to +14155550134."),
    ("service-address", "service-address", ADDRESS, "The service address is saved."),
    ("direct-charge", "direct-charge", {"direct_charge": "on"},
     "The plan subscription fee will be charged to your Primary method."),
]


@pytest.mark.parametrize("path,section_id,data,message", SECTION_POSTS)
def test_a_section_post_answers_its_fragment_for_htmx_and_redirects_otherwise(
        client, session, bw, path, section_id, data, message):
    sign_in_as(client, bw.ann)
    partial = post(client, url(bw.solo, path), data, headers=HX)
    assert partial.status_code == 200
    html = assert_fragment(partial, f'<section class="card" id="{section_id}"')
    assert html.count("<section") == 1
    assert flash("success", message) in html
    assert "HX-Request" in partial.vary

    full = post(client, url(bw.solo, path), data)
    assert full.status_code == 303
    assert full.location == url(bw.solo)
    page = client.get(full.location)
    html = assert_full_page(page)
    assert html.count(flash("success", message)) == 1  # in the page's flash area only
    assert flash("success", message) not in section(html, section_id)
    assert flash("success", message) not in body(client.get(url(bw.solo)))  # shown once


def test_the_billing_page_varies_on_hx_request(client, bw):
    sign_in_as(client, bw.ann)
    for headers in ({}, HX):
        response = client.get(url(bw.solo), headers=headers)
        assert response.status_code == 200
        assert "HX-Request" in response.vary


# --- Users who Receive Billing Emails ------------------------------------------------------------

def recipients_of(session, account):
    session.expire_all()
    return sorted(session.scalars(select(BillingEmailRecipient.user_id).where(
        BillingEmailRecipient.account_id == account.id)).all())


def test_recipients_are_saved(client, session, bw):
    sign_in_as(client, bw.avery)
    response = post(client, url(bw.agency, "recipients"), {"users": [str(bw.staff.id),
                                                                    str(bw.ada.id)]},
                    headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="billing-recipients"')
    assert flash("success", "Saved: these users receive billing emails.") in html
    assert "None chosen yet" not in html
    assert re.findall(r'value="(\d+)" checked', html) == [str(bw.ada.id), str(bw.staff.id)]
    assert recipients_of(session, bw.agency) == sorted([bw.staff.id, bw.ada.id])


@pytest.mark.parametrize("users,message", [
    pytest.param([], "Choose at least one user: someone must receive receipts and decline "
                     "notices.", id="none"),
    pytest.param(["rex"], "Choose among this account's users.", id="another-accounts-user"),
    pytest.param(["ada", "rex"], "Choose among this account's users.", id="one-foreign"),
    pytest.param(["bea"], "Choose among this account's users.", id="a-sub-accounts-user"),
    pytest.param(["abc"], "Choose among this account's users.", id="not-an-id"),
    pytest.param(["99999999999"], "Choose among this account's users.", id="huge-id"),
])
def test_bad_recipients_are_refused(client, session, bw, users, message):
    sign_in_as(client, bw.avery)
    post(client, url(bw.agency, "recipients"), {"users": [str(bw.ada.id)]})
    before = snapshot(session)
    ids = [str(getattr(bw, u).id) if hasattr(bw, u) else u for u in users]
    response = post(client, url(bw.agency, "recipients"), {"users": ids}, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<section class="card" id="billing-recipients"')
    assert field_error("users", message) in html
    assert 'aria-invalid="true" aria-describedby="users-error"' in html
    assert snapshot(session) == before
    assert recipients_of(session, bw.agency) == [bw.ada.id]


def test_the_chosen_recipients_get_the_next_receipt(client, session, bw):
    visa = card(session, bw.agency)
    sign_in_as(client, bw.avery)

    def pay():
        response = post(client, url(bw.agency, "payments"), {
            "method": str(visa.id), "amount": "25", "form_key": form_key(client, bw.agency)})
        assert response.status_code == 303
        [charge] = session.scalars(select(Charge).order_by(Charge.id.desc()).limit(1)).all()
        session.expire_all()
        return sorted(session.scalars(select(OutboxMessage.to_address).where(
            OutboxMessage.subject.startswith(f"Receipt {charge.receipt_number}:"))).all())

    assert pay() == ["ada@example.test", "avery@example.test"]  # none chosen: owners, admins
    assert post(client, url(bw.agency, "recipients"),
                {"users": [str(bw.staff.id)]}).status_code == 303
    # the chosen recipient, and Avery, who made the payment (the person who paid always
    # gets the receipt)
    assert pay() == ["avery@example.test", "staff@example.test"]
    sign_in_as(client, bw.ada)
    assert pay() == ["ada@example.test", "staff@example.test"]
    sign_in_as(client, bw.avery)
    assert post(client, url(bw.agency, "recipients"),
                {"users": [str(bw.staff.id), str(bw.avery.id)]}).status_code == 303
    assert pay() == ["avery@example.test", "staff@example.test"]


# --- who may do what ------------------------------------------------------------------------------

def billing_posts(method_id: int, other_id: int, user_id: int) -> list[tuple[str, dict]]:
    """Every state-changing billing request, with a form that works for the admin."""
    return [
        ("payment-methods/new-card", card_form()),
        ("payment-methods/new-ach", ach_form()),
        (f"payment-methods/{other_id}/edit", {"role": "backup"}),
        (f"payment-methods/{other_id}/remove", {"confirm": "yes"}),
        # Confirmed (issue 14): on a zero balance, saving these charges $100.00 to the Primary.
        ("auto-recharge", {"threshold": "20", "amount": "100", "confirm": "yes",
                           "charge": f"10000:{method_id}"}),
        ("critical-phone", {"phone": "+14155550134"}),
        ("service-address", ADDRESS),
        ("direct-charge", {"direct_charge": "on"}),
        ("recipients", {"users": str(user_id)}),
        ("payments", {"method": str(method_id), "amount": "25", "form_key": "ab" * 16}),
        ("low-balance-alert", {"low_balance": "20"}),  # issue 17
    ]


@pytest.fixture
def solo_posts(session, bw):
    visa = card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    return billing_posts(visa.id, mc.id, bw.ann.id)


BILLING_GETS = ["", "payment-methods/new-card", "payment-methods/new-ach", "payments", "logs",
                "logs.csv"]


def test_each_billing_post_works_for_the_admin(client, session, bw, solo_posts):
    """The baseline for the refusals below: with everything right, each one changes
    something."""
    sign_in_as(client, bw.ann)
    for path, data in solo_posts:
        before = snapshot(session)
        response = post(client, url(bw.solo, path), data)
        if path == "recipients":  # an agency's section: a standalone account has none
            assert response.status_code == 404
            assert snapshot(session) == before
            continue
        assert response.status_code == 303, (path, body(response))
        assert snapshot(session) != before, path


def test_each_billing_post_needs_the_csrf_token(client, session, bw, solo_posts):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for path, data in solo_posts:
        for headers in ({}, HX):
            response = post(client, url(bw.solo, path), data, csrf=False, headers=headers)
            assert response.status_code == 400, path
            assert "The form was out of date. Go back, reload the page and try again." in body(
                response)
            response = post(client, url(bw.solo, path), {**data, "csrf_token": "forged"},
                            csrf=False)
            assert response.status_code == 400, path
    assert snapshot(session) == before


def test_a_role_user_is_refused_every_billing_page_and_post(client, session, bw, solo_posts):
    sign_in_as(client, bw.vic)
    for path in BILLING_GETS + [p for p, _ in solo_posts if "/" in p and "new" not in p]:
        response = client.get(url(bw.solo, path))
        assert response.status_code == 403, path
        assert shown(BILLING_ONLY) in body(response), path
        assert "Content-Disposition" not in response.headers
    before = snapshot(session)
    for path, data in solo_posts:
        response = post(client, url(bw.solo, path), data)
        assert response.status_code == 403, path
        assert shown(BILLING_ONLY) in body(response), path
    assert snapshot(session) == before


def test_another_tenant_gets_404_everywhere(client, session, bw, solo_posts):
    sign_in_as(client, bw.rex)
    for path in BILLING_GETS:
        for headers in ({}, HX):
            response = client.get(url(bw.solo, path), headers=headers)
            assert response.status_code == 404, path
            assert NOT_FOUND in body(response)
            assert "Acme Plumbing" not in body(response)
    before = snapshot(session)
    for path, data in solo_posts:
        response = post(client, url(bw.solo, path), data)
        assert response.status_code == 404, path
        assert "Acme Plumbing" not in body(response)
    assert snapshot(session) == before


def test_signed_out_the_billing_pages_go_to_sign_in(client, session, bw, solo_posts):
    for path in BILLING_GETS:
        response = client.get(url(bw.solo, path))
        assert response.status_code == 302, path
        assert login_location(response) == ("/login", url(bw.solo, path))
        partial = client.get(url(bw.solo, path), headers=HX)
        assert partial.status_code == 401, path
        assert "Location" not in partial.headers
        assert login_location(partial) == ("/login", url(bw.solo, path))
        assert body(partial) == ""
    before = snapshot(session)
    for path, data in solo_posts:
        response = post(client, url(bw.solo, path), data)
        assert response.status_code == 302, path
        assert login_location(response)[0] == "/login"
        partial = post(client, url(bw.solo, path), data, headers=HX)
        assert partial.status_code == 401, path
        assert login_location(partial)[0] == "/login"
    assert snapshot(session) == before


def test_a_canceled_account_is_read_only(client, session, bw):
    sign_in_as(client, bw.ann)
    for path in ("", f"payment-methods/{bw.closed_visa.id}/edit", "payments", "logs",
                 "logs.csv"):
        assert client.get(url(bw.closed, path)).status_code == 200, path
    html = body(client.get(url(bw.closed)))
    assert "Visa ending 4242" in section(html, "payment-methods")
    before = snapshot(session)
    for path, data in billing_posts(bw.closed_visa.id, bw.closed_visa.id, bw.ann.id):
        for headers in ({}, HX):
            response = post(client, url(bw.closed, path), data, headers=headers)
            assert response.status_code == 403, path
            assert shown(READ_ONLY.format("Closed Shop")) in body(response), path
    assert snapshot(session) == before


def test_a_sub_on_agency_billing_shows_balance_from_agency(client, bw):
    sign_in_as(client, bw.bea)  # the sub-account's own admin: no way to the agency
    html = assert_full_page(client.get(url(bw.bayside)))
    assert ("Balance from: agency. Bayside Dental's usage is paid from Northwind Agency's "
            "balance: it has no payment methods or auto recharge of its own now."
            ) in text(html)
    assert url(bw.agency) not in html
    # issue 14: its own past payments and billing logs stay readable, read-only; nothing
    # to edit (tests/web/test_agency_billing_moves.py walks them)
    readable = ("Account Payment History", "Billing Logs")
    for heading in SECTIONS:
        assert (f">{heading}</h2>" in html) == (heading in readable), heading
    assert f'action="{url(bw.bayside)}' not in html
    sign_in_as(client, bw.avery)  # the agency's owner: a link to the agency's page
    html = body(client.get(url(bw.bayside)))
    assert "Balance from: agency." in text(html)
    assert (f'Manage them on <a href="{url(bw.agency)}">Northwind Agency\'s Billing '
            "Settings</a>.") in html


@pytest.mark.parametrize("who", ["bea", "avery"])
def test_billing_of_a_sub_on_agency_billing_is_refused(client, session, bw, who):
    sign_in_as(client, getattr(bw, who))
    message = shown(AGENCY_BILLED.format("Bayside Dental"))
    # issue 14: its payment history and billing logs are readable (read-only); the forms of
    # its own billing are refused
    for path in BILLING_GETS[1:]:
        response = client.get(url(bw.bayside, path))
        if path in ("payments", "logs", "logs.csv"):
            assert response.status_code == 200, path
            continue
        assert response.status_code == 403, path
        assert message in body(response), path
    before = snapshot(session)
    for path, data in billing_posts(1, 2, bw.bea.id):
        for headers in ({}, HX):
            response = post(client, url(bw.bayside, path), data, headers=headers)
            if path == "recipients":  # an agency's section only
                assert response.status_code == 404
                continue
            assert response.status_code == 403, path
            assert message in body(response), path
    assert snapshot(session) == before


def test_bad_input_on_a_sub_accounts_full_page_is_a_422_with_its_header(client, session, bw):
    """The refusal rolls the transaction back (expiring the sub-account and its agency); the
    full page's header still names the agency."""
    card(session, bw.harbor)
    sign_in_as(client, bw.ada)
    with client.session_transaction() as s:
        s["several_accounts"] = True  # as signing in sets it for a user who reaches several
    before = snapshot(session)
    for path, data, field in [("critical-phone", {"phone": "12"}, "phone"),
                              ("auto-recharge", {"threshold": "9", "amount": "1"}, "amount"),
                              ("payments", {"method": "", "amount": "5",
                                            "form_key": "ab" * 16}, "method")]:
        response = post(client, url(bw.harbor, path), data)
        assert response.status_code == 422, path
        html = assert_full_page(response)
        assert f'<p class="field-error" id="{field}-error">' in html, path
        assert '<span class="muted small">in Northwind Agency</span>' in html, path
    assert snapshot(session) == before


def test_an_agency_admin_manages_a_customer_billed_subs_billing(client, session, bw):
    sign_in_as(client, bw.ada)
    html = assert_full_page(client.get(url(bw.harbor)))
    assert "Billing Settings <span class=\"muted\">· Harbor Law</span>" in html
    assert headings(html) == sorted(SECTIONS + [BUDGET])
    response = post(client, url(bw.harbor, "payment-methods/new-card"), card_form())
    assert response.status_code == 303
    assert response.location == url(bw.harbor)
    assert methods(session, bw.harbor) == [("Visa", "4242", "primary", False)]
    assert methods(session, bw.agency) == []


def test_a_sub_accounts_admin_never_sees_the_agencys_billing(client, session, bw):
    visa = card(session, bw.agency)
    charge = paid(session, bw.agency, visa)
    sign_in_as(client, bw.bea)
    for path in BILLING_GETS + [f"payment-methods/{visa.id}/edit", f"payments/{charge.id}"]:
        for headers in ({}, HX):
            response = client.get(url(bw.agency, path), headers=headers)
            assert response.status_code == 404, path
            assert "Northwind Agency" not in body(response), path
    before = snapshot(session)
    for path, data in billing_posts(visa.id, visa.id, bw.bea.id):
        assert post(client, url(bw.agency, path), data).status_code == 404, path
    assert snapshot(session) == before
    sign_in_as(client, bw.hal)  # nor a customer-billed sibling's admin
    assert client.get(url(bw.agency)).status_code == 404
    assert client.get(url(bw.bayside)).status_code == 404


def test_a_bank_account_is_saved_with_the_payers_debit_authorization(app, client, bw,
                                                                     monkeypatch):
    """New ACH hands the processor the payer's authorization (address and browser, what
    Stripe's mandate_data takes) with the bank account's setup; a card's setup has none."""
    gateway = app.extensions["payment_gateway"]
    real, given = gateway.save_method, []

    def save_method(customer, method, kind, key, mandate=None):
        given.append((kind, mandate))
        return real(customer, method, kind, key, mandate)

    monkeypatch.setattr(gateway, "save_method", save_method)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "payment-methods/new-ach"), ach_form(),
                headers={"User-Agent": "Browser/1.0"}).status_code == 303
    assert post(client, url(bw.solo, "payment-methods/new-card"),
                card_form()).status_code == 303
    assert [(kind, mandate and (mandate.ip, mandate.user_agent)) for kind, mandate in given] \
        == [("ach", ("127.0.0.1", "Browser/1.0")), ("card", None)]
