"""Settings → Accounts: the status filter and the name search update the table in place."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import htmx_settled, htmx_swap, navigation, open_menu

pytestmark = pytest.mark.browser

ACTIVE = ["Bayside Dental", "Harbor Law", "Northside Plumbing"]
CANCELED = ["Closed Clinic", "Old Harbor Cafe"]


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    for name in ACTIVE:
        f.sub(session, agency, name)
    for name in CANCELED:
        f.sub(session, agency, name, canceled_at=datetime.now(UTC) - timedelta(days=20))
    session.commit()
    return "owner@example.test"


def names(page: Page):
    """The Name column of the sub-accounts table."""
    return page.locator("#results table tbody tr td:first-child")


def open_accounts(page: Page) -> None:
    open_menu(page, "Accounts", "Northwind Agency")


def test_canceled_filter_updates_the_table_in_place(page: Page, agency_owner, sign_in):
    sign_in(agency_owner)
    open_accounts(page)
    expect(names(page)).to_have_text(ACTIVE)
    page.evaluate("window.notReloaded = true")

    page.get_by_text("Filter", exact=True).click()
    show = page.get_by_label("Show")
    expect(show).to_be_visible()
    with htmx_swap(page), page.expect_response(
            re.compile(r"/sub-accounts\?.*status=canceled")) as answer:
        show.select_option(label="Canceled sub-accounts")
    assert answer.value.request.headers.get("hx-request") == "true"
    assert "<html" not in answer.value.text()  # the results block, not a page

    expect(names(page)).to_have_text(CANCELED)
    expect(page.locator("#results")).to_contain_text("Canceled sub-accounts: 1–2 of 2")
    expect(page).to_have_url(re.compile(r"/sub-accounts\?(.*&)?status=canceled(&|$)"))
    assert page.evaluate("window.notReloaded") is True

    # The pushed URL is a page of its own.
    with navigation(page, url=re.compile(r"status=canceled"),
                    heading="Accounts · Northwind Agency"):
        page.reload()
    assert page.evaluate("window.notReloaded") is None
    expect(names(page)).to_have_text(CANCELED)
    expect(page.get_by_label("Show")).to_be_visible()  # the panel opens on a non-default filter
    expect(page.get_by_label("Show")).to_have_value("canceled")

    # Back to every sub-account, the same way.
    with htmx_swap(page):
        page.get_by_label("Show").select_option(label="All sub-accounts")
    expect(names(page)).to_have_text(sorted(ACTIVE + CANCELED))
    expect(page).to_have_url(re.compile(r"status=all"))


def test_search_by_name_narrows_the_list(page: Page, agency_owner, sign_in):
    sign_in(agency_owner)
    open_accounts(page)
    expect(names(page)).to_have_text(ACTIVE)
    page.evaluate("window.notReloaded = true")

    with htmx_swap(page):  # a search as you type, once typing pauses
        page.get_by_label("Search by name").press_sequentially("harb")
    expect(names(page)).to_have_text(["Harbor Law"])
    expect(page.locator("#results")).to_contain_text("Active sub-accounts matching “harb”")
    expect(page).to_have_url(re.compile(r"q=harb"))
    htmx_settled(page)  # the last search's swap, if typing paused more than once

    # The search and the filter combine.
    page.get_by_text("Filter", exact=True).click()
    with htmx_swap(page):
        page.get_by_label("Show").select_option(label="All sub-accounts")
    expect(names(page)).to_have_text(["Harbor Law", "Old Harbor Cafe"])

    with htmx_swap(page):
        page.get_by_label("Search by name").fill("no such name")
    expect(page.locator("#results tbody")).to_have_text("No sub-accounts to show.")
    assert page.evaluate("window.notReloaded") is True

    with navigation(page, url=re.compile(r"q=no"), heading="Accounts · Northwind Agency"):
        page.reload()
    expect(page.get_by_label("Search by name")).to_have_value("no such name")
    expect(page.locator("#results tbody")).to_have_text("No sub-accounts to show.")
