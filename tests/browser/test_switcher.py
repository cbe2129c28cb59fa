"""An agency user moves into its sub-accounts: from the switcher, and from Settings → Accounts."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import (
    account_url,
    click_and_swap,
    click_and_wait,
    htmx_settled,
    htmx_swap,
    open_menu,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    f.sub(session, agency, "Bayside Dental")
    f.sub(session, agency, "Harbor Law")
    f.sub(session, agency, "Northside Plumbing")
    other = f.agency(session, "Southwind Agency", owner=f.user(session))
    f.sub(session, other, "Bayside Rival")  # someone else's: never listed
    session.commit()
    return "owner@example.test"


def switcher(page: Page):
    return page.locator("details.switcher")


def settings_of(name: str) -> dict:
    """Where switching into an account lands: its Account Settings."""
    return {"url": account_url(), "heading": f"Account Settings · {name}"}


def test_switch_into_a_sub_account_from_the_switcher(page: Page, agency_owner, sign_in,
                                                     screenshot):
    sign_in(agency_owner)
    current = page.get_by_test_id("current-account")
    expect(current).to_have_text("Northwind Agency")

    click_and_swap(page, current)  # the switcher's summary: opened, it lists the accounts
    expect(switcher(page)).to_have_attribute("open", "")
    listed = page.get_by_role("list", name="Accounts").get_by_role("link")
    expect(listed).to_have_text(["Northwind Agency", "Bayside Dental", "Harbor Law",
                                 "Northside Plumbing"])

    with htmx_swap(page):  # a search as you type, once typing pauses
        page.get_by_label("Find an account").press_sequentially("bay")
    expect(listed).to_have_text(["Bayside Dental"])
    htmx_settled(page)  # the last search's swap, if typing paused more than once
    screenshot(page, "switcher-open")

    click_and_wait(page, listed.get_by_text("Bayside Dental"), **settings_of("Bayside Dental"))
    expect(current).to_have_text("Bayside Dental")
    expect(switcher(page).locator("summary")).to_contain_text("in Northwind Agency")
    expect(switcher(page)).not_to_have_attribute("open", "")


def test_edit_on_settings_accounts_switches_into_the_row(page: Page, agency_owner, sign_in):
    sign_in(agency_owner)
    open_menu(page, "Accounts", "Northwind Agency")

    click_and_wait(page, page.get_by_role("row", name=re.compile("Harbor Law")).get_by_role(
        "link", name="Edit Harbor Law", exact=True), **settings_of("Harbor Law"))
    expect(page.get_by_test_id("current-account")).to_have_text("Harbor Law")
    expect(switcher(page).locator("summary")).to_contain_text("in Northwind Agency")

    # From the sub-account, Settings → Accounts leads back to the agency's list.
    open_menu(page, "Accounts", "Northwind Agency")
    expect(page.get_by_test_id("current-account")).to_have_text("Northwind Agency")
    click_and_wait(page, page.get_by_role("link", name="Edit Northside Plumbing"),
                   **settings_of("Northside Plumbing"))
    expect(page.get_by_test_id("current-account")).to_have_text("Northside Plumbing")
