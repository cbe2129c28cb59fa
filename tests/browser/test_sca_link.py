"""Issue 16, 3-D Secure off-session, end to end in Chromium: an auto recharge on
4000 0027 6000 3184 (its bank asks on every payment; off-session it fails with
authentication_required) emails the billing recipients a one-time link; the link's page
shows the account, card and amount, its button charges what is still due on-session, the
sandbox's challenge appears (card-entry.js's next-action), and completing it pays.
Screenshots i16-sca-*."""

import re
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.models import LedgerEntry, OutboxMessage
from portal.services.gateway import SandboxGateway
from tests.browser.conftest import axe, click_and_wait, goto, navigation, shots
from tests.unit.test_sca_links import declined_recharge

ASK = "Confirm your card with your bank"
PAID = "Thank you: the recharge is paid"


def test_the_emailed_link_pays_the_recharge_after_the_banks_challenge(
        page: Page, app, session, screenshot):
    problems: list[str] = []
    account, _first = declined_recharge(session, SandboxGateway())
    text = session.scalars(select(OutboxMessage.text_body).where(
        OutboxMessage.kind == "authentication_needed")).first()
    path = urlsplit(re.search(r"https?://\S+/authenticate/\S+", text).group(0)).path
    session.commit()

    goto(page, path, url=re.compile(re.escape(path) + "$"), heading=ASK)
    card = page.get_by_test_id("authenticate")
    expect(card.get_by_test_id("card")).to_have_text("Visa ending 3184")
    expect(card.get_by_test_id("asked-amount")).to_have_text("$45.00")
    expect(card.get_by_test_id("due")).to_contain_text("$45.00")
    shots(page, screenshot, "i16-sca-link", problems)
    assert axe(page) == []

    click_and_wait(page, page.get_by_role("button", name="Confirm and pay $45.00"),
                   url=re.compile(re.escape(path) + "$"), heading=ASK)
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    check = page.frame_locator("iframe[title=\"Your bank's check\"]")
    expect(check.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    shots(page, screenshot, "i16-sca-challenge", problems)

    with navigation(page, url=re.compile(re.escape(path) + "$"), heading=PAID):
        check.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_test_id("authenticate")).to_contain_text(
        "$45.00 was charged to Visa ending 3184")
    shots(page, screenshot, "i16-sca-paid", problems)
    assert axe(page) == []
    session.expire_all()
    assert session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.account_id == account.id)) == 5000

    # reloading (or opening the email's link again) charges nothing
    with navigation(page, heading=PAID):
        page.reload()
    session.expire_all()
    assert session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.account_id == account.id)) == 5000
    assert problems == []
