"""Two-factor sign-in in the browser: set it up from the header's "Your sign-in security" link
(QR code, the key, a code from the app, ten recovery codes), then sign in with the password
and a code; a wrong code; a recovery code.

A code works once: a time step at or before the last one accepted is refused. The sign-in
after setup therefore uses a code from a later 30-second step, with the clock frozen a
minute ahead (the live server runs in this process and reads the same portal.clock) rather
than waiting. The users set up by the services confirmed their code two minutes ago, so the
real clock's code is good for them.
"""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyotp
import pytest
import segno
from playwright.sync_api import Page, expect

from portal import clock
from portal.services import security
from tests import factories as f
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    account_url,
    click_and_wait,
    goto,
    htmx_settled,
    htmx_swap,
    navigation,
    shots,
)

pytestmark = pytest.mark.browser

EMAIL = "dana@example.test"
NAME = "Dana Diaz"
ACCOUNT = "Harbor Dental"
RECOVERY_CODE = re.compile(r"^[a-hj-km-np-z2-9]{5}-[a-hj-km-np-z2-9]{5}$")
SIGNED_IN = {"url": account_url(), "heading": f"Account Settings · {ACCOUNT}"}
SECURITY = {"url": "/security/", "heading": f"Your sign-in security · {EMAIL}"}


def header_link(page: Page):
    """The header's link to your own sign-in security."""
    return page.get_by_role("banner").get_by_role("link", name="Your sign-in security")


# ----------------------------------------------------------------------------- data

@pytest.fixture
def customer(session):
    """Dana, admin of Harbor Dental, with two-factor sign-in off."""
    user = f.user(session, email=EMAIL, name=NAME)
    f.standalone(session, ACCOUNT, admin=user)
    session.commit()
    return EMAIL


@pytest.fixture
def dana_with_two_factor(session):
    """Dana with two-factor sign-in on (set up through the services two minutes ago)."""
    user = f.user(session, email=EMAIL, name=NAME)
    f.standalone(session, ACCOUNT, admin=user)
    secret = security.setup(session, user).secret
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    codes = security.confirm_setup(session, user, pyotp.TOTP(secret).at(earlier), now=earlier,
                                   secret=secret)
    session.commit()
    return SimpleNamespace(email=EMAIL, secret=secret, codes=codes)


# ----------------------------------------------------------------------------- helpers

def heading(page: Page):
    return page.get_by_role("heading", level=1)


def code_field(page: Page):
    return page.get_by_label("Authentication code")


def password_step(page: Page, email: str = EMAIL) -> None:
    """Email and password: the code page follows, not yet signed in."""
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(f.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"), url="/login/two-factor",
                   heading="Two-factor sign-in")
    expect(page.get_by_test_id("current-account")).to_have_count(0)


def enter_code_by_keyboard(page: Page, code: str, good: bool = True) -> None:
    """The code field has focus (autofocus): type the code and press Enter. A good code
    signs in (the account's page); a bad one swaps the form in place, with the error."""
    expect(code_field(page)).to_be_focused()
    page.keyboard.type(code)
    with navigation(page, **SIGNED_IN) if good else htmx_swap(page):
        page.keyboard.press("Enter")


def expect_signed_in(page: Page) -> None:
    expect(page.get_by_test_id("current-account")).to_have_text(ACCOUNT)
    expect(heading(page)).to_have_text(f"Account Settings · {ACCOUNT}")
    expect(page).to_have_url(re.compile(r"/accounts/\d+/$"))


def a_wrong_code(secret: str) -> str:
    """Six digits that match none of the steps the server could accept around now."""
    totp, now = pyotp.TOTP(secret), datetime.now(UTC)
    near = {totp.at(now + timedelta(seconds=30 * k)) for k in range(-3, 4)}
    return next(c for c in ("123456", "654321", "111111", "909090") if c not in near)


# ----------------------------------------------------------------------------- the flow

