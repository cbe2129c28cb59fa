"""Issue 14, items 3 and 8, walked in Chromium by the labels a user clicks, with screenshots
at 1280 and 390 px (test-artifacts/i14-03-*.png, i14-08-*.png).

3. Balance Auto Recharge Settings: a save that would charge the card now says so first
   ("Saving charges $194.85 to Visa ending 4242 now, to bring the balance to $250.00"):
   Cancel charges and saves nothing; a confirmation that went stale asks again with the
   charge due now; confirming charges exactly what the dialog said. Without JavaScript too.
8. Failing cards: each method's last result and expiry on Payment Methods and in Make a
   Payment's choice; the pencil warns before making a failing card Primary; an expired card
   is refused at entry.
"""

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from portal.models import Cause, LedgerKind, PaymentMethod
from portal.services import charges, ledger, payment_methods
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.browser.conftest import (
    TIMEOUT_MS,
    account_url,
    axe,
    click_and_swap,
    click_and_wait,
    goto,
    htmx_settled,
    shots,
)
from tests.browser.test_billing import (
    BILLING,
    EXP_YEAR,
    balance,
    card,
    fill_card,
    flash,
    methods_table,
    open_billing,
    payment_rows,
    section,
)

pytestmark = pytest.mark.browser

VISA, MASTERCARD, DISCOVER = "4242424242424242", "5555555555554444", "6011111111111117"
NO_FUNDS = "4000000000009995"
TODAY = datetime.now(UTC)
DAY = f"{TODAY:%b %-d}"
LAST_MONTH = (TODAY.year, TODAY.month - 1) if TODAY.month > 1 else (TODAY.year - 1, 12)


def add_card(session, account, number: str):
    """Saved as New Credit Card saves it (the sandbox's form gives the pm id; committed)."""
    return card(session, account, number)


@pytest.fixture
def harbor(session):
    """Harbor Dental (Dana is its admin) with a Visa Primary and $55.15 available."""
    dana = f.user(session, email="dana@example.test", name="Dana Reyes")
    account = f.standalone(session, "Harbor Dental", admin=dana)
    add_card(session, account, VISA)
    ledger.post(session, account, LedgerKind.PAYMENT, 5515, "Opening payment", "open-1",
                Cause.USER)
    session.commit()
    account.dana = dana
    return account


def recharge_form(page: Page, threshold: str, amount: str):
    recharge = section(page, "Balance Auto Recharge Settings")
    recharge.get_by_label("When the balance falls below ($)").fill(threshold)
    recharge.get_by_label("Recharge the balance up to ($)").fill(amount)
    return recharge.get_by_role("button", name="Save recharge settings")


# ----------------------------------------------------------------------------- item 3

