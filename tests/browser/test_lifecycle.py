"""Canceling an Account (the help article), walked by its labels: close and reactivate a
standalone account; close a sub-account from its dialog (with the mouse and the keyboard);
find it under Canceled sub-accounts and reactivate it; restore released numbers.

The live server runs on the real clock, so the factories store times relative to real now
(released 3 days ago, canceled 10 days ago) and dates shown for "now" are checked against
either side of the action.
"""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import (
    ARTIFACTS,
    account_url,
    click_and_swap,
    click_and_wait,
    htmx_swap,
    navigation,
    open_menu,
)

pytestmark = pytest.mark.browser


def long_date(moment: datetime) -> str:
    """The portal's dates in sentences: June 1, 2026."""
    return f"{moment:%B} {moment.day}, {moment.year}"


def either_date(before: datetime, after: datetime, shift: timedelta = timedelta()):
    """A date the server stamped between `before` and `after` (around midnight UTC either
    day is right), shifted by `shift`: a pattern for to_contain_text."""
    dates = {long_date(before + shift), long_date(after + shift)}
    return re.compile("(?:" + "|".join(re.escape(d) for d in dates) + ")")


SETTINGS = account_url()
NUMBERS = account_url("numbers/")
RELEASED = account_url("numbers/released")


def status_section(page: Page):
    return page.get_by_role("region", name="Status")


def on_settings(name: str) -> dict:
    """A navigation's landing: the account's Account Settings (after a post to Status)."""
    return {"url": SETTINGS, "heading": f"Account Settings · {name}"}


def on_released(name: str) -> dict:
    return {"url": RELEASED, "heading": f"Released Numbers · {name}"}


def on_numbers(name: str) -> dict:
    return {"url": NUMBERS, "heading": f"Tracking Numbers · {name}"}


def open_account_settings(page: Page, name: str) -> None:
    open_menu(page, "Account Settings", name)


def open_released_numbers(page: Page, name: str) -> None:
    open_menu(page, "Tracking Numbers", name)
    click_and_wait(page, page.get_by_role("link", name="Released Numbers"), **on_released(name))


