"""Agency vs customer billing (the help article), walked end to end in the browser.

The agency owner opens Settings → Accounts, clicks the pencil in a sub-account's Billing
column and fills Remove from Agency Billing (the customer's email, a starting balance, a
message) → "Email Client". The customer gets the email (read here on the dev outbox page),
opens the secure link in a browser of their own (no session), pays with a card, and the
sub-account shows "Balance from: customer". The link then works no more. The agency moves it
back with the pencil → "Add to Agency Billing": the sub-account's balance goes to the agency's.

The emailed URL starts with the app's EXTERNAL_BASE_URL (http://127.0.0.1:8000 by default).
The session-wide live_server fixture builds its app with no overrides, so the test checks the
emailed URL's origin is that configured one and then opens its path on the live server.

Cards are the sandbox gateway's test numbers: 4242424242424242 approves, 4000000000000002
declines.
"""

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

import billing_links
from billing_links import service as link_service
from portal.mail import notices
from tests import factories as f
from tests.browser.conftest import (
    ARTIFACTS,
    TIMEOUT_MS,
    UNDO_SCREENSHOT,
    account_url,
    click_and_swap,
    click_and_wait,
    goto,
    navigation,
    open_menu,
)

pytestmark = pytest.mark.browser

VISA, DECLINED = "4242424242424242", "4000000000000002"
EXP_YEAR = str(datetime.now(UTC).year + 2)
OWNER = "owner@example.test"
CUSTOMER_EMAIL = "pat@bayside.test"
AGENCY, SUB = "Northwind Agency", "Bayside Dental"
MESSAGE = "Hi Pat,\nfrom next month Bayside Dental pays its own calls. Thanks!"
PAID_PAGE = re.compile(r"/billing-link/paid/[^/]+$")  # the thank-you page: a GET after the POST
RECEIPT = re.compile(r"R-\d{8}")
ACCOUNTS = {"url": account_url("sub-accounts"), "heading": f"Accounts · {AGENCY}"}
PAY_PAGE, DONE = f"Set up billing for {SUB}", "Thank you: billing is set up"


# ----------------------------------------------------------------------------- data

@pytest.fixture
def agency(session):
    """Northwind Agency ($100.00 balance), its owner, and two sub-accounts on agency billing."""
    owner = f.user(session, email=OWNER, name="Olivia Owner")
    agency = f.agency(session, AGENCY, owner=owner)
    f.funds(session, agency, 100_00)
    sub = f.sub(session, agency, SUB)
    f.sub(session, agency, "Harbor Law")
    session.commit()
    return SimpleNamespace(id=agency.id, sub_id=sub.id, account=agency, sub=sub, owner=owner)


@pytest.fixture
def customer_page(browser: Browser, base_url, app):
    """The customer's own browser: a fresh context, no session, no cookies (`app` first, so
    the data outlives the context)."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


# ----------------------------------------------------------------------------- helpers

def flash(page: Page, text: str):
    return page.get_by_role("status").filter(has_text=text)


def open_accounts(page: Page) -> None:
    open_menu(page, "Accounts", AGENCY)


def open_agency_billing(page: Page) -> None:
    open_menu(page, "Billing Settings", AGENCY)


def billing_cell(page: Page, name: str = SUB):
    """The Billing column (the third cell) of the sub-account's row."""
    row = page.locator("#results tbody tr").filter(
        has=page.locator("td:first-child", has_text=re.compile(rf"^{re.escape(name)}$")))
    expect(row).to_have_count(1)
    return row.locator("td").nth(2)


def billing_dialog(page: Page, name: str = SUB):
    return page.get_by_role("dialog", name=f"Billing of {name}")


def open_pencil(page: Page, name: str = SUB):
    click_and_swap(page, billing_cell(page, name).get_by_role(
        "link", name=f"Edit billing of {name}"))
    dialog = billing_dialog(page, name)
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')"), "the pencil's dialog opens as a modal"
    return dialog


