"""Canceling an Agency (the help article), on the demo agency: transfer the customer-billed
sub-account out first, then Settings → Parent Settings → "Cancel Agency Account & All
Sub-Accounts" → the pop-up → the review page → a reason → "Cancel Agency". The transferred
account lives on, standalone, for its new owner."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.cli import demo
from tests.browser.conftest import account_url, click_and_swap, click_and_wait, open_menu

pytestmark = pytest.mark.browser

OWNER = "agency@demo.test"
NEW_OWNER = "cedar@demo.test"  # an admin of Cedar Law Group, which pays its own bills
STILL_ACTIVE = ["Bayside Dental", "Cedar Law Group", "Harbor Fitness", "Lakeside Roofing",
                "Riverside Vet"]


@pytest.fixture
def demo_agency(session):
    demo.seed(session, calls_per_account=3)
    session.commit()


PARENT = {"url": account_url("parent"), "heading": "Parent Settings · Northwind Agency"}
REVIEW = "Cancel Northwind Agency"


def start_canceling(page: Page):
    """Parent Settings → Status → the button → the pop-up → Cancel Agency → the review."""
    open_menu(page, "Parent Settings", "Northwind Agency")
    click_and_swap(page, page.get_by_role("region", name="Status").get_by_role(
        "link", name="Cancel Agency Account & All Sub-Accounts"))
    popup = page.get_by_role("dialog", name="Cancel Agency Account & All Sub-Accounts")
    expect(popup).to_be_visible()
    assert popup.evaluate("d => d.matches(':modal')")
    click_and_wait(page, popup.get_by_role("link", name="Cancel Agency"),
                   url=account_url("parent/cancel/review"), heading=REVIEW)
    return page.get_by_role("region", name="Sub-accounts still active")


def sub_names(region):
    return region.locator("tbody tr td:first-child")


def test_cancel_the_demo_agency_after_transferring_one_out(page: Page, demo_agency, sign_in,
                                                          screenshot):
    sign_in(OWNER, demo.PASSWORD)
    expect(page.get_by_test_id("current-account")).to_have_text("Northwind Agency")

    # The pop-up's Cancel Agency leads to the review: the sub-accounts still active.
    review = start_canceling(page)
    expect(sub_names(review)).to_have_text(STILL_ACTIVE)
    screenshot(page, "agency-cancel-review")

    # Transfer the customer-billed one out first.
    click_and_wait(page, review.get_by_role("row", name=re.compile("Cedar Law Group")).get_by_role(
        "link", name="Transfer"), url=account_url("transfer"),
        heading="Transfer Cedar Law Group out of Northwind Agency")
    page.get_by_label("New owner's email").fill(NEW_OWNER)
    page.get_by_label("Plan").select_option("Essentials")
    click_and_wait(page, page.get_by_role("button", name="Transfer"), **PARENT)
    expect(page.get_by_role("status").filter(has_text="standalone")).to_have_text(
        "Cedar Law Group is now a standalone account; the agency no longer reaches it. "
        f"We emailed {NEW_OWNER} that they own it now.")
    activity = page.get_by_role("region", name="Activity")
    expect(activity).to_contain_text(
        f"Transferred Cedar Law Group out of the agency, to its new owner {NEW_OWNER}")

    # Start again: the review no longer lists it. The reason is required.
    review = start_canceling(page)
    expect(sub_names(review)).to_have_text([n for n in STILL_ACTIVE if n != "Cedar Law Group"])
    why = page.get_by_role("region", name="Why are you canceling?")
    click_and_wait(page, why.get_by_role("button", name="Cancel Agency"), heading=REVIEW)
    expect(why.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    expect(why).to_contain_text("Choose why you are canceling.")
    expect(page.get_by_test_id("account-status")).to_have_count(0)  # still on the review

    why.get_by_label("Reason").select_option("Moving to another provider")
    why.get_by_label("Comments").fill("Consolidating our tools.")
    click_and_wait(page, why.get_by_role("button", name="Cancel Agency"), **PARENT)

    # Canceled, with its four remaining sub-accounts; reactivated only through support.
    expect(page.get_by_role("status").filter(has_text="numbers released")).to_have_text(
        "Northwind Agency and 4 sub-accounts are canceled and their numbers released.")
    status = page.get_by_role("region", name="Status")
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")
    expect(page.get_by_test_id("canceled-banner")).to_contain_text(
        "Northwind Agency is canceled since")
    expect(page.get_by_test_id("canceled-banner")).to_contain_text(
        "a canceled agency is reactivated only through a support request")
    expect(page.get_by_role("button", name="Reactivate Account")).to_have_count(0)
    expect(status.get_by_role("link", name="Cancel Agency Account & All Sub-Accounts")
           ).to_have_count(0)
    expect(activity).to_contain_text(  # every detail worded (issue 14)
        "Canceled the agency and all sub-accounts (Bayside Dental, Harbor Fitness, Lakeside "
        "Roofing, Riverside Vet); released +14155551000, +14155551001. Reason: Moving to "
        "another provider. Comments: Consolidating our tools.")
    screenshot(page, "agency-canceled")

    click_and_wait(page, status.get_by_role("button", name="Ask support to reactivate the agency"),
                   url=account_url("support/"), heading="Support requests · Northwind Agency")
    requests = page.get_by_role("region", name="Requests").locator("tbody tr")
    expect(requests).to_have_count(1)
    expect(requests).to_contain_text("Reactivate a canceled agency")

    # Every remaining sub-account went with it.
    open_menu(page, "Accounts", "Northwind Agency")
    expect(page.locator("#results tbody")).to_have_text("No sub-accounts to show.")

    # The transferred account is still active, standalone, for its new owner.
    # Wait for the sign-out to land: its new session cookie must not replace the one the
    # next sign-in form's CSRF token belongs to.
    click_and_wait(page, page.get_by_role("button", name="Sign out"), url="/login",
                   heading="Sign in")
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    sign_in(NEW_OWNER, demo.PASSWORD)
    expect(page.get_by_test_id("current-account")).to_have_text("Cedar Law Group")
    expect(page.get_by_role("heading", level=1)).to_have_text("Account Settings · Cedar Law Group")
    details = page.get_by_role("region", name="Account")
    expect(details).to_contain_text("Standalone account")
    expect(details).to_contain_text("Essentials")
    expect(details).to_contain_text("Owner")
    expect(details).not_to_contain_text("Northwind Agency")
    expect(page.get_by_test_id("account-status")).to_have_text("Active")
    expect(page.get_by_test_id("canceled-banner")).to_have_count(0)
    expect(page.get_by_role("region", name="Activity")).to_contain_text(
        "Became a standalone account (from Northwind Agency)")
    open_menu(page, "Tracking Numbers", "Cedar Law Group")
    expect(page.locator("main tbody tr")).to_have_count(3)
    expect(page.locator("main tbody")).not_to_contain_text("No active tracking numbers.")
    open_menu(page, "Call History", "Cedar Law Group")
    expect(page.locator("#results tbody tr")).to_have_count(3)
