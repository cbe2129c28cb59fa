"""Issue 15, passwords and email, in the browser: "Forgot password?" end to end (the link read
from the email on the dev outbox page), and Change password / Change email on the user's own
security page (the confirmation link read from the outbox too)."""

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from portal.services import auth
from tests import factories as f
from tests.browser.conftest import account_url, axe, click_and_wait, goto, htmx_swap, shots

pytestmark = pytest.mark.browser

EMAIL = "robin@example.test"
NEW_PASSWORD = "seven blue lanterns"
SECURITY = {"url": "/security/", "heading": f"Your sign-in security · {EMAIL}"}


@pytest.fixture
def robin(session):
    user = f.user(session, email=EMAIL, name="Robin Park")
    f.standalone(session, "Harbor Dental", admin=user)
    session.commit()
    return user


def open_mail(page: Page, to: str, subject: str, external_base: str) -> str:
    """Open the newest email to `to` with `subject` on the dev outbox page; the path of the
    one link in its text."""
    goto(page, "/dev/outbox", heading="Outbox · development only")
    row = page.get_by_test_id("outbox").locator("tbody tr").filter(has_text=to) \
        .filter(has_text=subject).first
    click_and_wait(page, row.get_by_role("link", name=subject),
                   url=re.compile(r"/dev/outbox/\d+$"), heading=subject)
    expect(page.get_by_test_id("to")).to_have_text(to)
    link = page.get_by_test_id("text-body").get_by_role("link", name=re.compile(r"^http"))
    expect(link).to_have_count(1)
    url = link.get_attribute("href")
    assert url.startswith(external_base.rstrip("/") + "/"), url
    return urlsplit(url).path


def no_axe_violations(page: Page, problems: list[str], where: str) -> None:
    for violation in axe(page):
        targets = ", ".join(node["target"] for node in violation["nodes"])
        problems.append(f"{where}: axe {violation['id']}: {violation['help']} ({targets})")


def test_forgot_password_end_to_end(page: Page, robin, app, screenshot):
    problems: list[str] = []
    goto(page, "/login", heading="Sign in")
    click_and_wait(page, page.get_by_role("link", name="Forgot password?"),
                   url="/forgot-password", heading="Reset your password")
    expect(page.get_by_label("Email")).to_be_focused()
    no_axe_violations(page, problems, "forgot password")
    shots(page, screenshot, "i15-passwords-forgot", problems)

    page.get_by_label("Email").fill(EMAIL.upper())
    with htmx_swap(page), page.expect_response(re.compile(r"/forgot-password$")) as answer:
        page.get_by_role("button", name="Email me a reset link").click()
    assert answer.value.status == 200
    expect(page.get_by_test_id("reset-sent")).to_have_text(auth.RESET_SENT.format(email=EMAIL))
    no_axe_violations(page, problems, "reset sent")
    shots(page, screenshot, "i15-passwords-forgot-sent", problems)

    path = open_mail(page, EMAIL, "Reset your password", app.config["EXTERNAL_BASE_URL"])
    assert path.startswith("/reset-password/")

    response = goto(page, path, heading="Choose a new password")
    assert response.status == 200 and response.headers["referrer-policy"] == "no-referrer"
    expect(page.locator("main")).to_contain_text(f"For {EMAIL}.")
    # a common password is refused, saying why; the form stays
    page.get_by_label("New password").fill("qwerty123456")
    page.get_by_label("The same password again").fill("qwerty123456")
    click_and_wait(page, page.get_by_role("button", name="Set new password"), url=path,
                   heading="Choose a new password")
    expect(page.locator("#password-error")).to_contain_text(
        "That is one of the 10,000 most common passwords")
    expect(page.get_by_label("New password")).to_be_focused()
    no_axe_violations(page, problems, "reset refused")
    shots(page, screenshot, "i15-passwords-reset-refused", problems)

    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("The same password again").fill(NEW_PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Set new password"), url="/login",
                   heading="Sign in")
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    shots(page, screenshot, "i15-passwords-reset-done", problems)

    # the old password no longer signs in; the new one does
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(f.PASSWORD)
    with htmx_swap(page):
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"), url=account_url(),
                   heading="Account Settings · Harbor Dental")

    # the link worked once
    response = goto(page, path, heading="Choose a new password")
    assert response.status == 410
    expect(page.get_by_role("alert")).to_have_text(auth.RESET_PROBLEM)
    shots(page, screenshot, "i15-passwords-reset-used", problems)
    # and the user was told
    open_mail(page, EMAIL, "Your password was reset", app.config["EXTERNAL_BASE_URL"])
    assert problems == []


def test_change_password_and_email_on_the_security_page(page: Page, robin, app, sign_in,
                                                         screenshot):
    problems: list[str] = []
    sign_in(EMAIL)
    goto(page, "/security/", **SECURITY)
    password_card = page.locator("#password")
    password_card.get_by_label("Current password").fill("not my password")
    password_card.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    password_card.get_by_label("The new password again").fill(NEW_PASSWORD)
    click_and_wait(page, password_card.get_by_role("button", name="Change password"),
                   url=re.compile(r"/security/(password)?$"), heading=SECURITY["heading"])
    expect(page.locator("#password")).to_contain_text("That password is not correct.")
    no_axe_violations(page, problems, "change password refused")
    shots(page, screenshot, "i15-passwords-change-refused", problems)

    password_card = page.locator("#password")
    password_card.get_by_label("Current password").fill(f.PASSWORD)
    password_card.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    password_card.get_by_label("The new password again").fill(NEW_PASSWORD)
    click_and_wait(page, password_card.get_by_role("button", name="Change password"),
                   **SECURITY)
    expect(page.get_by_role("status")).to_contain_text("Your password is changed.")

    email_card = page.locator("#email")
    email_card.get_by_label("New email").fill("robin.new@example.test")
    email_card.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    click_and_wait(page, email_card.get_by_role("button", name="Send a confirmation link"),
                   **SECURITY)
    expect(page.get_by_role("status")).to_contain_text("We sent a link to robin.new@example.test")
    expect(page.get_by_test_id("current-email")).to_have_text(EMAIL)
    no_axe_violations(page, problems, "security page")
    shots(page, screenshot, "i15-passwords-security", problems)

    path = open_mail(page, "robin.new@example.test", "Confirm your new sign-in email",
                     app.config["EXTERNAL_BASE_URL"])
    goto(page, path, heading="Confirm your new email")
    no_axe_violations(page, problems, "confirm email")
    shots(page, screenshot, "i15-passwords-confirm-email", problems)
    click_and_wait(page, page.get_by_role("button", name="Use robin.new@example.test"),
                   url="/security/", heading="Your sign-in security · robin.new@example.test")
    expect(page.get_by_role("status")).to_contain_text(
        f"You now sign in with robin.new@example.test. We told {EMAIL} about the change.")
    # the old address was told
    goto(page, "/dev/outbox", heading="Outbox · development only")
    expect(page.get_by_test_id("outbox").locator("tbody tr").filter(has_text=EMAIL)
           .filter(has_text="Your sign-in email was changed")).to_have_count(1)
    assert problems == []
