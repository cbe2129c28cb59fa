"""Issue 15: the client who pays by link becomes the sub-account's billing user, walked end to
end in the browser, with screenshots (test-artifacts/i15-client-*-desktop.png and -phone.png).

The agency owner sends Remove from Agency Billing's link from the Billing column; the mail job
delivers it to a real SMTP server (aiosmtpd on loopback, tests/mailbox.py) and the link is read
from the email that arrived there. The client opens it in a browser of their own, pays, and the
thank-you page offers "Set up your sign-in to manage cards, payments and statements" (the
receipt email, read from the same mailbox, carries the same invitation). They accept (a short
password first), land on that sub-account's Billing Settings, see nothing else of the account
(the menu, the refused pages, no other account), add a card and make it Primary.
"""

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from portal.models import Invitation, InvitationStatus, Membership, Role, User
from tests import factories as f
from tests.browser.conftest import (
    COUNT_SETTLES,
    TIMEOUT_MS,
    account_url,
    axe,
    click_and_wait,
    goto,
    shots,
)
from tests.browser.test_billing import add_card_in_dialog as add_card
from tests.browser.test_billing import (
    expect_roles,
    payment_rows,
    section,
)
from tests.browser.test_billing import set_role_with_pencil as set_role
from tests.browser.test_billing_link import (
    fill_card,
    flash,
    open_accounts,
    open_pencil,
    pay_button,
)
from tests.mailbox import Mailbox

pytestmark = pytest.mark.browser

VISA, MASTERCARD = "4242424242424242", "5555555555554444"
OWNER, CUSTOMER = "owner@example.test", "pat@bayside.test"
AGENCY, SUB, OTHER = "Northwind Agency", "Bayside Dental", "Harbor Law"
PASSWORD = "a long billing passphrase"
PAID_PAGE = re.compile(r"/billing-link/paid/[^/]+$")
DONE = "Thank you: billing is set up"
SET_UP = "Set up your sign-in to manage cards, payments and statements"
INVITATION = re.compile(r"/invitations/[A-Za-z0-9._-]+$")
DAY = f"{datetime.now(UTC):%b %-d}"  # the live server's clock: "Paid Dec 3" by the card
LINKS = r"https?://[^\s\"<>]+/{kind}/[A-Za-z0-9._-]+"


@pytest.fixture
def world(session):
    """Northwind Agency ($100.00) with Bayside Dental on agency billing and Harbor Law."""
    owner = f.user(session, email=OWNER, name="Olivia Owner")
    agency = f.agency(session, AGENCY, owner=owner)
    f.funds(session, agency, 100_00)
    sub = f.sub(session, agency, SUB)
    other = f.sub(session, agency, OTHER)
    session.commit()
    return SimpleNamespace(agency_id=agency.id, sub_id=sub.id, other_id=other.id)