def screenshot_viewport(page: Page, name: str) -> None:
    """What the user sees: a modal's backdrop covers the viewport, not the whole page."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


def number_cells(page: Page):
    """The Number column of the table on Tracking Numbers or Released Numbers."""
    return page.locator("main table tbody tr td:first-child")


# ----------------------------------------------------------------------------- standalone

@pytest.fixture
def customer(session):
    user = f.user(session, email="dana@example.test")
    account = f.standalone(session, "Harbor Dental", owner=user)
    numbers = [f.number(session, account, label=label).number
               for label in ("Website", "Google Ads")]
    session.commit()
    return SimpleNamespace(email="dana@example.test", name="Harbor Dental",
                           numbers=sorted(numbers))


def test_close_and_reactivate_a_standalone_account(page: Page, customer, sign_in, screenshot):
    sign_in(customer.email)
    open_account_settings(page, customer.name)
    status = status_section(page)
    badge = page.get_by_test_id("account-status")
    expect(badge).to_have_text("Active")
    expect(status).to_contain_text("Paused and stopped accounts are still charged")
    screenshot(page, "status-active")

    # Pausing first (the other way to wind down) and resuming.
    click_and_wait(page, status.get_by_role("button", name="Pause number swapping", exact=True),
                   **on_settings(customer.name))
    expect(page.get_by_role("status").filter(has_text="Number swapping is paused")).to_be_visible()
    expect(badge).to_have_text("Swapping paused")
    expect(status.get_by_role("button", name="Resume")).to_be_visible()
    screenshot(page, "status-paused")
    click_and_wait(page, status.get_by_role("button", name="Resume"), **on_settings(customer.name))
    expect(badge).to_have_text("Active")

    # Close account → the confirmation screen → Proceed to Cancel Account.
    click_and_wait(page, status.get_by_role("link", name="Close account"),
                   url=account_url("close"))
    confirm = page.get_by_role("dialog", name="Cancel account: Harbor Dental")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_test_id("numbers-to-release").get_by_role("listitem")
           ).to_have_text([re.compile(re.escape(n)) for n in customer.numbers])
    screenshot(page, "close-account-confirmation")

    before = datetime.now(UTC)
    click_and_wait(page, confirm.get_by_role("button", name="Proceed to Cancel Account"),
                   **on_settings(customer.name))
    expect(page.get_by_role("status").filter(has_text="tracking numbers were released")
           ).to_have_text("Harbor Dental is canceled; 2 tracking numbers were released. "
                          "You can reactivate it within 60 days.")
    after = datetime.now(UTC)
    expect(badge).to_have_text("Canceled")

    # The banner says since when, and until when it can be reactivated (60 days).
    banner = page.get_by_test_id("canceled-banner")
    expect(banner).to_contain_text("Harbor Dental is canceled since")
    expect(banner).to_contain_text(either_date(before, after))
    expect(banner).to_contain_text(re.compile(
        r"reactivate it, until " + either_date(before, after, timedelta(days=60)).pattern))
    expect(status).to_contain_text(either_date(before, after))
    expect(status.get_by_role("button", name="Request refund")).to_be_visible()
    # Read-only: the pause and close options are gone.
    expect(status.get_by_role("button", name="Pause number swapping", exact=True)).to_have_count(0)
    expect(status.get_by_role("link", name="Close account")).to_have_count(0)
    screenshot(page, "status-canceled")

    # The numbers left Tracking Numbers for Released Numbers (and every page has the banner).
    open_menu(page, "Tracking Numbers", customer.name)
    expect(page.locator("main tbody")).to_have_text("No active tracking numbers.")
    expect(banner).to_be_visible()
    click_and_wait(page, page.get_by_role("link", name="Released Numbers"),
                   **on_released(customer.name))
    expect(number_cells(page)).to_have_text(customer.numbers)
    expect(page.locator("main tbody")).to_contain_text("Reactivate the account to restore it.")
    expect(page.get_by_role("button", name="Restore")).to_have_count(0)

    # Reactivate Account, from the Status section.
    open_account_settings(page, customer.name)
    click_and_wait(page, status.get_by_role("button", name="Reactivate Account"),
                   **on_settings(customer.name))
    expect(page.get_by_role("status").filter(has_text="is reactivated")).to_be_visible()
    expect(badge).to_have_text("Active")
    expect(banner).to_have_count(0)
    expect(status.get_by_role("link", name="Close account")).to_be_visible()

    # Reactivated within 14 days: the numbers can be restored.
    open_released_numbers(page, customer.name)
    expect(page.get_by_role("button", name="Restore")).to_have_count(2)


# ----------------------------------------------------------------------------- sub-accounts

@pytest.fixture
def agency(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental")
    numbers = [f.number(session, bayside, label=label).number
               for label in ("Main line", "Website", "Billboard")]
    harbor = f.sub(session, agency, "Harbor Law")
    sibling_number = f.number(session, harbor).number
    session.commit()
    return SimpleNamespace(email="owner@example.test", numbers=sorted(numbers),
                           sibling_number=sibling_number)


def open_accounts(page: Page) -> None:
    open_menu(page, "Accounts", "Northwind Agency")


def edit(page: Page, name: str) -> None:
    """Edit in the sub-account's row on Settings → Accounts: its Account Settings, its name
    on top."""
    click_and_wait(page, page.get_by_role("row", name=re.compile(name)).get_by_role(
        "link", name=f"Edit {name}", exact=True), **on_settings(name))
    expect(page.get_by_test_id("current-account")).to_have_text(name)


def edit_sub(page: Page, name: str) -> None:
    """Settings → Accounts → Edit next to the name; the sub-account's name shows on top."""
    open_accounts(page)
    edit(page, name)


def close_dialog(page: Page):
    return page.get_by_role("dialog", name="Close Sub-account: Bayside Dental")