def card_frame(page: Page):
    """The processor's card entry (the sandbox's frame, issue 16): the page itself has no
    card field."""
    return page.frame_locator("iframe[title='Secure card entry']")


def fill_card(page: Page, number: str, holder: str = "Pat Lee", month: str = "12",
              year: str = EXP_YEAR, cvc: str = "123") -> None:
    frame = card_frame(page)
    frame.get_by_label("Name on card").fill(holder)
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiry (MM/YY)").fill(f"{month}/{year[-2:]}")
    frame.get_by_label("Security code (CVC)").fill(cvc)


def pay_button(page: Page):
    return page.get_by_role("button", name="Pay and set up billing")


def link_path(url: str, configured_base: str) -> str:
    """The emailed URL on the configured external origin → its path, to open on the live
    server (which listens on another port)."""
    assert url.startswith(configured_base.rstrip("/") + "/billing-link/"), url
    parts = urlsplit(url)
    assert not parts.query and not parts.fragment, url
    return parts.path


SIDEWAYS = """() => {
  const root = document.documentElement, width = root.clientWidth;
  if (root.scrollWidth <= width) return null;
  const past = [...document.querySelectorAll("body *")].filter(
    e => e.getBoundingClientRect().right > width + 0.5);
  const culprit = past.find(e => getComputedStyle(e).position === "absolute") || past[0];
  return `${root.scrollWidth}px wide on a ${width}px screen; past the edge: <${
    culprit.tagName.toLowerCase()} class="${culprit.className}">${culprit.textContent.trim()}`;
}"""


def screenshots(page: Page, name: str, problems: list[str], full_page: bool = True) -> None:
    """test-artifacts/<name>-desktop.png and <name>-phone.png (390px wide); the dialogs are
    shot as the viewport (what the user sees with a modal open). A page wider than the
    screen (it scrolls sideways) goes on `problems`, asserted at the end of the test so the
    rest of the flow still runs."""
    ARTIFACTS.mkdir(exist_ok=True)
    original = page.viewport_size
    for label, size in (("desktop", {"width": 1280, "height": 900}),
                        ("phone", {"width": 390, "height": 844})):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=full_page,
                        animations="disabled")
        page.evaluate(UNDO_SCREENSHOT)  # the style="" Playwright leaves (see conftest)
        sideways = page.evaluate(SIDEWAYS)
        if sideways:
            problems.append(f"{name} ({label}) scrolls sideways: {sideways}")
    page.set_viewport_size(original)


# ----------------------------------------------------------------------------- the flow

