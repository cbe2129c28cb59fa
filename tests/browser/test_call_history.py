"""Calls → Call History: the account's calls, newest first, filtered by date in place."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import click_and_swap, open_menu

pytestmark = pytest.mark.browser


@pytest.fixture
def customer(session):
    user = f.user(session, email="dana@example.test")
    account = f.standalone(session, "Harbor Dental", admin=user)
    # one call a day at 09:00 UTC, 1–5 March 2026
    f.calls(session, account, 5, start=datetime(2026, 3, 1, 9, tzinfo=UTC),
            step=timedelta(days=1), caller_name="Pat Caller")
    session.commit()
    return "dana@example.test"


def started(page: Page):
    return page.locator("#results tbody tr td:first-child")


def test_call_history_filters_by_date(page: Page, customer, sign_in, screenshot):
    sign_in(customer)
    open_menu(page, "Call History", "Harbor Dental")
    expect(started(page)).to_have_text([f"2026-03-0{d} 09:00" for d in (5, 4, 3, 2, 1)])
    expect(page.locator("#results")).to_contain_text("Calls 1–5 of 5")
    screenshot(page, "call-history")
    page.evaluate("window.notReloaded = true")

    page.get_by_label("From").fill("2026-03-02")
    page.get_by_label("To").fill("2026-03-03")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(started(page)).to_have_text(["2026-03-03 09:00", "2026-03-02 09:00"])
    expect(page).to_have_url(re.compile(r"from=2026-03-02&to=2026-03-03"))
    assert page.evaluate("window.notReloaded") is True

    # A range the wrong way round: the message, no rows.
    page.get_by_label("From").fill("2026-03-04")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(page.get_by_role("alert")).to_have_text("To must be on or after From.")
    expect(started(page)).to_have_count(0)


@pytest.fixture
def busy_customer(session):
    user = f.user(session, email="dana@example.test")
    account = f.standalone(session, "Harbor Dental", admin=user)
    f.calls(session, account, 55, start=datetime(2026, 3, 1, tzinfo=UTC), step=timedelta(hours=1))
    session.commit()
    return "dana@example.test"


def test_next_and_previous_pages_swap_the_results_in_place(page: Page, busy_customer, sign_in):
    sign_in(busy_customer)
    open_menu(page, "Call History", "Harbor Dental")
    expect(page.locator("#results")).to_contain_text("Calls 1–50 of 55")
    page.evaluate("window.notReloaded = true")

    click_and_swap(page, page.get_by_role("link", name="Next →"))
    expect(page.locator("#results")).to_contain_text("Calls 51–55 of 55")
    expect(page.locator("#results")).to_have_count(1)  # replaced, not nested inside itself
    expect(started(page)).to_have_count(5)
    expect(page).to_have_url(re.compile(r"page=2"))

    click_and_swap(page, page.get_by_role("link", name="← Previous"))
    expect(page.locator("#results")).to_contain_text("Calls 1–50 of 55")
    expect(page.locator("#results")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True