def test_a_save_that_charges_asks_first_and_charges_what_it_said(page: Page, session, harbor,
                                                                 sign_in, screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    expect(balance(page)).to_have_text("$55.15")

    # Save: the dialog says what it charges, to which card, and why; nothing happened yet.
    click_and_swap(page, recharge_form(page, "100", "250"))
    dialog = page.get_by_role("dialog", name="Charge $194.85 now?")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    expect(dialog.get_by_test_id("recharge-charge")).to_have_text(
        "Saving charges $194.85 to Visa ending 4242 now, to bring the balance to $250.00.")
    expect(dialog).to_contain_text("The available balance, $55.15, is below the new "
                                   "threshold of $100.00")
    expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()
    shots(page, screenshot, "i14-03-recharge-confirm", problems)
    assert axe(page) == []  # axe-core: no violation (item 12's rules)

    # Cancel: closed, nothing saved, nothing charged.
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(balance(page)).to_have_text("$55.15")
    expect(section(page, "Account Payment History")).to_contain_text("No payments yet.")

    # Asked again; meanwhile usage took $10.00: the confirmation is stale, asked again.
    click_and_swap(page, recharge_form(page, "100", "250"))
    dialog = page.get_by_role("dialog", name="Charge $194.85 now?")
    expect(dialog).to_be_visible()
    ledger.post(session, harbor, LedgerKind.USAGE, -1000, "Usage: 200 minutes", "usage-1",
                Cause.USAGE)
    session.commit()
    click_and_swap(page, dialog.get_by_role("button", name="Save and charge $194.85"))
    dialog = page.get_by_role("dialog", name="Charge $204.85 now?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_have_text(
        "The balance or the Primary method changed since you were asked: this is the charge "
        "now. Nothing was charged or saved yet.")
    expect(dialog.get_by_test_id("recharge-charge")).to_have_text(
        "Saving charges $204.85 to Visa ending 4242 now, to bring the balance to $250.00.")
    shots(page, screenshot, "i14-03-recharge-stale", problems)
    assert axe(page) == []  # axe-core: no violation (item 12's rules)

    # Confirmed: exactly that is charged; the page again, with the flash and the balance.
    click_and_wait(page, dialog.get_by_role("button", name="Save and charge $204.85"),
                   **BILLING)
    expect(flash(page, "Saved")).to_contain_text(re.compile(
        r"The balance was below the threshold: \$204\.85 was charged to Visa ending 4242 "
        r"\(receipt R-\d{8}\)\."))
    expect(balance(page)).to_have_text("$250.00")
    expect(payment_rows(page)).to_have_count(1)
    expect(payment_rows(page).first).to_contain_text("$204.85")
    shots(page, screenshot, "i14-03-recharge-charged", problems)

    # A save that charges nothing goes straight through, in place.
    click_and_swap(page, recharge_form(page, "50", "300"))
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(section(page, "Balance Auto Recharge Settings").get_by_role("status")).to_have_text(
        "Saved: when the balance falls below $50.00, the Primary method is charged to bring "
        "it back up to $300.00.")
    expect(balance(page)).to_have_text("$250.00")
    assert problems == []


@pytest.fixture
def no_js_page(browser: Browser, base_url, app):
    """A page without JavaScript (`app` first, so the data outlives the context)."""
    context = browser.new_context(java_script_enabled=False, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def test_without_javascript_the_confirmation_is_a_page(no_js_page: Page, harbor, screenshot):
    page = no_js_page
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill("dana@example.test")
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"))
    goto(page, f"/accounts/{harbor.id}/billing/", heading="Billing Settings · Harbor Dental")
    click_and_wait(page, recharge_form(page, "100", "250"),
                   url=account_url("billing/auto-recharge"))
    dialog = page.get_by_role("dialog", name="Charge $194.85 now?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("recharge-charge")).to_have_text(
        "Saving charges $194.85 to Visa ending 4242 now, to bring the balance to $250.00.")
    problems: list[str] = []
    shots(page, screenshot, "i14-03-recharge-confirm-no-js", problems)
    click_and_wait(page, dialog.get_by_role("button", name="Save and charge $194.85"),
                   **BILLING)
    expect(flash(page, "Saved")).to_contain_text("$194.85 was charged to Visa ending 4242")
    expect(balance(page)).to_have_text("$250.00")
    assert problems == []


# ----------------------------------------------------------------------------- item 8

@pytest.fixture
def failing(session, harbor):
    """Harbor's Visa paid today; a Visa 9995 declined today (insufficient funds); a
    Mastercard that expires this month; a Discover that expired last month (saved before)."""
    visa = payment_methods.in_use(session, harbor)[0]
    short = add_card(session, harbor, NO_FUNDS)
    soon = add_card(session, harbor, MASTERCARD)
    lapsed = add_card(session, harbor, DISCOVER)
    session.execute(update(PaymentMethod).where(PaymentMethod.id == soon.id)
                    .values(exp_month=TODAY.month, exp_year=TODAY.year))
    session.execute(update(PaymentMethod).where(PaymentMethod.id == lapsed.id)
                    .values(exp_month=LAST_MONTH[1], exp_year=LAST_MONTH[0]))
    session.commit()
    for method in (visa, short):
        charge = charges.pay(session, harbor, harbor.dana, str(method.id), "30",
                             charges.new_form_key())
        session.commit()
        charges.attempt(session, SandboxGateway(), charge)
    return harbor


def test_failing_cards_are_flagged_and_primary_asks_first(page: Page, failing, sign_in,
                                                          screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    rows = methods_table(page).locator("tbody tr")
    expect(rows.locator("td:nth-child(1)")).to_have_text([
        f"Visa ending 4242 Paid {DAY}",
        f"Visa ending 9995 Declined {DAY}: insufficient funds",
        "Mastercard ending 4444",
        "Discover ending 1117"])
    expect(rows.locator("td:nth-child(3)")).to_have_text([
        f"12/{EXP_YEAR}", f"12/{EXP_YEAR}", f"{TODAY.month:02d}/{TODAY.year} Expires this month",
        f"{LAST_MONTH[1]:02d}/{LAST_MONTH[0]} Expired"])
    expect(section(page, "Make a Payment").get_by_label("Pay with").locator("option")
           ).to_have_text(["Visa ending 4242 (Primary)",
                           f"Visa ending 9995 · Declined {DAY}: insufficient funds",
                           "Mastercard ending 4444 · Expires this month",
                           "Discover ending 1117 · Expired"])
    section(page, "Payment Methods").scroll_into_view_if_needed()
    shots(page, screenshot, "i14-08-payment-methods", problems)
    assert axe(page) == []  # axe-core: no violation (item 12's rules)

    # The pencil on the declining card: Primary → Save asks first, saying why.
    click_and_swap(page, methods_table(page).get_by_role("link", name="Edit Visa ending 9995"))
    edit = page.get_by_role("dialog", name="Visa ending 9995")
    expect(edit.get_by_test_id("method-standing")).to_contain_text(
        f"Declined {DAY}: insufficient funds")
    edit.get_by_role("radio", name=re.compile(r"^Primary\b")).check()
    click_and_swap(page, edit.get_by_role("button", name="Save"))
    warning = page.get_by_role("dialog", name="Make Visa ending 9995 Primary?")
    expect(warning.get_by_role("alert")).to_have_text(
        f"Visa ending 9995 may not pay: its last charge was declined on {DAY}: insufficient "
        "funds. Auto recharge and the plan fee charge the Primary first; if it declines, the "
        "Backup is tried, and if there is none or it declines too, the balance is not "
        "recharged.")
    shots(page, screenshot, "i14-08-primary-warning", problems)
    assert axe(page) == []  # axe-core: no violation (item 12's rules)

    # Keep the current Primary: nothing changed.
    warning.get_by_role("link", name="Keep the current Primary").click()
    expect(warning).to_have_count(0)
    expect(rows.locator("td:nth-child(4)").first).to_have_text("Primary")
    expect(rows.locator("td:nth-child(1)").first).to_contain_text("Visa ending 4242")

    # The expired Discover: the same, and this time made Primary anyway.
    click_and_swap(page, methods_table(page).get_by_role("link", name="Edit Discover ending 1117"))
    edit = page.get_by_role("dialog", name="Discover ending 1117")
    edit.get_by_role("radio", name=re.compile(r"^Primary\b")).check()
    click_and_swap(page, edit.get_by_role("button", name="Save"))
    warning = page.get_by_role("dialog", name="Make Discover ending 1117 Primary?")
    expect(warning.get_by_role("alert")).to_contain_text(
        "Discover ending 1117 may not pay: it has expired.")
    # Saved: the section drawn again in place (or, before issue 14's item 10, the page).
    warning.get_by_role("button", name="Make it Primary anyway").click()
    expect(warning).to_have_count(0)
    htmx_settled(page)
    expect(rows.locator("td:nth-child(1)").first).to_have_text("Discover ending 1117")
    expect(rows.locator("td:nth-child(4)").first).to_have_text("Primary")
    assert problems == []


def test_an_expired_card_is_refused_at_entry(page: Page, harbor, sign_in, screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    click_and_swap(page, section(page, "Payment Methods").get_by_role(
        "link", name="New Credit Card"))
    dialog = page.get_by_role("dialog", name="New Credit Card")
    fill_card(dialog, "Dana Reyes", MASTERCARD, month=f"{LAST_MONTH[1]}",
              year=str(LAST_MONTH[0]))
    # issue 16: refused in the processor's frame; the dialog says so, the portal gets nothing
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("[data-card-entry-error]")).to_have_text("This card has expired.")
    frame = dialog.frame_locator("iframe[title='Secure card entry']")
    expect(frame.get_by_label("Expiry (MM/YY)")).to_have_attribute("aria-invalid", "true")
    shots(page, screenshot, "i14-08-expired-refused", problems)
    assert axe(page) == []  # axe-core: no violation (item 12's rules)
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    htmx_settled(page)
    expect(methods_table(page).locator("tbody tr")).to_have_count(1)  # only the Visa
    assert problems == []


def test_the_primary_declined_and_the_backup_paid_tells_the_recipients(
        page: Page, session, harbor, sign_in, screenshot):
    """Auto recharge (as the jobs run it): the Primary declines, the Backup pays. Dana gets
    the receipt and a notice that the Primary needs fixing; the page shows both results."""
    from portal.services import billing, usage

    short = add_card(session, harbor, NO_FUNDS)
    visa = payment_methods.in_use(session, harbor)[0]
    payment_methods.set_role(session, harbor, short.id, "primary", confirmed=True)
    payment_methods.set_role(session, harbor, visa.id, "backup")
    billing.set_auto_recharge(session, harbor, "50", "100")
    recharge = usage.post(session, harbor, {"minutes": 300}, "batch-1").recharge
    session.commit()
    charges.run_recharge(session, SandboxGateway(), recharge)

    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    rows = methods_table(page).locator("tbody tr")
    expect(rows.locator("td:nth-child(1)")).to_have_text([
        f"Visa ending 9995 Declined {DAY}: insufficient funds", f"Visa ending 4242 Paid {DAY}"])
    expect(rows.locator("td:nth-child(4)")).to_have_text(["Primary", "Backup"])

    goto(page, "/dev/outbox", heading="Outbox · development only")
    subject = ("Your Primary card was declined for Harbor Dental: the Backup paid $59.85")
    mails = page.get_by_test_id("outbox").locator("tbody tr")
    expect(mails.filter(has_text="Receipt R-")).to_have_count(1)
    click_and_wait(page, mails.get_by_role("link", name=subject),
                   url=re.compile(r"/dev/outbox/\d+$"), heading=subject)
    expect(page.get_by_test_id("to")).to_have_text("dana@example.test")
    text = page.get_by_test_id("text-body")
    expect(text).to_contain_text("Visa ending 9995: The card was declined: insufficient funds.")
    expect(text).to_contain_text("Your Backup, Visa ending 4242, paid it instead")
    shots(page, screenshot, "i14-08-primary-declined-mail", problems)
    assert problems == []
