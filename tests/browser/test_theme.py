"""Dark mode is a saved preference: it survives a reload and a new page."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from portal.models import AccountStatus
from tests import factories as f
from tests.browser.conftest import click_and_wait, htmx_swap, navigation, open_menu

pytestmark = pytest.mark.browser


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    f.sub(session, agency, "Bayside Dental")
    f.sub(session, agency, "Harbor Law", status=AccountStatus.CALLS_STOPPED)
    f.sub(session, agency, "Closed Clinic", canceled_at=datetime.now(UTC) - timedelta(days=20))
    session.commit()
    return "owner@example.test"


ACCOUNTS = "Accounts · Northwind Agency"


def open_accounts(page: Page) -> None:
    open_menu(page, "Accounts", "Northwind Agency")


def test_dark_mode_survives_a_reload(page: Page, agency_owner, sign_in, screenshot):
    sign_in(agency_owner)
    open_accounts(page)
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    screenshot(page, "accounts-light")
    path = page.url

    click_and_wait(page, page.get_by_role("button", name="Dark mode"), url=path,
                   heading=ACCOUNTS)  # back on the same page
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Light mode")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "accounts-dark")

    with navigation(page, url=path, heading=ACCOUNTS):
        page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    open_menu(page, "Call History", "Northwind Agency")
    expect(html).to_have_attribute("data-theme", "dark")
    calls = page.url

    click_and_wait(page, page.get_by_role("button", name="Light mode"), url=calls)
    expect(html).to_have_attribute("data-theme", "light")
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "false")
    with navigation(page, url=calls):
        page.reload()
    expect(html).to_have_attribute("data-theme", "light")


def test_dark_mode_keeps_the_filtered_list_you_are_on(page: Page, agency_owner, sign_in):
    """The theme button sends you back to the URL in the address bar, including one that
    htmx pushed after the page was rendered (?status=canceled)."""
    sign_in(agency_owner)
    open_accounts(page)
    page.get_by_text("Filter", exact=True).click()
    with htmx_swap(page):
        page.get_by_label("Show").select_option(label="Canceled sub-accounts")
    expect(page).to_have_url(re.compile(r"status=canceled"))
    filtered = page.url

    click_and_wait(page, page.get_by_role("button", name="Dark mode"), url=filtered,
                   heading=ACCOUNTS)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_label("Show")).to_have_value("canceled")
    expect(page.locator("#results tbody td:first-child")).to_have_text(["Closed Clinic"])