def test_remove_from_agency_billing_by_email_link_then_add_back(
        page: Page, customer_page: Page, agency, sign_in, app):
    problems: list[str] = []  # UI defects that don't stop the flow, asserted at the end
    sign_in(OWNER)
    expect(page.get_by_test_id("current-account")).to_have_text(AGENCY)
    open_agency_billing(page)
    expect(page.get_by_test_id("balance")).to_have_text("$100.00")

    # Settings → Accounts: both sub-accounts are paid from the agency's balance.
    open_accounts(page)
    expect(billing_cell(page)).to_contain_text("Balance from: agency")
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text("Balance from: agency")
    expect(billing_cell(page, "Harbor Law")).to_contain_text("Balance from: agency")

    # The pencil: Remove from Agency Billing, the starting balance pre-filled at the minimum.
    dialog = open_pencil(page)
    expect(dialog.get_by_test_id("billing-mode")).to_have_text("agency")
    expect(dialog.get_by_role("heading", name="Remove from Agency Billing")).to_be_visible()
    expect(dialog.get_by_role("heading", name="Add to Agency Billing")).to_have_count(0)
    email = dialog.get_by_label("Customer's email address")
    amount = dialog.get_by_label("Starting balance ($, minimum $25)")
    expect(email).to_be_focused()
    expect(email).to_have_value("")
    expect(amount).to_have_value("25.00")
    screenshots(page, "billing-link-remove-dialog", problems, full_page=False)

    email.fill(CUSTOMER_EMAIL)
    amount.fill("40")
    dialog.get_by_label("Email message").fill(MESSAGE)
    click_and_wait(page, dialog.get_by_role("button", name="Email Client"), **ACCOUNTS)

    # Back on Accounts: still on agency billing, the request pending.
    expect(dialog).to_have_count(0)
    expect(flash(page, "Emailed")).to_have_text(
        f"Emailed {CUSTOMER_EMAIL} a secure link to pay at least $40.00 and take {SUB} off "
        "agency billing. It stays on agency billing until they do.")
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text("Balance from: agency")
    expect(page.get_by_test_id(f"pending-{agency.sub_id}")).to_contain_text(
        f"Pending: link sent to {CUSTOMER_EMAIL} on ")
    expect(billing_cell(page, "Harbor Law")).not_to_contain_text("Pending")
    screenshots(page, "billing-link-accounts-pending", problems)

    # The email, on the dev outbox page: the message, the amount, the link.
    goto(page, "/dev/outbox", heading="Outbox · development only")
    subject = f"{AGENCY}: set up billing for {SUB}"
    mail_row = page.get_by_test_id("outbox").locator("tbody tr").filter(has_text=CUSTOMER_EMAIL)
    expect(mail_row).to_have_count(1)
    click_and_wait(page, mail_row.get_by_role("link", name=subject),
                   url=re.compile(r"/dev/outbox/\d+$"), heading=subject)
    expect(page.get_by_test_id("to")).to_have_text(CUSTOMER_EMAIL)
    body = page.get_by_test_id("text-body")
    expect(body).to_contain_text("Hi Pat,")
    expect(body).to_contain_text("at least $40.00")
    mail_link = body.get_by_role("link", name=re.compile(r"billing-link"))
    expect(mail_link).to_have_count(1)
    url = mail_link.get_attribute("href")
    assert mail_link.inner_text() == url
    path = link_path(url, app.config["EXTERNAL_BASE_URL"])

    # The customer's browser: no session, the agency, the sub-account, the amount asked.
    customer = customer_page
    response = goto(customer, path, heading=PAY_PAGE)
    assert response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in response.headers["cache-control"]
    expect(customer.locator("main")).to_contain_text(
        f"{AGENCY} asks you to pay for {SUB}'s usage from its own balance.")
    expect(customer.get_by_test_id("requested")).to_have_text("$40.00")
    expect(customer.locator("blockquote.agency-message")).to_contain_text("Bayside Dental pays")
    expect(customer.get_by_label("Payment amount ($)")).to_have_value("40.00")
    expect(customer.get_by_role("navigation", name="Main")).to_have_count(0)  # not signed in
    screenshots(customer, "billing-link-customer-page", problems)

    # Less than asked: the message by the amount, the card number and CVC never echoed.
    customer.get_by_label("Payment amount ($)").fill("30")
    fill_card(customer, VISA)
    click_and_wait(customer, pay_button(customer), url=path, heading=PAY_PAGE)  # posted back
    amount_field = customer.get_by_label("Payment amount ($)")
    expect(amount_field).to_have_attribute("aria-invalid", "true")
    message = f"The payment must be at least $40.00, the starting balance {AGENCY} asked for."
    expect(customer.locator("#amount-error")).to_have_text(message)
    expect(amount_field).to_have_accessible_description(message)
    expect(amount_field).to_have_value("30")
    # the card is entered again in the processor's frame: nothing of it came back
    expect(customer.get_by_label("Card number")).to_have_count(0)
    expect(card_frame(customer).get_by_label("Card number")).to_have_value("")
    expect(card_frame(customer).get_by_label("Security code (CVC)")).to_have_value("")
    screenshots(customer, "billing-link-customer-amount-error", problems)

    # Pays $50.00 (more than asked is fine): thank you.
    amount_field.fill("50")
    fill_card(customer, VISA)
    click_and_wait(customer, pay_button(customer), url=PAID_PAGE, heading=DONE)
    done = customer.get_by_test_id("link-done")
    expect(done.get_by_role("heading", level=1)).to_have_text(DONE)
    expect(done).to_contain_text("$50.00 was charged to Visa ending 4242 (receipt R-")
    expect(done).to_contain_text(f"{SUB} now pays its usage from its own balance. {AGENCY} "
                                 "has been told.")
    expect(done).to_contain_text(f"A receipt was emailed to {CUSTOMER_EMAIL}.")
    screenshots(customer, "billing-link-done", problems)

    # The agency's Accounts page (from the outbox, which has no menu: home first):
    # Balance from: customer, nothing pending.
    click_and_wait(page, page.get_by_role("link", name="Account Portal"), url=account_url(),
                   heading=f"Account Settings · {AGENCY}")
    open_accounts(page)
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text(
        "Balance from: customer")
    expect(page.get_by_test_id(f"pending-{agency.sub_id}")).to_have_count(0)
    expect(billing_cell(page, "Harbor Law")).to_contain_text("Balance from: agency")

    # The link, opened again: already used.
    response = goto(customer, path, heading="This link was already used")
    assert response.status == 410
    problem = customer.get_by_test_id("link-problem")
    expect(problem).to_have_attribute("data-reason", "used")
    expect(problem.get_by_role("heading", level=1)).to_have_text("This link was already used")
    expect(problem).to_contain_text("The payment was made and billing is set up.")
    expect(pay_button(customer)).to_have_count(0)
    if "No payment was taken." in problem.inner_text():
        problems.append('the "already used" page says "The payment was made and billing is '
                        'set up." and then "No payment was taken."')
    screenshots(customer, "billing-link-used", problems)

    # The pencil again: Add to Agency Billing, with the article's warning.
    dialog = open_pencil(page)
    expect(dialog.get_by_test_id("billing-mode")).to_have_text("customer")
    expect(dialog).to_contain_text(f"{SUB} pays its usage from its own balance, now $50.00.")
    expect(dialog.get_by_role("heading", name="Add to Agency Billing")).to_be_visible()
    expect(dialog.get_by_role("heading", name="Remove from Agency Billing")).to_have_count(0)
    # issue 14: whose balance moves which way (tests/browser/test_agency_billing_moves.py)
    expect(dialog.get_by_test_id("move-balance")).to_contain_text(
        f"{SUB}'s available balance of $50.00 moves to {AGENCY}'s balance")
    screenshots(page, "billing-link-add-dialog", problems, full_page=False)
    click_and_wait(page, dialog.get_by_role("button", name="Add to Agency Billing"), **ACCOUNTS)

    expect(dialog).to_have_count(0)
    expect(flash(page, "is on agency billing")).to_contain_text(
        f"{SUB} is on agency billing: its usage is paid from {AGENCY}'s balance. Its payment "
        f"methods were removed and its auto recharge is off. {SUB}'s available balance of "
        f"$50.00 moved to {AGENCY}'s balance.")
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text("Balance from: agency")

    # The agency's balance went up by what the customer paid.
    open_agency_billing(page)
    expect(page.get_by_test_id("balance")).to_have_text("$150.00")
    assert page.url.endswith(f"/accounts/{agency.id}/billing/"), page.url

    # The pencil offers Remove from Agency Billing again.
    open_accounts(page)
    dialog = open_pencil(page)
    expect(dialog.get_by_test_id("billing-mode")).to_have_text("agency")
    expect(dialog.get_by_role("heading", name="Remove from Agency Billing")).to_be_visible()

    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------- declined

