"""Issue 14, items 4, 5 and 7, walked in the browser with screenshots
(test-artifacts/i14-0N-*-desktop.png and -phone.png).

1. The customer pays a billing link: the POST lands on a thank-you page (a GET) that links the
   receipt and says what happens next; back, forward and reload never show the browser's
   "Confirm Form Resubmission"/ERR_CACHE_MISS page and never charge again (item 5).
2. The sub-account now pays its own usage: its Billing Settings and Account Settings say it
   is charged no plan fee (item 7).
3. The agency adds it back to agency billing: the dialog says whose balance moves which way,
   the cards and auto recharge it loses, that its history stays and who is told; its own
   admin and the customer are emailed; its Payment History, receipts and Billing Logs stay
   readable, read-only (item 4). A sub-account with a negative balance: the dialog says the
   agency takes on the debt, with its amount.
"""

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

import billing_links
from billing_links import service as link_service
from portal.mail import notices
from portal.models import BillingMode, Charge, OutboxMessage, Role, SandboxCharge
from tests import factories as f
from tests.browser.conftest import (
    TIMEOUT_MS,
    account_url,
    click_and_swap,
    click_and_wait,
    goto,
    navigation,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser

VISA = "4242424242424242"
EXP_YEAR = str(datetime.now(UTC).year + 2)
OWNER, SUB_ADMIN, CUSTOMER = "owner@example.test", "bea@bayside.test", "pat@bayside.test"
AGENCY, SUB, OTHER = "Northwind Agency", "Bayside Dental", "Harbor Law"
PAID_PAGE = re.compile(r"/billing-link/paid/[^/]+$")
DONE = "Thank you: billing is set up"
ACCOUNTS = {"url": account_url("sub-accounts"), "heading": f"Accounts · {AGENCY}"}


@pytest.fixture
def world(session):
    """Northwind Agency ($100.00), Bayside Dental on agency billing (its own admin bea), and
    Harbor Law on customer billing owing $12.40 (a card, auto recharge on)."""
    owner = f.user(session, email=OWNER, name="Olivia Owner")
    agency = f.agency(session, AGENCY, owner=owner)
    f.funds(session, agency, 100_00)
    sub = f.sub(session, agency, SUB)
    f.member(session, f.user(session, email=SUB_ADMIN, name="Bea"), sub, Role.ADMIN)
    other = f.sub(session, agency, OTHER, billing=BillingMode.CUSTOMER)
    f.card(session, other)
    f.recharge_settings(session, other, "10", "50")
    f.funds(session, other, -1240)
    session.commit()
    return SimpleNamespace(agency=agency, sub=sub, other=other, owner=owner)


@pytest.fixture
def customer_page(browser: Browser, base_url, app):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def emailed_link(session, app, world) -> str:
    """The agency's request, made through the services (test_billing_link.py walks the
    agency's side): the path of the emailed link."""
    request, url = link_service.request_removal(
        session, billing_links.settings(app), world.agency, world.sub, world.owner, CUSTOMER,
        "25", "Please set up billing.")
    notices.link_request(session, world.agency, world.sub, request, url)
    session.commit()
    return urlsplit(url).path


def charged(session) -> tuple[int, int]:
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(Charge)),
            session.scalar(select(func.count()).select_from(SandboxCharge)))


def billing_cell(page: Page, name: str):
    row = page.locator("#results tbody tr").filter(
        has=page.locator("td:first-child", has_text=re.compile(rf"^{re.escape(name)}$")))
    return row.locator("td").nth(2)


def open_pencil(page: Page, name: str):
    click_and_swap(page, billing_cell(page, name).get_by_role(
        "link", name=f"Edit billing of {name}"))
    dialog = page.get_by_role("dialog", name=f"Billing of {name}")
    expect(dialog).to_be_visible()
    return dialog