def test_set_up_two_factor_then_sign_in_with_a_code(page: Page, customer, sign_in, screenshot):
    problems: list[str] = []
    sign_in(EMAIL)

    # Header → Your sign-in security: two-factor sign-in is off.
    click_and_wait(page, header_link(page),
                   **SECURITY)
    expect(page).to_have_title("Your sign-in security · Account Portal")
    expect(page.get_by_test_id("two-factor-status")).to_have_text("Off")

    # Set up: the QR code (of the otpauth:// URI with the key shown) and the key.
    click_and_wait(page, page.get_by_role("link", name="Set up two-factor sign-in"),
                   url="/security/two-factor", heading="Set up two-factor sign-in")
    qr = page.get_by_role("figure", name="QR code for your authenticator app").locator("svg")
    expect(qr).to_be_visible()
    shown = page.get_by_test_id("totp-secret").inner_text()
    secret = "".join(shown.split())  # shown in groups of four
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), shown
    uri = pyotp.TOTP(secret).provisioning_uri(name=EMAIL, issuer_name="Account Portal")
    expected = segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111",
                                                     light="#fff", omitsize=False)
    drawn = qr.locator("path").last.get_attribute("d")
    assert drawn and f'd="{drawn}"' in expected, "the QR code is not the key's otpauth URI"
    box = qr.bounding_box()
    assert box["width"] >= 150 and abs(box["width"] - box["height"]) < 1, box
    shots(page, screenshot, "two-factor-setup", problems)
    page.set_viewport_size(PHONE)
    box = qr.bounding_box()
    if box["x"] < 0 or box["x"] + box["width"] > PHONE["width"]:
        problems.append(f"two-factor-setup (phone): the QR code is cut off: {box}")
    page.set_viewport_size(DESKTOP)

    # The code, with the keyboard: Skip to content, then Tab reaches the field.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    code = page.get_by_label("Code from the app")
    expect(code).to_be_focused()
    page.keyboard.type(pyotp.TOTP(secret).now())
    with navigation(page, heading="Two-factor sign-in is on"):
        page.keyboard.press("Enter")

    # On: ten recovery codes, shown once.
    codes = page.get_by_test_id("recovery-codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    texts = [t.strip() for t in codes.all_inner_texts()]
    assert all(RECOVERY_CODE.match(t) for t in texts), texts
    assert len(set(texts)) == 10, texts
    shots(page, screenshot, "two-factor-recovery-codes", problems)
    click_and_wait(page, page.get_by_role("link", name="I saved them, continue"), **SECURITY)

    # Back on Your sign-in security: on, ten codes left.
    expect(page.get_by_test_id("two-factor-status")).to_have_text("On")
    expect(page.locator("#two-factor")).to_contain_text("10 unused recovery codes left.")
    shots(page, screenshot, "security-two-factor-on", problems)

    # Sign out, then in again: the password, then the code page.
    click_and_wait(page, page.get_by_role("banner").get_by_role("button", name="Sign out"),
                   url="/login", heading="Sign in")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    later = datetime.now(UTC) + timedelta(seconds=60)  # a later step than setup's code
    clock.freeze(later)
    try:
        password_step(page)
        shots(page, screenshot, "two-factor-code-page", problems)
        enter_code_by_keyboard(page, pyotp.TOTP(secret).at(later))
        expect_signed_in(page)
    finally:
        clock.freeze(None)

    # The sign-in is listed: the authenticator code step, succeeded.
    click_and_wait(page, header_link(page),
                   **SECURITY)
    latest = page.get_by_test_id("recent-signins").locator("tbody tr").first
    expect(latest).to_contain_text("Authenticator code")
    expect(latest).to_contain_text("Succeeded")
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_a_wrong_code_shows_the_error_by_the_field_and_the_field_keeps_focus(
        page: Page, dana_with_two_factor, screenshot):
    problems: list[str] = []
    password_step(page)
    page.evaluate("window.notReloaded = true")
    enter_code_by_keyboard(page, a_wrong_code(dana_with_two_factor.secret), good=False)

    field = code_field(page)
    error = page.locator("#code-error")
    expect(error).to_have_text(security.BAD_CODE)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(security.BAD_CODE)
    expect(field).to_have_value("")
    expect(field).to_be_focused()  # focused again after the swap: type the next code
    assert page.evaluate("window.notReloaded") is True  # swapped in place by htmx
    expect(page.get_by_test_id("current-account")).to_have_count(0)

    # Beside the field: right under it, starting at its left edge.
    htmx_settled(page)  # laid out as it stays
    f_box, e_box = field.bounding_box(), error.bounding_box()
    assert 0 <= e_box["y"] - (f_box["y"] + f_box["height"]) <= 24, (f_box, e_box)
    assert abs(e_box["x"] - f_box["x"]) <= 4, (f_box, e_box)
    shots(page, screenshot, "two-factor-code-error", problems)

    # The focus is usable as it is: the right code, Enter, signed in.
    enter_code_by_keyboard(page, pyotp.TOTP(dana_with_two_factor.secret).now())
    expect_signed_in(page)
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_a_recovery_code_signs_in_once(page: Page, dana_with_two_factor):
    first = dana_with_two_factor.codes[0]
    password_step(page)
    enter_code_by_keyboard(page, first)
    expect_signed_in(page)

    click_and_wait(page, header_link(page),
                   **SECURITY)
    expect(page.locator("#two-factor")).to_contain_text("9 unused recovery codes left.")
    latest = page.get_by_test_id("recent-signins").locator("tbody tr").first
    expect(latest).to_contain_text("Recovery code")
    expect(latest).to_contain_text("Succeeded")

    # The same code again: refused. Another one, typed in capitals without the dash: good.
    click_and_wait(page, page.get_by_role("banner").get_by_role("button", name="Sign out"),
                   url="/login", heading="Sign in")
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    password_step(page)
    enter_code_by_keyboard(page, first, good=False)
    expect(page.locator("#code-error")).to_have_text(security.BAD_CODE)
    enter_code_by_keyboard(page, dana_with_two_factor.codes[1].replace("-", "").upper())
    expect_signed_in(page)
    click_and_wait(page, header_link(page),
                   **SECURITY)
    expect(page.locator("#two-factor")).to_contain_text("8 unused recovery codes left.")


def test_signing_in_with_a_recovery_code_flashes_how_many_are_left(
        page: Page, dana_with_two_factor):
    """Found by this test (fixed): _signed_in() cleared the session, and the flashed count
    with it, before the redirect; the notice is now flashed after the clear."""
    password_step(page)
    enter_code_by_keyboard(page, dana_with_two_factor.codes[0])
    expect_signed_in(page)
    expect(page.get_by_role("status")).to_have_text(
        "You signed in with a recovery code; it can't be used again. 9 recovery codes left.")
