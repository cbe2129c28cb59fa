"""Issue 15: an invitation to an account that is then closed. The owner invites someone from
Settings → Users, then closes the account from Account Settings (its dialog); the invited
person opens the link from the email in a browser of their own and reads that the account is
closed, by name, with nothing to fill in. Screenshots: test-artifacts/i15-people-closed-*."""

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from portal.models import Invitation, InvitationStatus, OutboxMessage, Role
from tests import factories as f
from tests.browser.conftest import TIMEOUT_MS, axe, click_and_wait, goto, shots

pytestmark = pytest.mark.browser

OWNER = "sam@bayside.test"
INVITED = "nina@client.test"
ACCOUNT = "Bayside Dental"


@pytest.fixture
def account_id(session):
    owner = f.user(session, OWNER, name="Sam Bayside")
    account = f.standalone(session, ACCOUNT, owner=owner)
    f.member(session, f.user(session, "other@bayside.test"), account, Role.USER)
    session.commit()
    return account.id


@pytest.fixture
def invited_page(browser: Browser, base_url, app):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


def test_a_link_to_a_closed_account_says_it_is_closed(page, invited_page, sign_in, screenshot,
                                                     session, account_id):
    problems: list[str] = []
    sign_in(OWNER)
    users = f"/accounts/{account_id}/users/"
    goto(page, users, heading=f"Users · {ACCOUNT}")
    page.get_by_label("Email", exact=True).fill(INVITED)
    page.get_by_label("Role", exact=True).select_option("user")
    click_and_wait(page, page.get_by_role("button", name="Send invitation"), url=users,
                   heading=f"Users · {ACCOUNT}")
    expect(page.get_by_test_id("invitations")).to_contain_text(INVITED)
    session.expire_all()
    text = session.scalar(select(OutboxMessage.text_body).where(
        OutboxMessage.to_address == INVITED, OutboxMessage.kind == "invitation"))
    path = urlsplit(re.search(r"https?://\S+/invitations/[A-Za-z0-9._-]+", text).group(0)).path

    # the owner closes the account: Close account, the confirmation, Proceed
    settings = f"/accounts/{account_id}/"
    goto(page, settings, heading=f"Account Settings · {ACCOUNT}")
    click_and_wait(page, page.get_by_role("link", name="Close account"),
                   url=re.compile(rf"/accounts/{account_id}/close$"))
    confirm = page.get_by_role("dialog", name=f"Cancel account: {ACCOUNT}")
    click_and_wait(page, confirm.get_by_role("button", name="Proceed to Cancel Account"),
                   url=re.compile(rf"/accounts/{account_id}/$"),
                   heading=f"Account Settings · {ACCOUNT}")
    expect(page.get_by_test_id("account-status")).to_have_text("Canceled")

    # the invited person's browser
    answer = goto(invited_page, path, heading="This account is closed")
    assert answer.status == 410
    problem = invited_page.get_by_test_id("invitation-problem")
    expect(problem).to_have_attribute("data-reason", "closed")
    expect(problem).to_contain_text(f"{ACCOUNT} is closed, so this invitation no longer works.")
    expect(invited_page.get_by_role("textbox")).to_have_count(0)  # nothing to fill in
    assert axe(invited_page) == []
    shots(invited_page, screenshot, "i15-people-closed-invitation", problems)

    session.expire_all()
    assert session.scalar(select(Invitation.status).where(Invitation.email == INVITED)) == (
        InvitationStatus.REVOKED)
    assert problems == []