def test_close_a_sub_account_from_its_dialog(page: Page, agency, sign_in, screenshot):
    sign_in(agency.email)
    edit_sub(page, "Bayside Dental")
    page.evaluate("window.notReloaded = true")

    with htmx_swap(page), page.expect_response(re.compile(r"/close$")) as answer:
        status_section(page).get_by_role("link", name="Close Sub-account").click()
    assert answer.value.request.headers.get("hx-request") == "true"
    dialog = close_dialog(page)
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')"), "the dialog opens as a modal"
    expect(page).to_have_url(re.compile(r"/accounts/\d+/$"))  # still the settings page
    expect(dialog).to_contain_text("These 3 tracking numbers will be released:")
    expect(dialog.get_by_test_id("numbers-to-release").get_by_role("listitem")
           ).to_have_text([re.compile(re.escape(n)) for n in agency.numbers])
    expect(dialog).to_contain_text("The agency and its other sub-accounts are not affected.")
    assert page.evaluate("window.notReloaded") is True
    screenshot_viewport(page, "close-sub-account-dialog")

    click_and_wait(page, dialog.get_by_role("button", name="Close Sub-account"),
                   **on_settings("Bayside Dental"))
    expect(page.get_by_role("status").filter(has_text="numbers were released")).to_have_text(
        "Bayside Dental is canceled; 3 tracking numbers were released. "
        "You can reactivate it within 60 days.")
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")
    expect(page.get_by_test_id("canceled-banner")).to_contain_text("Bayside Dental is canceled")

    # The sibling and the agency are still active.
    open_accounts(page)
    expect(page.locator("#results tbody tr")).to_have_count(1)
    sibling = page.get_by_role("row", name=re.compile("Harbor Law"))
    expect(sibling).to_contain_text("Active")
    open_menu(page, "Parent Settings", "Northwind Agency")
    expect(page.get_by_test_id("account-status")).to_have_text("Active")
    expect(page.get_by_test_id("canceled-banner")).to_have_count(0)
    edit_sub(page, "Harbor Law")
    expect(page.get_by_test_id("account-status")).to_have_text("Active")
    open_menu(page, "Tracking Numbers", "Harbor Law")
    expect(number_cells(page)).to_have_text([agency.sibling_number])


def test_escape_or_keep_the_account_changes_nothing(page: Page, agency, sign_in):
    sign_in(agency.email)
    edit_sub(page, "Bayside Dental")
    opener = status_section(page).get_by_role("link", name="Close Sub-account")

    click_and_swap(page, opener)
    expect(close_dialog(page)).to_be_visible()
    page.keyboard.press("Escape")
    expect(close_dialog(page)).to_have_count(0)  # closed and removed
    expect(page.get_by_test_id("account-status")).to_have_text("Active")

    click_and_swap(page, opener)  # opens again, once
    expect(close_dialog(page)).to_be_visible()
    expect(page.locator("dialog")).to_have_count(1)
    # Keep the account: a link back to Account Settings.
    click_and_wait(page, close_dialog(page).get_by_role("link", name="Keep the account"),
                   **on_settings("Bayside Dental"))
    expect(close_dialog(page)).to_have_count(0)
    expect(page.get_by_test_id("account-status")).to_have_text("Active")

    open_menu(page, "Tracking Numbers", "Bayside Dental")
    expect(number_cells(page)).to_have_text(agency.numbers)


def test_close_sub_account_dialog_with_the_keyboard(page: Page, agency, sign_in):
    sign_in(agency.email)
    edit_sub(page, "Bayside Dental")
    opener = status_section(page).get_by_role("link", name="Close Sub-account")

    opener.focus()
    with htmx_swap(page):
        page.keyboard.press("Enter")
    dialog = close_dialog(page)
    expect(dialog).to_be_visible()
    keep = dialog.get_by_role("link", name="Keep the account")
    close = dialog.get_by_role("button", name="Close Sub-account")
    expect(keep).to_be_focused()  # focus lands inside, on the safe choice

    # Tab and Shift+Tab move between the two buttons and never leave the dialog's page.
    page.keyboard.press("Shift+Tab")
    expect(close).to_be_focused()
    page.keyboard.press("Tab")
    expect(keep).to_be_focused()

    # Escape closes it and gives focus back to the button that opened it.
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(opener).to_be_focused()
    expect(page.get_by_test_id("account-status")).to_have_text("Active")

    # Enter opens it again; Enter on the focused Close Sub-account closes the sub-account.
    with htmx_swap(page):
        page.keyboard.press("Enter")
    expect(keep).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(close).to_be_focused()
    with navigation(page, **on_settings("Bayside Dental")):
        page.keyboard.press("Enter")
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")
    expect(dialog).to_have_count(0)