@pytest.fixture
def client_page(browser: Browser, base_url, app):
    """The client's own browser: a fresh context, no session (`app` first: the data outlives
    it)."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(COUNT_SETTLES)  # as the `page` fixture: click_and_swap counts swaps
    yield page
    context.close()


@pytest.fixture
def mailbox():
    with Mailbox() as box:
        yield box


def only_link(text: str, kind: str) -> str:
    links = set(re.findall(LINKS.format(kind=kind), text))
    assert len(links) == 1, (kind, links, text)
    return urlsplit(links.pop()).path


def test_the_client_pays_accepts_the_invitation_and_updates_their_card(
        page: Page, client_page: Page, sign_in, screenshot, world, app, session, mailbox):
    problems: list[str] = []

    # ---- the agency sends the link from the Billing column
    sign_in(OWNER)
    open_accounts(page)
    dialog = open_pencil(page)
    dialog.get_by_label("Customer's email address").fill(CUSTOMER)
    dialog.get_by_label("Starting balance ($, minimum $25)").fill("40")
    dialog.get_by_label("Email message").fill("Hi Pat, Bayside Dental pays its own calls now.")
    click_and_wait(page, dialog.get_by_role("button", name="Email Client"),
                   url=account_url("sub-accounts"), heading=f"Accounts · {AGENCY}")
    expect(flash(page, "Emailed")).to_contain_text(f"Emailed {CUSTOMER} a secure link")

    # ---- the request email, delivered over SMTP and read from the mailbox
    assert mailbox.deliver(app, session) >= 1
    pay_path = only_link(Mailbox.text(mailbox.one(to=CUSTOMER)), "billing-link")

    # ---- the client pays in their own browser
    client = client_page
    goto(client, pay_path, heading=f"Set up billing for {SUB}")
    client.get_by_label("Payment amount ($)").fill("40")
    fill_card(client, VISA)
    click_and_wait(client, pay_button(client), url=PAID_PAGE, heading=DONE)
    thank_you = client.url
    offer = client.get_by_test_id("payer-access")
    expect(offer).to_have_attribute("data-state", "invited")
    expect(offer.get_by_role("heading", level=2)).to_have_text(
        f"Your sign-in for {SUB}'s billing")
    expect(offer).to_contain_text(
        f"{AGENCY}'s billing request makes you {SUB}'s billing user: you see its Billing "
        "Settings only (cards, Primary and Backup, auto recharge, Make a Payment, payment "
        "history with receipts, statements), nothing else of the account.")
    invite = offer.get_by_role("link", name=SET_UP)
    expect(invite).to_have_attribute("href", INVITATION)
    assert axe(client) == []
    shots(client, screenshot, "i15-client-thank-you", problems)

    # ---- the receipt email carries the same invitation (another signature, same row)
    mailbox.deliver(app, session)
    receipt = [m for m in mailbox.messages(to=CUSTOMER) if m["Subject"].startswith("Receipt ")]
    assert len(receipt) == 1, [m["Subject"] for m in mailbox.messages(to=CUSTOMER)]
    text = Mailbox.text(receipt[0])
    assert f"{SET_UP}:" in text
    emailed = only_link(text, "invitations")
    session.expire_all()
    [invitation] = session.scalars(select(Invitation)).all()
    assert (invitation.email, invitation.role, invitation.status) == (
        CUSTOMER, Role.BILLING, InvitationStatus.PENDING)

    # ---- accept from the thank-you page: a short password first, then a good one
    click_and_wait(client, invite, url=INVITATION, heading=f"Join {SUB}")
    accept_path = urlsplit(client.url).path
    expect(client.get_by_test_id("invitation")).to_contain_text(
        f"Olivia Owner invited {CUSTOMER} to {SUB} as Billing")
    assert axe(client) == []
    shots(client, screenshot, "i15-client-accept", problems)
    client.get_by_label("Your name").fill("Pat Lee")
    client.get_by_label(re.compile(r"^Password")).fill("short")
    client.get_by_label("The same password again").fill("short")
    click_and_wait(client, client.get_by_role("button", name=f"Join {SUB}"), url=accept_path,
                   heading=f"Join {SUB}")
    expect(client.locator("#password-error")).to_contain_text("at least 12 characters")
    shots(client, screenshot, "i15-client-accept-error", problems)
    client.get_by_label(re.compile(r"^Password")).fill(PASSWORD)
    client.get_by_label("The same password again").fill(PASSWORD)
    click_and_wait(client, client.get_by_role("button", name=f"Join {SUB}"),
                   url=account_url("billing/"), heading=f"Billing Settings · {SUB}")
    expect(client.get_by_role("status").filter(has_text="Welcome")).to_have_text(
        f"Welcome to {SUB}.")

    # ---- that sub-account's Billing Settings, and nothing else
    menu = client.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link")).to_have_text(["Billing Settings"])
    expect(client.get_by_test_id("current-account")).to_have_text(SUB)
    expect(client.locator(".switcher")).to_have_count(0)  # one account: nothing to switch to
    expect_roles(client, {f"Visa ending 4242 Paid {DAY}": "Primary"})
    expect(payment_rows(client)).to_have_count(1)
    expect(payment_rows(client).first).to_contain_text("$40.00")
    for name in ("Make a Payment", "Account Payment History"):
        expect(section(client, name)).to_be_visible()
    assert axe(client) == []
    shots(client, screenshot, "i15-client-billing", problems)
    for path, status in ((f"/accounts/{world.sub_id}/calls/", 403),
                         (f"/accounts/{world.sub_id}/users/", 403),
                         (f"/accounts/{world.sub_id}/", None),  # the front page: Billing
                         (f"/accounts/{world.agency_id}/billing/", 404),
                         (f"/accounts/{world.other_id}/billing/", 404)):
        answer = client.goto(path)
        if status is None:
            assert urlsplit(client.url).path == f"/accounts/{world.sub_id}/billing/"
        else:
            assert answer.status == status, path
    goto(client, f"/accounts/{world.sub_id}/billing/", heading=f"Billing Settings · {SUB}")

    # ---- the client updates their card: a new card, made Primary
    add_card(client, "Pat Lee", MASTERCARD)
    expect_roles(client, {f"Visa ending 4242 Paid {DAY}": "Primary",
                          "Mastercard ending 4444": "—"})
    set_role(client, "Mastercard ending 4444", "Primary")
    # the pencil swaps the roles: the Visa steps down to the new card's old role (none)
    expect_roles(client, {"Mastercard ending 4444": "Primary",
                          f"Visa ending 4242 Paid {DAY}": "—"})
    shots(client, screenshot, "i15-client-card-primary", problems)

    # ---- the state behind it, and the links used up
    session.expire_all()
    user = session.scalars(select(User).where(User.email == CUSTOMER)).one()
    assert dict(session.execute(select(Membership.account_id, Membership.role)
                                .where(Membership.user_id == user.id)).all()) == {
        world.sub_id: Role.BILLING}
    assert client.goto(accept_path).status == 410
    assert client.goto(emailed).status == 410
    goto(client, urlsplit(thank_you).path, heading=DONE)
    expect(client.get_by_test_id("payer-access")).to_have_attribute("data-state", "accepted")
    assert problems == []