def test_a_declined_card_shows_the_reason_and_the_link_still_works(
        page: Page, customer_page: Page, agency, session, app, sign_in):
    """The request made through the services (the flow above covers the agency's side)."""
    problems: list[str] = []
    settings = billing_links.settings(app)
    request, url = link_service.request_removal(
        session, settings, agency.account, agency.sub, agency.owner, CUSTOMER_EMAIL, "25", "")
    notices.link_request(session, agency.account, agency.sub, request, url)
    session.commit()
    path = link_path(url, app.config["EXTERNAL_BASE_URL"])

    customer = customer_page
    goto(customer, path, heading=PAY_PAGE)
    expect(customer.get_by_test_id("requested")).to_have_text("$25.00")
    expect(customer.locator("blockquote.agency-message")).to_have_count(0)  # no message
    fill_card(customer, DECLINED)
    click_and_wait(customer, pay_button(customer), url=path, heading=PAY_PAGE)

    alert = customer.get_by_role("alert")
    expect(alert).to_have_text("The payment didn't go through: The card was declined. Nothing "
                               "was charged. Try again, or use another card.")
    expect(card_frame(customer).get_by_label("Card number")).to_have_value("")
    expect(customer.get_by_label("Payment amount ($)")).to_have_value("25.00")
    screenshots(customer, "billing-link-customer-declined", problems)

    # Nothing changed for the agency: still agency billing, still pending.
    sign_in(OWNER)
    open_accounts(page)
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text("Balance from: agency")
    expect(page.get_by_test_id(f"pending-{agency.sub_id}")).to_contain_text(CUSTOMER_EMAIL)

    # A retry on the same link (the form posts back to it): another card goes through.
    assert urlsplit(customer.url).path == path
    fill_card(customer, VISA)
    click_and_wait(customer, pay_button(customer), url=PAID_PAGE, heading=DONE)
    done = customer.get_by_test_id("link-done")
    expect(done.get_by_role("heading", level=1)).to_have_text(DONE)
    expect(done).to_contain_text("$25.00 was charged to Visa ending 4242")

    with navigation(page, **ACCOUNTS):
        page.reload()
    expect(page.get_by_test_id(f"billing-{agency.sub_id}")).to_have_text(
        "Balance from: customer")
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "fail"])
def test_a_card_that_asks_for_authentication_shows_the_challenge_on_the_link_page(
        customer_page: Page, agency, session, app, complete):
    """Issue 16: 4000 0025 0000 3155 asks the payer to authenticate (3-D Secure). The page
    opens the processor's challenge; completing it pays and switches billing, failing it is
    a decline and the same link works again."""
    problems: list[str] = []
    settings = billing_links.settings(app)
    request, url = link_service.request_removal(
        session, settings, agency.account, agency.sub, agency.owner, CUSTOMER_EMAIL, "25", "")
    session.commit()
    path = link_path(url, app.config["EXTERNAL_BASE_URL"])
    customer = customer_page
    goto(customer, path, heading=PAY_PAGE)
    fill_card(customer, "4000002500003155")
    click_and_wait(customer, pay_button(customer), url=path, heading=PAY_PAGE)
    dialog = customer.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    check = customer.frame_locator("iframe[title=\"Your bank's check\"]")
    expect(check.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    if complete:
        screenshots(customer, "i16-billing-link-3ds-challenge", problems, full_page=False)
        with navigation(customer, PAID_PAGE, DONE):
            check.get_by_role("button", name="Complete authentication").click()
        done = customer.get_by_test_id("link-done")
        expect(done).to_contain_text("$25.00 was charged to Visa ending 3155")
        screenshots(customer, "i16-billing-link-3ds-done", problems)
    else:
        with navigation(customer, f"{path}/confirm", PAY_PAGE):
            check.get_by_role("button", name="Fail authentication").click()
        expect(customer.get_by_role("alert").first).to_contain_text(
            "The payment didn't go through")
        screenshots(customer, "i16-billing-link-3ds-failed", problems)
        fill_card(customer, VISA)  # the same link, another card (the form posts to the link)
        click_and_wait(customer, pay_button(customer), url=PAID_PAGE, heading=DONE)
    assert problems == []