@pytest.fixture
def canceled_sub(session):
    """Bayside Dental was closed 10 days ago (its numbers released then); one of its numbers
    had been released 20 days ago, before that."""
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    f.sub(session, agency, "Harbor Law")
    canceled_at = datetime.now(UTC) - timedelta(days=10)
    bayside = f.sub(session, agency, "Bayside Dental", canceled_at=canceled_at)
    recent = f.number(session, bayside, released_at=canceled_at, label="Main line").number
    old = f.number(session, bayside, released_at=canceled_at - timedelta(days=10),
                   label="Old campaign").number
    session.commit()
    return SimpleNamespace(email="owner@example.test", canceled_at=canceled_at,
                           recent=recent, old=old)


def test_find_a_canceled_sub_account_and_reactivate_it(page: Page, canceled_sub, sign_in):
    sign_in(canceled_sub.email)
    open_accounts(page)
    expect(page.get_by_role("row", name=re.compile("Bayside Dental"))).to_have_count(0)

    page.get_by_text("Filter", exact=True).click()
    with htmx_swap(page):
        page.get_by_label("Show").select_option(label="Canceled sub-accounts")
    row = page.get_by_role("row", name=re.compile("Bayside Dental"))
    expect(row).to_contain_text("Canceled")
    click_and_wait(page, row.get_by_role("link", name=re.compile(r"^Edit (?!billing)")),
                   **on_settings("Bayside Dental"))
    expect(page.get_by_test_id("current-account")).to_have_text("Bayside Dental")
    status = status_section(page)
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")
    expect(status).to_contain_text(f"Canceled on {long_date(canceled_sub.canceled_at)}")
    expect(status).to_contain_text(
        f"Possible until {long_date(canceled_sub.canceled_at + timedelta(days=60))}")

    click_and_wait(page, status.get_by_role("button", name="Reactivate Account"),
                   **on_settings("Bayside Dental"))
    expect(page.get_by_role("status").filter(has_text="Bayside Dental is reactivated")
           ).to_be_visible()
    expect(page.get_by_test_id("account-status")).to_have_text("Active")
    expect(page.get_by_test_id("canceled-banner")).to_have_count(0)
    expect(status.get_by_role("link", name="Close Sub-account")).to_be_visible()

    # Back in the agency's list of active sub-accounts.
    open_accounts(page)
    expect(page.get_by_role("row", name=re.compile("Bayside Dental"))).to_contain_text("Active")

    # 10 days since the cancelation: its number can be restored; the older one cannot.
    edit(page, "Bayside Dental")
    open_released_numbers(page, "Bayside Dental")
    click_and_wait(page, page.get_by_role("row", name=re.compile(re.escape(canceled_sub.recent))
                                          ).get_by_role("button", name="Restore"),
                   **on_released("Bayside Dental"))
    expect(page.get_by_role("status").filter(has_text="is restored")).to_have_text(
        f"{canceled_sub.recent} is restored and active on Bayside Dental again.")
    expect(number_cells(page)).to_have_text([canceled_sub.old])
    click_and_wait(page, page.get_by_role("link", name="← Tracking Numbers"),
                   **on_numbers("Bayside Dental"))
    expect(number_cells(page)).to_have_text([canceled_sub.recent])


# ----------------------------------------------------------------------------- numbers

