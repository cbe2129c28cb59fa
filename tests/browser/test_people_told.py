"""Issue 15, telling the people affected, walked in a browser: the owner closes a standalone
account (Account Settings → Status → Close account → Proceed to Cancel Account); its
owner and its chosen billing-email recipient each get one "is closed" email, read here on
the dev outbox page; its plain user gets none. Screenshots: i15-told-*."""

import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from portal.models import BillingEmailRecipient, Role
from tests import factories as f
from tests.browser.conftest import account_url, click_and_wait, goto, open_menu, shots

pytestmark = pytest.mark.browser

NAME = "Lakeside Clinic"


@pytest.fixture
def clinic(session):
    owner = f.user(session, email="lee@lakeside.example")
    account = f.standalone(session, NAME, owner=owner)
    books = f.user(session, email="books@lakeside.example")
    f.member(session, books, account, Role.USER)
    f.member(session, f.user(session, email="desk@lakeside.example"), account, Role.USER)
    session.add(BillingEmailRecipient(account_id=account.id, user_id=books.id))
    session.add(BillingEmailRecipient(account_id=account.id, user_id=owner.id))
    f.number(session, account, label="Front desk")
    session.commit()
    return SimpleNamespace(email="lee@lakeside.example", id=account.id)


def test_closing_emails_the_owner_and_the_billing_recipient_once(page: Page, clinic, sign_in,
                                                                 screenshot):
    problems: list[str] = []
    sign_in(clinic.email)
    open_menu(page, "Account Settings", NAME)
    status = page.get_by_role("region", name="Status")
    click_and_wait(page, status.get_by_role("link", name="Close account"),
                   url=account_url("close"))
    confirm = page.get_by_role("dialog", name=f"Cancel account: {NAME}")
    click_and_wait(page, confirm.get_by_role("button", name="Proceed to Cancel Account"),
                   url=account_url(), heading=f"Account Settings · {NAME}")
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")

    goto(page, "/dev/outbox", heading="Outbox · development only")
    subject = f"{NAME} is closed"
    rows = page.get_by_test_id("outbox").locator("tbody tr").filter(has_text=subject)
    expect(rows).to_have_count(2)  # the owner and the billing recipient, once each
    expect(rows.filter(has_text="lee@lakeside.example")).to_have_count(1)
    expect(rows.filter(has_text="books@lakeside.example")).to_have_count(1)
    expect(rows.filter(has_text="desk@lakeside.example")).to_have_count(0)
    expect(rows.first).to_contain_text("account_closed")
    shots(page, screenshot, "i15-told-outbox", problems)

    click_and_wait(page, rows.filter(has_text="books@lakeside.example")
                   .get_by_role("link", name=subject),
                   url=re.compile(r"/dev/outbox/\d+$"), heading=subject)
    body = page.get_by_test_id("text-body")
    expect(body).to_contain_text(f"{NAME} was closed by lee@lakeside.example.")
    expect(body).to_contain_text("It can be reactivated within 60 days")
    shots(page, screenshot, "i15-told-closed-mail", problems)
    assert not problems, problems
