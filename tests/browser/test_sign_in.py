"""Signing in: with the mouse, with a wrong password, and with the keyboard alone."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests import factories as f
from tests.browser.conftest import account_url, click_and_wait, goto, htmx_swap, navigation

pytestmark = pytest.mark.browser


@pytest.fixture
def customer(session):
    user = f.user(session, email="dana@example.test")
    f.standalone(session, "Harbor Dental", admin=user)
    session.commit()
    return "dana@example.test"


SETTINGS = {"url": account_url(), "heading": "Account Settings · Harbor Dental"}


def test_sign_in_lands_on_account_settings(page: Page, customer, screenshot):
    goto(page, "/", url=re.compile(r"/login\?next=(/|%2F)$"), heading="Sign in")
    screenshot(page, "login")

    page.get_by_label("Email").fill(customer)
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"), **SETTINGS)

    expect(page).to_have_title("Account Settings · Account Portal")
    expect(page.get_by_test_id("current-account")).to_have_text("Harbor Dental")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Account Settings")
           ).to_have_attribute("aria-current", "page")
    screenshot(page, "account-settings")


def test_wrong_password_shows_the_error_in_place(page: Page, customer, screenshot):
    goto(page, "/login", heading="Sign in")
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Email").fill(customer)
    page.get_by_label("Password").fill("not the password")
    with htmx_swap(page), page.expect_response(re.compile(r"/login$")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 422
    assert answer.value.request.headers.get("hx-request") == "true"

    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Email")).to_have_value(customer)
    expect(page.get_by_label("Password")).to_have_value("")
    assert page.evaluate("window.notReloaded") is True  # swapped by htmx, not a new page
    expect(page.get_by_test_id("current-account")).to_have_count(0)
    screenshot(page, "login-error")

    # and the swapped-in form still works
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"), **SETTINGS)
    expect(page.get_by_test_id("current-account")).to_have_text("Harbor Dental")


def test_sign_in_with_the_keyboard_only(page: Page, customer):
    goto(page, "/login", heading="Sign in")
    email = page.get_by_label("Email")
    expect(email).to_be_focused()  # autofocus

    # Nothing focusable hides between the top of the page and the form.
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Account Portal")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(email).to_be_focused()

    page.keyboard.type(customer)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(f.PASSWORD)
    with navigation(page, **SETTINGS):
        page.keyboard.press("Enter")

    expect(page.get_by_test_id("current-account")).to_have_text("Harbor Dental")


def test_sign_in_returns_to_the_page_asked_for(page: Page, customer, session):
    from portal.models import Account

    account_id = session.scalar(select(Account.id).where(Account.name == "Harbor Dental"))
    goto(page, f"/accounts/{account_id}/calls/?from=2026-03-01",
         url=re.compile(r"/login\?next="), heading="Sign in")
    expect(page.get_by_role("status")).to_have_text("Sign in to continue.")
    page.get_by_label("Email").fill(customer)
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"),
                   url=re.compile(rf"/accounts/{account_id}/calls/\?from=2026-03-01$"),
                   heading="Call History · Harbor Dental")
    expect(page.get_by_label("From")).to_have_value("2026-03-01")