@pytest.fixture
def released(session):
    user = f.user(session, email="dana@example.test")
    account = f.standalone(session, "Harbor Dental", admin=user)
    now = datetime.now(UTC)
    active = f.number(session, account, label="Main line").number
    recent = f.number(session, account, released_at=now - timedelta(days=3),
                      label="Spring campaign").number
    old = f.number(session, account, released_at=now - timedelta(days=20),
                   label="Billboard").number
    session.commit()
    return SimpleNamespace(email="dana@example.test", active=active, recent=recent, old=old,
                           recent_day=f"{now - timedelta(days=3):%Y-%m-%d}",
                           old_day=f"{now - timedelta(days=20):%Y-%m-%d}")


def test_restore_a_released_number_or_ask_support(page: Page, released, sign_in, screenshot):
    sign_in(released.email)
    open_released_numbers(page, "Harbor Dental")
    recent = page.get_by_role("row", name=re.compile(re.escape(released.recent)))
    old = page.get_by_role("row", name=re.compile(re.escape(released.old)))
    expect(number_cells(page)).to_have_text([released.recent, released.old])  # newest first
    expect(recent).to_contain_text(released.recent_day)
    expect(old).to_contain_text(released.old_day)
    expect(old.get_by_role("button", name="Restore")).to_have_count(0)
    expect(old).to_contain_text("Released more than 14 days ago.")
    screenshot(page, "released-numbers")

    # Released 3 days ago: Restore.
    click_and_wait(page, recent.get_by_role("button", name="Restore"),
                   **on_released("Harbor Dental"))
    expect(page.get_by_role("status").filter(has_text="is restored")).to_have_text(
        f"{released.recent} is restored and active on Harbor Dental again.")
    expect(number_cells(page)).to_have_text([released.old])
    click_and_wait(page, page.get_by_role("link", name="← Tracking Numbers"),
                   **on_numbers("Harbor Dental"))
    expect(number_cells(page)).to_have_text(sorted([released.active, released.recent]))

    # Released 20 days ago: ask support, which opens a request on the Support page.
    click_and_wait(page, page.get_by_role("link", name="Released Numbers"),
                   **on_released("Harbor Dental"))
    click_and_wait(page, old.get_by_role("button", name="Ask support"),
                   url=account_url("support/"), heading="Support requests · Harbor Dental")
    expect(page.get_by_role("status").filter(has_text="Support request #")).to_contain_text(
        "Restore a released number (carrier inquiry)")
    requests = page.get_by_role("region", name="Requests").locator("tbody tr")
    expect(requests).to_have_count(1)
    expect(requests).to_contain_text(
        f"Restore a released number (carrier inquiry): {released.old}")
    expect(requests).to_contain_text("Open")
    screenshot(page, "support-requests")

    # Asking twice doesn't open a second request.
    open_released_numbers(page, "Harbor Dental")
    click_and_wait(page, old.get_by_role("button", name="Ask support"),
                   heading="Support requests · Harbor Dental")  # the form again, with why
    expect(page.get_by_role("alert")).to_contain_text("is already open")
    open_menu(page, "Support", "Harbor Dental")
    expect(page.get_by_role("region", name="Requests").locator("tbody tr")).to_have_count(1)


# ----------------------------------------------------------------------------- dark mode

def test_close_dialog_and_canceled_status_in_dark_mode(page: Page, agency, sign_in, screenshot):
    sign_in(agency.email)
    click_and_wait(page, page.get_by_role("button", name="Dark mode"), **on_settings(
        "Northwind Agency"))  # back on the page it was sent from
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    edit_sub(page, "Bayside Dental")
    click_and_swap(page, status_section(page).get_by_role("link", name="Close Sub-account"))
    expect(close_dialog(page)).to_be_visible()
    screenshot_viewport(page, "dark-close-sub-account-dialog")
    click_and_wait(page, close_dialog(page).get_by_role("button", name="Close Sub-account"),
                   **on_settings("Bayside Dental"))
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")
    screenshot(page, "dark-status-canceled")
    open_released_numbers(page, "Bayside Dental")
    screenshot(page, "dark-released-numbers")