def test_pay_a_link_then_move_back_to_agency_billing(page: Page, customer_page: Page, world,
                                                      session, app, sign_in, screenshot):
    problems: list[str] = []
    path = emailed_link(session, app, world)

    # ---- item 5: the customer pays; the answer is a thank-you page, a GET
    customer = customer_page
    goto(customer, path, heading=f"Set up billing for {SUB}")
    expect(customer.locator("main")).to_contain_text(
        "This is a one-time payment: auto recharge stays off until you turn it on in Billing "
        "Settings.")
    customer.get_by_label("Payment amount ($)").fill("40")
    card = customer.frame_locator("iframe[title='Secure card entry']")  # the processor's
    card.get_by_label("Name on card").fill("Pat Lee")
    card.get_by_label("Card number").fill(VISA)
    card.get_by_label("Expiry (MM/YY)").fill(f"12/{EXP_YEAR[-2:]}")
    card.get_by_label("Security code (CVC)").fill("123")
    click_and_wait(customer, customer.get_by_role("button", name="Pay and set up billing"),
                   url=PAID_PAGE, heading=DONE)
    thank_you = customer.url
    done = customer.get_by_test_id("link-done")
    expect(done).to_contain_text("$40.00 was charged to Visa ending 4242 (receipt R-")
    steps = customer.get_by_test_id("next-steps")
    expect(steps).to_contain_text(f"{SUB}'s available balance is $40.00.")
    expect(customer.get_by_test_id("auto-recharge-off")).to_contain_text(
        "Off. This was a one-time payment: your card is not charged again unless you turn auto "
        f"recharge on. When usage takes the balance below zero, {SUB} is paused")
    expect(steps).to_contain_text("Settings → Billing Settings")
    # issue 15: the customer who paid is invited as the sub-account's billing user
    expect(customer.get_by_test_id("payer-access").get_by_role(
        "link", name="Set up your sign-in to manage cards, payments and statements")
    ).to_have_attribute("href", re.compile(r"^/invitations/[^/]+$"))
    shots(customer, screenshot, "i14-05-thank-you", problems)
    assert charged(session) == (1, 1)

    # reload: the same page, nothing charged again
    with navigation(customer, url=PAID_PAGE, heading=DONE):
        customer.reload()
    assert charged(session) == (1, 1)

    # the receipt, without signing in
    receipt_link = customer.get_by_test_id("receipt-link")
    click_and_wait(customer, receipt_link, url=re.compile(r"/billing-link/receipt/[^/]+$"),
                   heading="Receipt")
    expect(customer.locator("main")).to_contain_text(SUB)
    expect(customer.locator("main")).to_contain_text("Visa ending 4242")
    expect(customer.get_by_role("link", name="Download PDF")).to_be_visible()
    shots(customer, screenshot, "i14-05-receipt", problems)

    # back to the thank-you page, back again to the (used) link: a page, not ERR_CACHE_MISS
    with navigation(customer, url=thank_you, heading=DONE):
        customer.go_back()
    with navigation(customer, url=path, heading="This link was already used"):
        customer.go_back()
    expect(customer.get_by_test_id("link-problem")).to_contain_text(
        "Opening the link again charged nothing.")
    shots(customer, screenshot, "i14-05-back-to-used-link", problems)
    click_and_wait(customer, customer.get_by_test_id("paid-link"), url=thank_you, heading=DONE)
    with navigation(customer, url=path, heading="This link was already used"):
        customer.go_back()
    with navigation(customer, url=thank_you, heading=DONE):
        customer.go_forward()
    assert charged(session) == (1, 1)

    # the customer's receipt email links the receipt and says what happens next
    session.expire_all()
    receipt_mail = session.scalar(select(OutboxMessage).where(
        OutboxMessage.kind == "receipt", OutboxMessage.to_address == CUSTOMER))
    assert "/billing-link/receipt/" in receipt_mail.text_body
    assert "Auto recharge is off" in receipt_mail.text_body

    # ---- item 7: the sub-account pays its usage; no plan fee is offered or shown
    sign_in(OWNER)
    goto(page, f"/accounts/{world.sub.id}/billing/", heading=f"Billing Settings · {SUB}")
    expect(page.get_by_test_id("no-plan-fee")).to_contain_text(
        f"No plan subscription fee is charged to {SUB}: it is covered by {AGENCY}'s Agency "
        "plan.")
    expect(page.get_by_text("Charge my monthly plan subscription fee")).to_have_count(0)
    expect(page.get_by_test_id("sub-charges")).to_contain_text(
        f"{SUB} is charged for its usage only")
    page.get_by_test_id("no-plan-fee").scroll_into_view_if_needed()
    shots(page, screenshot, "i14-07-sub-billing-settings", problems)
    goto(page, f"/accounts/{world.sub.id}/", heading=f"Account Settings · {SUB}")
    expect(page.get_by_test_id("plan")).to_have_text(
        f"No plan fee: covered by {AGENCY}'s Agency plan")
    expect(page.get_by_test_id("charged-for")).to_contain_text("from its own balance")
    shots(page, screenshot, "i14-07-sub-account-settings", problems)

    # ---- item 4: Add to Agency Billing says what moves and which way
    goto(page, f"/accounts/{world.agency.id}/sub-accounts", **ACCOUNTS)
    dialog = open_pencil(page, SUB)
    expect(dialog.get_by_test_id("move-balance")).to_have_text(re.compile(
        rf"Balance: {SUB}'s available balance of \$40\.00 moves to {AGENCY}'s balance\s+"
        rf"\({AGENCY}: \$100\.00 → \$140\.00; {SUB}: \$0\.00\)\."))
    expect(dialog.get_by_test_id("move-methods")).to_have_text(
        f"Payment methods: Visa ending 4242 (Primary) is removed from {SUB} and no longer "
        "charged.")
    expect(dialog.get_by_test_id("move-recharge")).to_have_text("Auto recharge: already off.")
    expect(dialog.get_by_test_id("move-history")).to_contain_text(
        "Payment History, receipts and Billing Logs stay readable (read-only)")
    expect(dialog.get_by_test_id("move-told")).to_contain_text(f"{SUB_ADMIN}, {CUSTOMER}")
    shots(page, screenshot, "i14-04-add-dialog", problems)
    click_and_wait(page, dialog.get_by_role("button", name="Add to Agency Billing"), **ACCOUNTS)
    flash = page.get_by_role("status").filter(has_text="is on agency billing")
    expect(flash).to_contain_text(f"{SUB}'s available balance of $40.00 moved to {AGENCY}'s "
                                  f"balance. Its payment history, receipts and billing logs "
                                  f"stay readable on its Billing Settings. Emailed {SUB_ADMIN}, "
                                  f"{CUSTOMER}.")
    shots(page, screenshot, "i14-04-accounts-after-move", problems)
    session.expire_all()
    told = sorted(session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "billing_mode")))
    assert told == sorted([SUB_ADMIN, CUSTOMER])

    # a negative balance: the agency takes on the debt, with the amount
    dialog = open_pencil(page, OTHER)
    expect(dialog.get_by_test_id("move-balance")).to_contain_text(
        f"Debt: {OTHER}'s balance is -$12.40. {AGENCY} takes on this debt of $12.40")
    expect(dialog.get_by_test_id("move-recharge")).to_contain_text(
        "turned off (now: below $10.00, recharge up to $50.00)")
    shots(page, screenshot, "i14-04-debt-dialog", problems)
    page.keyboard.press("Escape")

    # the sub-account's own admin: its past payments, receipts and logs, read-only
    page.context.clear_cookies()
    sign_in(SUB_ADMIN)
    open_menu(page, "Billing Settings", SUB)
    past = page.get_by_test_id("past-billing")
    expect(past).to_contain_text("Read-only")
    expect(past.get_by_test_id("payments")).to_contain_text("$40.00")
    main = page.locator("main")
    for control in ("New Credit Card", "Make a Payment", "Save recharge settings"):
        expect(main.get_by_role("button", name=control)).to_have_count(0)
        expect(main.get_by_role("link", name=control)).to_have_count(0)
    shots(page, screenshot, "i14-04-readonly-billing", problems)
    receipt = past.get_by_role("link", name=re.compile(r"^Receipt R-"))
    with page.context.expect_page() as opened:
        receipt.click()
    receipt_page = opened.value
    receipt_page.wait_for_load_state()
    expect(receipt_page.get_by_role("heading", level=1)).to_have_text("Receipt")
    expect(receipt_page.locator("main")).to_contain_text("$40.00")
    shots(receipt_page, screenshot, "i14-04-readonly-receipt", problems)
    receipt_page.close()
    click_and_wait(page, page.get_by_role("link", name="View, search and export the billing "
                                                       "logs"),
                   url=account_url("billing/logs"), heading=re.compile(r"^Billing Logs"))
    expect(page.locator("main")).to_contain_text(f"Balance moved to {AGENCY}")
    shots(page, screenshot, "i14-04-readonly-logs", problems)

    assert not problems, "UI problems along the way:\n" + "\n".join(problems)
