"""Settings → Accounts bulk actions in Chromium (issue 17, K): tick rows (one with the
keyboard), Send billing links → the confirmation marks the customer-billed row as refused
beforehand and asks an email and a starting balance for the others → each row's result
(2 done, 1 refused); going back and submitting that confirmation again shows its stored
results; a new bulk action over the same rows says "already sent"; nothing is sent twice.
Screenshots test-artifacts/i17-bulk-*; axe on each page."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from portal.models import AccountStatus, BillingMode, BillingRequest, OutboxMessage
from tests import factories as f
from tests.browser.conftest import (
    TIMEOUT_MS,
    axe,
    click_and_wait,
    goto,
    navigation,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    subs = {name: f.sub(session, agency, name) for name in ("Alpha Dental", "Bravo Plumbing")}
    subs["Charlie Cafe"] = f.sub(session, agency, "Charlie Cafe", billing=BillingMode.CUSTOMER)
    f.sub(session, agency, "Delta Law")
    session.commit()
    return subs


def count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def review(page: Page, before_review=None) -> None:
    """Tick Alpha (a click), Bravo (the keyboard) and Charlie; Send billing links; Review."""
    page.get_by_role("checkbox", name="Alpha Dental").check()
    bravo = page.get_by_role("checkbox", name="Bravo Plumbing")
    bravo.focus()
    page.keyboard.press("Space")  # keyboard-usable
    expect(bravo).to_be_checked()
    page.get_by_role("checkbox", name="Charlie Cafe").check()
    page.get_by_label("With the selected:").select_option(label="Send billing links")
    if before_review:
        before_review()
    click_and_wait(page, page.get_by_role("button", name="Review…"),
                   url=re.compile(r"/sub-accounts/bulk\?"),
                   heading="Send billing links: review · 3 sub-accounts")


def fill(page: Page) -> None:
    page.get_by_label("Customer's email for Alpha Dental").fill("pat@alpha.test")
    page.get_by_label("Customer's email for Bravo Plumbing").fill("sam@bravo.test")
    page.get_by_label(re.compile("Starting balance for Bravo Plumbing")).fill("40")


def test_bulk_send_billing_links_with_mixed_results(page: Page, session, agency_owner,
                                                    sign_in, screenshot):
    subs = agency_owner
    problems: list[str] = []
    sign_in("owner@example.test")
    open_menu(page, "Accounts", "Northwind Agency")
    expect(page.get_by_text("Select all 4 matching")).to_be_visible()

    def list_checks():
        assert axe(page, "main") == []
        shots(page, screenshot, "i17-bulk-list", problems)

    review(page, list_checks)
    plan = page.get_by_test_id("bulk-plan")
    expect(plan.get_by_test_id(f"plan-{subs['Charlie Cafe'].id}")).to_contain_text(
        "Will be refused: It already pays from its own balance")
    expect(page.get_by_test_id("bulk-counts")).to_contain_text("2 will be done")
    expect(page.get_by_test_id("bulk-counts")).to_contain_text("1 will be refused")
    assert "Delta Law" not in plan.inner_text()
    fill(page)
    assert axe(page) == []
    shots(page, screenshot, "i17-bulk-review", problems)

    click_and_wait(page, page.get_by_role("button", name="Send billing links: 2 sub-accounts"),
                   url=re.compile(r"/sub-accounts/bulk/\d+$"),
                   heading="Send billing links: results")
    summary = page.get_by_test_id("bulk-summary")
    expect(summary).to_contain_text("2 done · 0 already so · 1 refused")
    results = page.get_by_test_id("bulk-results")
    expect(results.get_by_test_id(f"result-{subs['Alpha Dental'].id}")).to_contain_text(
        "Emailed pat@alpha.test a secure link to pay at least $25.00")
    expect(results.get_by_test_id(f"result-{subs['Bravo Plumbing'].id}")).to_contain_text(
        "$40.00")
    expect(results.get_by_test_id(f"result-{subs['Charlie Cafe'].id}")).to_contain_text(
        "Refused")
    assert axe(page) == []
    shots(page, screenshot, "i17-bulk-results", problems)
    assert count(session, BillingRequest) == 2
    emails = count(session, OutboxMessage)

    first = page.url

    # Back to the confirmation (htmx restores it, with its key) and submit it again: the
    # stored results of that confirmation, nothing sent again.
    with navigation(page, heading="Send billing links: review · 3 sub-accounts"):
        page.go_back()
    fill(page)
    click_and_wait(page, page.get_by_role("button", name="Send billing links: 2 sub-accounts"),
                   url=first, heading="Send billing links: results")
    expect(page.get_by_test_id("bulk-summary")).to_contain_text("2 done · 0 already so")
    assert count(session, BillingRequest) == 2 and count(session, OutboxMessage) == emails

    # A new bulk action over the same rows: each row says it was already sent.
    open_menu(page, "Accounts", "Northwind Agency")
    review(page)
    fill(page)
    click_and_wait(page, page.get_by_role("button", name="Send billing links: 2 sub-accounts"),
                   url=re.compile(r"/sub-accounts/bulk/\d+$"),
                   heading="Send billing links: results")
    assert page.url != first
    expect(page.get_by_test_id("bulk-summary")).to_contain_text(
        "0 done · 2 already so · 1 refused")
    expect(page.get_by_test_id(f"result-{subs['Alpha Dental'].id}")).to_contain_text(
        "Already sent to pat@alpha.test")
    shots(page, screenshot, "i17-bulk-rerun", problems)
    assert count(session, BillingRequest) == 2 and count(session, OutboxMessage) == emails
    assert problems == []


@pytest.fixture
def no_js_page(browser: Browser, base_url, app):
    """A page without JavaScript (`app` first, so the data outlives the context)."""
    context = browser.new_context(java_script_enabled=False, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def test_without_javascript_pause_all_matching(no_js_page: Page, session, agency_owner,
                                               screenshot):
    """The list's form, the confirmation and the results are plain pages: "Select all 4
    matching" (the filter, no row ticked) → Pause number swapping for each."""
    page = no_js_page
    subs = agency_owner
    agency_id = subs["Alpha Dental"].parent_id
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill("owner@example.test")
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"))
    goto(page, f"/accounts/{agency_id}/sub-accounts", heading="Accounts · Northwind Agency")
    page.get_by_label("With the selected:").select_option(label="Pause number swapping")
    page.get_by_label("Select all 4 matching").check()
    click_and_wait(page, page.get_by_role("button", name="Review…"),
                   heading="Pause number swapping: review · 4 sub-accounts")
    click_and_wait(page, page.get_by_role("button", name="Pause number swapping: 4 "
                                                         "sub-accounts"),
                   url=re.compile(r"/sub-accounts/bulk/\d+$"),
                   heading="Pause number swapping: results")
    expect(page.get_by_test_id("bulk-summary")).to_contain_text("4 done · 0 already so")
    problems: list[str] = []
    shots(page, screenshot, "i17-bulk-nojs-results", problems)
    assert problems == []
    session.expire_all()
    assert {s.status for s in subs.values()} == {AccountStatus.SWAPPING_PAUSED}
