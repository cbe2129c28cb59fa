"""Every kind of page under the Content-Security-Policy (portal/headers.py), in Chromium: no
page reports a policy violation (the `securitypolicyviolation` event, and Chromium's own
"Refused to ..." message) and no page logs a console error or throws, while the behaviours
that moved from inline handlers and htmx-evaluated strings to portal.js still work: the
Versions panel loads when opened, the dark-mode switch returns to the address htmx pushed,
the receipt's Print button prints, dialogs open and close, filters and the switcher search.

On the demo data (as `make run` has it), signed in as the agency's owner and the standalone
account's admin, plus a two-factor user for the sign-in's second step.
"""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import current_app
from playwright.sync_api import Page, expect
from sqlalchemy import select

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal import sealing
from portal.cli import demo
from portal.mail import notices
from portal.models import Account, Charge, ChargeStatus, OutboxMessage, User
from tests.browser.conftest import (
    click_and_swap,
    click_and_wait,
    goto,
    htmx_settled,
    htmx_swap,
)

pytestmark = pytest.mark.browser

AGENCY_OWNER, SOLO_ADMIN, SUB_USER = "agency@demo.test", "solo@demo.test", "sub@demo.test"
WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} refused ${e.blockedURI || "inline"}`
                + ` (${e.sourceFile}:${e.lineNumber}) sample: ${e.sample}`);
});
// The receipt's Print button: count the calls instead of opening the print dialog.
window.print = () => { window.__printed = (window.__printed || 0) + 1; };
"""


class Problems:
    """Console errors, CSP violations and uncaught exceptions, with the page they were on."""

    def __init__(self, page: Page):
        self.page = page
        self.seen: list[str] = []
        self.allowed: list[tuple[str, str]] = []  # (url, message) expected on one visit
        page.add_init_script(WATCH)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"{page.url}: uncaught: {error}"))
        page.on("response", self._response)

    def _response(self, response):
        """Every page comes under the policy (else nothing could violate it)."""
        if response.request.resource_type not in ("document", "xhr", "fetch"):
            return
        policy = response.headers.get("content-security-policy", "")
        directives = {part.split()[0]: part.split()[1:]
                      for part in (p.strip() for p in policy.split(";")) if part}
        scripts = directives.get("script-src", directives.get("default-src"))
        styles = directives.get("style-src", directives.get("default-src"))
        strict = scripts in (["'self'"], ["'none'"]) and (
            styles in (["'self'"], ["'none'"]) or "sandbox" in directives)  # an email
        if not strict or "frame-ancestors" not in directives:
            self.seen.append(f"{response.url}: no strict Content-Security-Policy: {policy!r}")

    def _console(self, message):
        text = message.text
        if message.type == "error" or "Content Security Policy" in text or "CSP" in text:
            if (self.page.url, text) in self.allowed:
                return
            self.seen.append(f"{self.page.url}: console.{message.type}: {text}")

    def allow(self, url: str, text: str) -> None:
        self.allowed.append((url, text))


@pytest.fixture
def demo_world(session):
    demo.seed(session, calls_per_account=3)
    session.commit()
    accounts = {a.name: a for a in session.scalars(select(Account))}
    owner = session.scalar(select(User).where(User.email == AGENCY_OWNER))
    northwind, bayside = accounts["Northwind Agency"], accounts["Bayside Dental"]
    current_app.config["BILLING_LINK_RATE_LIMIT"] = 1000
    request, url = link_service.request_removal(
        session, billing_links.settings(current_app), northwind, bayside, owner,
        "customer@bayside.example", "25.00", "Please set up billing.")
    notices.link_request(session, northwind, bayside, request, url)
    # the sub-account's user signs in with an authenticator code
    sub_user = session.scalar(select(User).where(User.email == SUB_USER))
    secret = pyotp.random_base32()
    sub_user.totp_secret = sealing.seal(secret)
    sub_user.totp_enabled_at = datetime.now(UTC) - timedelta(days=1)
    session.commit()
    solo = accounts["Solo Plumbing"]
    charge = session.scalar(select(Charge).where(
        Charge.account_id == solo.id, Charge.status == ChargeStatus.SUCCEEDED)
        .order_by(Charge.id))
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "billing_link"))
    return {"northwind": northwind.id, "bayside": bayside.id, "solo": solo.id,
            "oak": accounts["Oak Street Bakery"].id, "charge": charge.id,
            "link": "/billing-link/" + url.rsplit("/", 1)[1], "message": message.id,
            "secret": secret}


def sign_in(page: Page, email: str, password: str = demo.PASSWORD) -> None:
    """The password step: the next page (the account's, or the code step) is in front."""
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    click_and_wait(page, page.get_by_role("button", name="Sign in"))


def sign_out(page: Page) -> None:
    click_and_wait(page, page.get_by_role("button", name="Sign out"), url="/login",
                   heading="Sign in")


def visit(page: Page, path: str) -> None:
    """Open a page whole and wait until it, and anything htmx loads on it, has settled
    (pages without htmx, the billing-link page and the receipt, once loaded)."""
    goto(page, path)
    expect(page.locator("h1, dialog h2").first).to_be_visible()


def agency_pages(w) -> list[str]:
    n, b, oak = w["northwind"], w["bayside"], w["oak"]
    today = datetime.now(UTC).date()
    month_ago = today - timedelta(days=30)
    return [
        f"/accounts/{n}/", f"/accounts/{n}/sub-accounts", f"/accounts/{n}/sub-accounts?status=all",
        f"/accounts/{n}/sub-accounts/{b}/billing", f"/accounts/{n}/parent",
        f"/accounts/{n}/parent/cancel", f"/accounts/{n}/parent/cancel/review",
        f"/accounts/{n}/billing/", f"/accounts/{n}/billing/logs", f"/accounts/{n}/billing/payments",
        f"/accounts/{n}/billing/statements",
        f"/accounts/{n}/billing/statements/view?from={month_ago}&to={today}",
        f"/accounts/{n}/calls/", f"/accounts/{n}/numbers/", f"/accounts/{oak}/numbers/released",
        f"/accounts/{n}/history/", f"/accounts/{n}/history/versions?type=account",
        f"/accounts/{n}/security/", f"/accounts/{n}/agent-statuses/", f"/accounts/{n}/support/",
        f"/accounts/{n}/plan/",
        f"/accounts/{n}/privacy/", f"/accounts/{b}/transfer", f"/accounts/{b}/close",
        f"/accounts/{oak}/", "/security/", "/security/two-factor", "/security/confirm-password",
        "/dev/outbox", f"/dev/outbox/{w['message']}",
    ]


def solo_pages(w) -> list[str]:
    s, charge = w["solo"], w["charge"]
    return [
        f"/accounts/{s}/", f"/accounts/{s}/billing/",
        f"/accounts/{s}/billing/payment-methods/new-card",
        f"/accounts/{s}/billing/payment-methods/new-ach",
        f"/accounts/{s}/billing/payments/{charge}",
        f"/accounts/{s}/tracking-sources", f"/accounts/{s}/tracking-sources/new",
        f"/accounts/{s}/call-queues", f"/accounts/{s}/call-queues/new",
        f"/accounts/{s}/presets", f"/accounts/{s}/presets/new?kind=call_queue",
        f"/accounts/{s}/agent-statuses/", f"/accounts/{s}/close",
        f"/accounts/{s}/plan/confirm?plan=Starter",
    ]


def test_no_page_breaks_the_policy_or_logs_an_error(page: Page, live_server, demo_world):
    problems = Problems(page)
    w = demo_world

    # Signed out: the sign-in page, an unknown page, the customer's billing-link page.
    visit(page, "/login")
    problems.allow(f"{live_server.url}/no/such/page",
                   "Failed to load resource: the server responded with a status of 404 "
                   "(NOT FOUND)")
    visit(page, "/no/such/page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    visit(page, w["link"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bayside Dental")

    # The second step of a two-factor sign-in.
    sign_in(page, SUB_USER)
    expect(page).to_have_url(re.compile(r"/login/two-factor$"))
    page.get_by_label("Authentication code").fill(pyotp.TOTP(w["secret"]).now())
    click_and_wait(page, page.get_by_role("button", name="Verify"))
    expect(page.get_by_test_id("current-account")).to_have_text("Bayside Dental")
    sign_out(page)

    sign_in(page, AGENCY_OWNER)
    expect(page.get_by_test_id("current-account")).to_have_text("Northwind Agency")
    for path in agency_pages(w):
        visit(page, path)
    sign_out(page)

    sign_in(page, SOLO_ADMIN)
    expect(page.get_by_test_id("current-account")).to_have_text("Solo Plumbing")
    for path in solo_pages(w):
        visit(page, path)

    # The receipt's Print button (was an inline onclick) prints.
    visit(page, f"/accounts/{w['solo']}/billing/payments/{w['charge']}")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("window.__printed") == 1

    assert not problems.seen, "\n".join(problems.seen)


def test_the_moved_behaviours_work_under_the_policy(page: Page, demo_world):
    problems = Problems(page)
    w = demo_world
    n = w["northwind"]
    sign_in(page, AGENCY_OWNER)
    expect(page.get_by_test_id("current-account")).to_have_text("Northwind Agency")

    # A Versions panel loads when opened (was the trigger filter toggle[target.open]).
    visit(page, f"/accounts/{n}/")
    panel = page.get_by_test_id("versions-account")
    expect(panel.locator("a", has_text="Show the versions")).to_be_attached()
    click_and_swap(page, panel.locator("summary"))
    expect(panel).to_contain_text("Kept 120 days.")  # loaded by htmx
    expect(panel.locator("a", has_text="Show the versions")).to_have_count(0)

    # Filters swap the results in place, and push the address.
    visit(page, f"/accounts/{n}/sub-accounts")
    with htmx_swap(page):
        page.get_by_label("Search by name").fill("Bay")
    expect(page).to_have_url(re.compile(r"q=Bay"))
    expect(page.locator("#results tbody tr")).to_have_count(1)
    htmx_settled(page)

    # Dark mode returns to the address htmx pushed (was an inline onsubmit).
    pushed = page.url
    assert "q=Bay" in pushed
    click_and_wait(page, page.get_by_role("button", name="Dark mode"), url=pushed)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    click_and_wait(page, page.get_by_role("button", name="Light mode"), url=pushed)
    expect(page.locator("html")).to_have_attribute("data-theme", "light")

    # A dialog loaded by htmx opens as a modal and Escape closes it.
    visit(page, f"/accounts/{n}/sub-accounts")
    click_and_swap(page, page.get_by_role("link", name="Edit billing of Cedar Law Group"))
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    # The account switcher searches when opened and as you type.
    click_and_swap(page, page.get_by_test_id("current-account"))
    with htmx_swap(page):
        page.get_by_placeholder("Find an account").fill("Cedar")
    expect(page.locator("#switcher-results")).to_contain_text("Cedar Law Group")
    htmx_settled(page)  # every request sent, answered and settled before the check

    assert not problems.seen, "\n".join(problems.seen)
