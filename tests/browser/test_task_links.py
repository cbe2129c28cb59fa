"""Single-task links (issue 15), walked in the browser.

The agency owner opens Settings → Accounts, the pencil in a customer-billed sub-account's
Billing column, and under "Ask the client" sends "Ask the client to pay" (a too-small amount
first: the reason shows and nothing is sent) and "Ask the client to update their card". The
client reads both emails (on the dev outbox page), opens each link in a browser of their own
(no session): the pay page names the sub-account and the agency and pays the amount (the
balance goes up, a receipt); the card page says what happens to the current Primary, refuses
a bad card number, then saves the card as Primary (the old one becomes the Backup). Each link
then works no more. Screenshots i15-task-*.
"""

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from portal.models import BillingMode
from tests import factories as f
from tests.browser.conftest import (
    TIMEOUT_MS,
    account_url,
    axe,
    click_and_swap,
    click_and_wait,
    goto,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser

OWNER, CLIENT = "owner@example.test", "pat@harbor.test"
AGENCY, SUB = "Northwind Agency", "Harbor Law"
EXP_YEAR = str(datetime.now(UTC).year + 2)
ACCOUNTS = {"url": account_url("sub-accounts"), "heading": f"Accounts · {AGENCY}"}
DONE_PAGE = re.compile(r"/task-link/done/[^/]+$")


@pytest.fixture
def agency(session):
    owner = f.user(session, email=OWNER, name="Olivia Owner")
    agency = f.agency(session, AGENCY, owner=owner)
    sub = f.sub(session, agency, SUB, billing=BillingMode.CUSTOMER)
    f.card(session, sub, "5555555555554444")  # its Primary
    f.funds(session, sub, 10_00)
    session.commit()
    return SimpleNamespace(id=agency.id, sub_id=sub.id)


@pytest.fixture
def client_page(browser: Browser, base_url, app):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def open_dialog(page: Page):
    row = page.locator("#results tbody tr").filter(
        has=page.locator("td:first-child", has_text=re.compile(rf"^{SUB}$")))
    click_and_swap(page, row.get_by_role("link", name=f"Edit billing of {SUB}"))
    dialog = page.get_by_role("dialog", name=f"Billing of {SUB}")
    expect(dialog).to_be_visible()
    return dialog


def emailed_link(page: Page, subject: str) -> str:
    """Open the email on the dev outbox page; the path of the link in it."""
    goto(page, "/dev/outbox", heading="Outbox · development only")
    click_and_wait(page, page.get_by_test_id("outbox").get_by_role("link", name=subject),
                   url=re.compile(r"/dev/outbox/\d+$"), heading=subject)
    expect(page.get_by_test_id("to")).to_have_text(CLIENT)
    link = page.get_by_test_id("text-body").get_by_role("link", name=re.compile("task-link"))
    expect(link).to_have_count(1)
    return urlsplit(link.get_attribute("href")).path


def card_frame(page: Page):
    """The processor's card entry (the sandbox's frame, issue 16)."""
    return page.frame_locator("iframe[title='Secure card entry']")


def fill_card(page: Page, number: str) -> None:
    frame = card_frame(page)
    frame.get_by_label("Name on card").fill("Pat Lee")
    frame.get_by_label("Card number").fill(number)
    frame.get_by_label("Expiry (MM/YY)").fill(f"12/{EXP_YEAR[-2:]}")
    frame.get_by_label("Security code (CVC)").fill("123")


def back_to_accounts(page: Page) -> None:
    click_and_wait(page, page.get_by_role("link", name="Account Portal"), url=account_url(),
                   heading=f"Account Settings · {AGENCY}")
    open_menu(page, "Accounts", AGENCY)


def test_the_agency_asks_the_client_to_pay_and_to_update_the_card(
        page: Page, client_page: Page, agency, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    open_menu(page, "Accounts", AGENCY)

    # The pencil: "Ask the client", a too-small amount first.
    dialog = open_dialog(page)
    expect(dialog.get_by_role("heading", name="Ask the client")).to_be_visible()
    pay_form = dialog.get_by_test_id("ask-pay")
    pay_form.get_by_label("Client's email address").fill(CLIENT)
    pay_form.get_by_label("Amount ($, at least $1.00)").fill("0.50")
    click_and_swap(page, pay_form.get_by_role("button", name="Ask the client to pay"))
    dialog = page.get_by_role("dialog", name=f"Billing of {SUB}")
    amount = dialog.get_by_test_id("ask-pay").get_by_label("Amount ($, at least $1.00)")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#ask_pay_amount-error")).to_have_text(
        "The amount must be at least $1.00.")
    shots(page, screenshot, "i15-task-dialog-error", problems)

    amount.fill("40")
    click_and_wait(page, dialog.get_by_role("button", name="Ask the client to pay"), **ACCOUNTS)
    expect(page.get_by_role("status").filter(has_text="Emailed")).to_have_text(
        f"Emailed {CLIENT} a secure link to pay $40.00 into {SUB}'s balance.")

    dialog = open_dialog(page)
    expect(dialog.get_by_test_id("task-pending-pay")).to_contain_text(
        f"A payment link for $40.00 is pending: emailed to {CLIENT}")
    card_form = dialog.get_by_test_id("ask-card")
    card_form.get_by_label("Client's email address").fill(CLIENT)
    shots(page, screenshot, "i15-task-dialog", problems)
    assert axe(page, "dialog") == []
    click_and_wait(page, card_form.get_by_role("button",
                                               name="Ask the client to update their card"),
                   **ACCOUNTS)
    expect(page.get_by_role("status").filter(has_text="Emailed")).to_contain_text(
        f"Emailed {CLIENT} a secure link to update {SUB}'s card")

    pay_path = emailed_link(page, f"{AGENCY}: pay $40.00 for {SUB}")
    card_path = emailed_link(page, f"{AGENCY}: update the card for {SUB}")

    # The client pays: the page names the sub-account and the agency, and only pays.
    client = client_page
    response = goto(client, pay_path, heading=f"Pay $40.00 for {SUB}")
    assert response.status == 200 and response.headers["referrer-policy"] == "no-referrer"
    expect(client.locator("main")).to_contain_text(
        f"{AGENCY} asks you to pay $40.00 into {SUB}'s balance")
    expect(client.get_by_role("navigation", name="Main")).to_have_count(0)
    shots(client, screenshot, "i15-task-pay-page", problems)
    assert axe(client) == []
    fill_card(client, "4242424242424242")
    click_and_wait(client, client.get_by_role("button", name="Pay $40.00"), url=DONE_PAGE,
                   heading="Thank you: payment made")
    expect(client.get_by_test_id("sub-balance")).to_have_text("$50.00")
    shots(client, screenshot, "i15-task-pay-done", problems)
    click_and_wait(client, client.get_by_test_id("receipt-link"),
                   url=re.compile(r"/task-link/receipt/[^/]+$"))
    expect(client.locator("body")).to_contain_text("$40.00")
    shots(client, screenshot, "i15-task-receipt", problems)

    # The card page: what happens to the current Primary, said before.
    goto(client, card_path, heading=f"Update the card for {SUB}")
    expect(client.get_by_test_id("card-outcome")).to_have_text(
        "It becomes the Primary card. The current Primary, Mastercard ending 4444, becomes "
        "the Backup (charged only when the Primary declines).")
    shots(client, screenshot, "i15-task-card-page", problems)
    fill_card(client, "4242424242424241")  # a typo: the check digit
    # refused in the processor's frame, beside the number: nothing is posted to the portal
    client.get_by_role("button", name="Save card").click()
    expect(card_frame(client).get_by_label("Card number")).to_have_attribute("aria-invalid",
                                                                             "true")
    assert urlsplit(client.url).path == card_path
    shots(client, screenshot, "i15-task-card-error", problems)
    assert axe(client) == []
    fill_card(client, "4242424242424242")
    click_and_wait(client, client.get_by_role("button", name="Save card"), url=DONE_PAGE,
                   heading="Thank you: the card is updated")
    expect(client.get_by_test_id("task-done")).to_contain_text(
        f"Visa ending 4242 is now {SUB}'s Primary card. The Backup is Mastercard ending 4444.")
    shots(client, screenshot, "i15-task-card-done", problems)
    assert axe(client) == []

    # Both links are used up.
    for path in (pay_path, card_path):
        response = goto(client, path, heading="This link was already used")
        assert response.status == 410
    shots(client, screenshot, "i15-task-used", problems)

    # The agency sees it: the balance and nothing pending any more.
    back_to_accounts(page)
    dialog = open_dialog(page)
    expect(dialog).to_contain_text(f"{SUB} pays its usage from its own balance, now $50.00.")
    expect(dialog.get_by_test_id("task-pending-pay")).to_have_count(0)
    expect(dialog.get_by_test_id("task-pending-card")).to_have_count(0)
    assert not problems, problems
