"""Settings → Users in the browser (issue 15): an agency admin opens a customer-billed
sub-account's Users page, invites a billing user; the mail job delivers the invitation to a
real SMTP server (aiosmtpd on loopback, tests/mailbox.py) and the link is read from the email
that arrived there; the invited person opens it in a browser of their own, chooses a name and
password, and lands signed in on Billing Settings, the only page their role opens. The link
then works no more. Screenshots: test-artifacts/i15-people-*.png (desktop and phone)."""

import re
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from portal.models import BillingMode, Role
from tests import factories as f
from tests.browser.conftest import (
    TIMEOUT_MS,
    account_url,
    axe,
    click_and_wait,
    goto,
    shots,
)
from tests.mailbox import Mailbox

pytestmark = pytest.mark.browser

ADMIN = "adam@northwind.test"
INVITED = "bea@bayside.test"
AGENCY, SUB = "Northwind Agency", "Bayside Dental"
PASSWORD = "a long enough passphrase 15"


@pytest.fixture
def world(session):
    owner = f.user(session, "olive@northwind.test", name="Olive Owner")
    admin = f.user(session, ADMIN, name="Adam Admin")
    agency = f.agency(session, AGENCY, owner=owner)
    f.member(session, admin, agency, Role.ADMIN)
    sub = f.sub(session, agency, SUB, billing=BillingMode.CUSTOMER)
    f.funds(session, sub, 40_00)
    sam = f.user(session, "sam@bayside.test", name="Sam Bayside")
    f.member(session, sam, sub, Role.OWNER)
    session.commit()
    return SimpleNamespace(sub_id=sub.id)


@pytest.fixture
def invited_page(browser: Browser, base_url, app):
    """The invited person's own browser: a fresh context, no session."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def mailbox():
    with Mailbox() as box:
        yield box


def test_an_admin_invites_a_billing_user_who_accepts_from_the_email_and_sees_only_billing(
        page, invited_page, sign_in, screenshot, world, app, session, mailbox):
    problems: list[str] = []
    sign_in(ADMIN)
    users = f"/accounts/{world.sub_id}/users/"
    goto(page, f"/accounts/{world.sub_id}/", heading=f"Account Settings · {SUB}")
    menu = page.get_by_role("navigation", name="Main")
    click_and_wait(page, menu.get_by_role("link", name="Users", exact=True), url=users,
                   heading=f"Users · {SUB}")
    members = page.get_by_test_id("members")
    expect(members).to_contain_text("Sam Bayside")
    expect(members).to_contain_text("sam@bayside.test")
    through = page.get_by_test_id("through-agency")
    expect(through).to_contain_text("Adam Admin")
    expect(through).to_contain_text("Olive Owner")
    expect(page.get_by_test_id("no-invitations")).to_be_visible()
    assert axe(page) == []
    shots(page, screenshot, "i15-people-users", problems)

    # Invite User: a bad email first (the message by the field, nothing sent)
    page.get_by_label("Email").fill("not an email")
    page.get_by_label("Role").select_option("billing")
    page.get_by_role("button", name="Send invitation").click()
    email = page.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_have_text(
        "Enter their email address, like name@example.com.")
    assert axe(page, "#invite-form") == []
    shots(page, screenshot, "i15-people-invite-error", problems)

    email.fill(INVITED)
    page.get_by_label("Role").select_option("billing")
    click_and_wait(page, page.get_by_role("button", name="Send invitation"), url=users,
                   heading=f"Users · {SUB}")
    expect(page.get_by_role("status").filter(has_text="Invited")).to_have_text(
        f"Invited {INVITED} as Billing. The link works for 7 days.")
    pending = page.get_by_test_id("invitations")
    expect(pending).to_contain_text(INVITED)
    expect(pending).to_contain_text("Billing")
    shots(page, screenshot, "i15-people-invited", problems)

    # The email, delivered by the mail job to the SMTP server and read from that mailbox
    assert mailbox.deliver(app, session) >= 1
    subject = f"Adam Admin invited you to {SUB}"
    email = mailbox.one(to=INVITED)
    assert email["Subject"] == subject
    assert email["To"] == INVITED
    text = " ".join(Mailbox.text(email).split())
    assert "as Billing" in text
    links = set(re.findall(r"https?://[^\s\"<>]+/invitations/[A-Za-z0-9._-]+", text))
    assert len(links) == 1, links
    [link] = links
    assert link in Mailbox.html(email)  # the HTML part carries the same link
    path = urlsplit(link).path

    # The invited person's browser
    invited = invited_page
    response = goto(invited, path, heading=f"Join {SUB}")
    assert response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    expect(invited.get_by_test_id("invitation")).to_contain_text(
        f"Adam Admin invited {INVITED} to {SUB} as Billing")
    assert axe(invited) == []
    shots(invited, screenshot, "i15-people-accept", problems)

    invited.get_by_label("Your name").fill("Bea Billing")
    invited.get_by_label(re.compile(r"^Password")).fill("short")
    invited.get_by_label("The same password again").fill("short")
    click_and_wait(invited, invited.get_by_role("button", name=f"Join {SUB}"), url=path,
                   heading=f"Join {SUB}")
    expect(invited.locator("#password-error")).to_contain_text("at least 12 characters")
    invited.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    invited.get_by_label("The same password again").fill(PASSWORD)
    click_and_wait(invited, invited.get_by_role("button", name=f"Join {SUB}"),
                   url=account_url("billing/"), heading=f"Billing Settings · {SUB}")
    expect(invited.get_by_role("status").filter(has_text="Welcome")).to_have_text(
        f"Welcome to {SUB}.")
    menu_links = invited.get_by_role("navigation", name="Main").get_by_role("link")
    expect(menu_links).to_have_text(["Billing Settings"])  # the only page the role opens
    shots(invited, screenshot, "i15-people-billing-user", problems)

    # Only billing: the calls and the users pages are refused
    for tail in ("calls/", "users/"):
        answer = invited.goto(f"/accounts/{world.sub_id}/{tail}")
        assert answer.status == 403, tail
    # The link is used up
    again = invited.goto(path)
    assert again.status == 410
    expect(invited.get_by_role("heading", level=1)).to_have_text(
        "This invitation was already used")

    # The admin sees Bea in the list with the Billing role, no pending invitation
    goto(page, users, heading=f"Users · {SUB}")
    bea = page.get_by_test_id("members").locator("tr").filter(has_text=INVITED)
    expect(bea.locator('td[data-label="Role"]')).to_have_text("Billing")
    expect(page.get_by_test_id("no-invitations")).to_be_visible()
    assert problems == []
