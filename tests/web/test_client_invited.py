"""Issue 15: the client who pays a billing link becomes the sub-account's billing user.

Once the customer named on a billing request has paid (and billing switched), they are
invited, with the same invitation as Settings → Users (people.invite_payer: an Invitation
row, its signed one-time link, the /invitations/<token> page), as the sub-account's
**billing** user. The thank-you page (the link itself only in the browser that paid) and the
receipt email carry it: "Set up your sign-in to manage cards, payments and statements". An
email that already has a sign-in gets the "sign in to accept" kind; someone who already
reaches the sub-account is not invited. Signed in, the billing user opens that sub-account's
Billing Settings only.
"""

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.models import (
    Charge,
    ChargeStatus,
    Invitation,
    InvitationStatus,
    Membership,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
    Role,
    User,
)
from portal.sandbox.testing import paying_card
from portal.services import charges, lifecycle
from portal.services.gateway import SandboxGateway
from tests.conftest import csrf_token
from tests.web.conftest import sign_in_as
from tests.web.link_world import (
    BASE,
    CUSTOMER,
    DECLINED,
    NOW,
    TIMEOUT,
    Customer,
    build,
    configure,
    issue,
    path_of,
)

PASSWORD = "a long billing passphrase"
SET_UP = "Set up your sign-in to manage cards, payments and statements"
SIGN_IN = "Sign in to manage cards, payments and statements"
INVITATION_URL = re.compile(rf"{re.escape(BASE)}(/invitations/[A-Za-z0-9_.\-]+)")


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    return build(session)


@pytest.fixture
def customer(app):
    return Customer(app)


def body(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def words(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def pay(session, w, customer, email=CUSTOMER, **fields):
    """The agency emails Bayside Dental's link to `email`; the customer pays it. Returns the
    thank-you page's path."""
    url = issue(session, w, email=email)
    response = customer.pay(url, follow=False, **fields)
    assert response.status_code == 303, body(response)[:500]
    return path_of(response.headers["Location"])


def invitations(session):
    session.expire_all()
    return session.scalars(select(Invitation).order_by(Invitation.id)).all()


def receipt_mail(session, email=CUSTOMER) -> OutboxMessage:
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(  # the link's receipt to the payer
        OutboxMessage.kind == "receipt", OutboxMessage.to_address == email,
        OutboxMessage.dedupe_key.like("billing-link-receipt:%"))).one()


def access(page: str) -> str:
    return re.search(r'data-testid="payer-access" data-state="([a-z]+)"', page).group(1)


def invitation_link(page: str) -> str | None:
    found = re.search(r'href="([^"]+)" data-testid="invitation-link">([^<]+)</a>', page)
    return (path_of(found.group(1)), found.group(2)) if found else None


def roles_of(session, email) -> dict:
    session.expire_all()
    return dict(session.execute(select(Membership.account_id, Membership.role)
                                .join(User, User.id == Membership.user_id)
                                .where(User.email == email)).all())


def post(client, path, data=None, token_page="/login"):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, token_page))
    return client.post(path, data=data)


# --- the invitation -------------------------------------------------------------------------------

def test_paying_invites_the_payer_as_the_sub_accounts_billing_user(session, w, customer):
    thank_you = pay(session, w, customer)
    [invitation] = invitations(session)
    assert (invitation.account_id, invitation.email, invitation.role, invitation.status) == (
        w.bayside.id, CUSTOMER, Role.BILLING, InvitationStatus.PENDING)
    assert invitation.invited_by_id == w.avery.id  # who sent the billing link
    assert invitation.expires_at == NOW + rules.INVITATION_TTL
    # no invitation email of its own: the receipt carries it
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "invitation")) == 0
    text = receipt_mail(session).text_body
    assert f"{SET_UP}:\n{BASE}/invitations/" in text
    assert ("Northwind Agency's billing request makes you Bayside Dental's billing user: you "
            "see its Billing Settings only (cards, Primary and Backup, auto recharge, Make a "
            "Payment, payment history with receipts, statements)") in " ".join(text.split())
    assert "The link works once, until November 30, 2026 12:00 UTC." in text
    assert "ask Northwind Agency for one" not in text
    emailed = INVITATION_URL.search(text).group(1)

    # the thank-you page, in the browser that paid: the same invitation's link
    page = body(customer.client.get(thank_you))
    assert access(page) == "invited"
    link, label = invitation_link(page)
    assert label == SET_UP
    assert "It works once, until November 30, 2026 12:00 UTC." in words(page)
    # both links open the invitation page for Bayside Dental, as Billing
    for path in (link, emailed):
        opened = body(customer.client.get(path))
        assert "<h1>Join Bayside Dental</h1>" in opened
        assert "Avery invited" in words(opened) and "as Billing" in words(opened)
        assert 'name="password"' in opened
    # opening the pages used nothing up
    assert invitations(session)[0].status == InvitationStatus.PENDING
    assert roles_of(session, CUSTOMER) == {}


def test_the_link_shows_only_in_the_browser_that_paid(app, session, w, customer):
    thank_you = pay(session, w, customer)
    other = Customer(app, address="203.0.113.99")  # the receipt link, passed on
    page = body(other.client.get(thank_you))
    assert "<h1>Thank you: billing is set up</h1>" in page
    assert access(page) == "invited"
    assert invitation_link(page) is None and "/invitations/" not in page
    assert ("An invitation to manage Bayside Dental's billing (cards, payments and statements) "
            "was emailed to pat@bayside.example with the receipt.") in words(page)


def test_accepting_makes_a_billing_user_of_that_sub_account_only(app, session, w, customer):
    thank_you = pay(session, w, customer)
    link, _ = invitation_link(body(customer.client.get(thank_you)))
    client = customer.client
    # a short password first: refused with the reason, nothing made
    short = post(client, link, {"name": "Pat Lee", "password": "short", "again": "short"})
    assert short.status_code == 422 and "at least 12 characters" in body(short)
    assert roles_of(session, CUSTOMER) == {}
    done = post(client, link, {"name": "Pat Lee", "password": PASSWORD, "again": PASSWORD})
    assert done.status_code == 303, body(done)[:500]
    assert roles_of(session, CUSTOMER) == {w.bayside.id: Role.BILLING}
    [invitation] = invitations(session)
    assert invitation.status == InvitationStatus.ACCEPTED

    # signed in: the front page sends them to Billing Settings; it and its pages open
    home = client.get(f"/accounts/{w.bayside.id}/")
    assert home.status_code in (302, 303)
    assert home.headers["Location"].endswith(f"/accounts/{w.bayside.id}/billing/")
    billing = client.get(f"/accounts/{w.bayside.id}/billing/")
    assert billing.status_code == 200
    page = body(billing)
    for path in ("payments", "statements", "payment-methods/new-card"):
        assert client.get(f"/accounts/{w.bayside.id}/billing/{path}").status_code == 200, path
    # the main menu names Billing Settings and nothing else of the account
    nav = re.search(r'<nav class="mainnav".*?</nav>', page, re.S).group(0)
    assert re.findall(r'href="(/accounts/[^"]+)"', nav) == [
        f"/accounts/{w.bayside.id}/billing/"]
    assert "switcher" not in page  # one account: nothing to switch to
    # the rest of the account is refused; other accounts are not found
    for path in ("calls/", "numbers/", "users/", "agent-statuses/"):
        assert client.get(f"/accounts/{w.bayside.id}/{path}").status_code == 403, path
    for account in (w.agency, w.harbor, w.rival_sub):
        assert client.get(f"/accounts/{account.id}/billing/").status_code == 404

    # the card: add one, make it Primary (the paid card becomes Backup... or stays as set)
    token = csrf_token(client, f"/accounts/{w.bayside.id}/billing/")
    with app.app_context():  # typed into the sandbox's card form: the page posts its id
        pm = paying_card("5555555555554444", exp_month=11, exp_year=2031, cvc="321",
                         holder="Pat Lee")
    added = client.post(f"/accounts/{w.bayside.id}/billing/payment-methods/new-card", data={
        "csrf_token": token, "payment_method": pm})
    assert added.status_code in (302, 303), body(added)[:500]
    session.expire_all()
    card = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == w.bayside.id, PaymentMethod.last4 == "4444")).one()
    made = client.post(f"/accounts/{w.bayside.id}/billing/payment-methods/{card.id}/edit",
                       data={"csrf_token": token, "role": "primary"})
    assert made.status_code in (302, 303), body(made)[:500]
    session.expire_all()
    assert session.get(PaymentMethod, card.id).role == MethodRole.PRIMARY
    # the thank-you page, read again: accepted
    assert access(body(client.get(thank_you))) == "accepted"
    # the link is used up
    assert Customer(app, "203.0.113.50").client.get(link).status_code == 410


def test_an_email_with_a_sign_in_gets_the_sign_in_to_accept_kind(app, session, w, customer):
    thank_you = pay(session, w, customer, email=w.rex.email)  # Rival Agency's owner
    [invitation] = invitations(session)
    assert (invitation.email, invitation.role) == (w.rex.email, Role.BILLING)
    text = " ".join(receipt_mail(session, w.rex.email).text_body.split())
    assert (f"{w.rex.email} already has a sign-in here: sign in as {w.rex.email} to accept. "
            f"{SIGN_IN}: {BASE}/invitations/") in text
    page = body(customer.client.get(thank_you))
    link, label = invitation_link(page)
    assert label == SIGN_IN
    opened = body(customer.client.get(link))
    assert f"Sign in as {w.rex.email}" in opened and 'name="password"' not in opened
    # signed in as that email, they join as billing
    rex = sign_in_as(Customer(app, "203.0.113.60").client, w.rex)
    assert post(rex, link).status_code == 303
    assert roles_of(session, w.rex.email)[w.bayside.id] == Role.BILLING


@pytest.mark.parametrize("who", ["bea", "avery"])
def test_someone_who_already_reaches_the_sub_account_is_not_invited(session, w, customer, who):
    user = getattr(w, who)  # Bayside's own admin; Northwind's owner
    thank_you = pay(session, w, customer, email=user.email)
    assert invitations(session) == []
    assert "/invitations/" not in receipt_mail(session, user.email).text_body
    page = body(customer.client.get(thank_you))
    assert access(page) == "member"
    assert (f"{user.email} already has access to Bayside Dental: sign in and open Settings → "
            "Billing Settings.") in words(page)


def test_a_declined_payment_invites_no_one(session, w, customer):
    url = issue(session, w)
    assert customer.pay(url, number=DECLINED).status_code == 402
    assert invitations(session) == []


def test_a_late_payment_invites_when_it_settles(app, session, w, customer):
    thank_you = pay(session, w, customer, number=TIMEOUT)
    page = body(customer.client.get(thank_you))
    assert "<h1>Payment processing</h1>" in page and "payer-access" not in page
    assert invitations(session) == []
    clock.freeze(NOW + rules.CHARGE_RETRY_AFTER)
    [settled] = charges.retry_pending(session, SandboxGateway())  # the jobs, no request
    assert settled.status == ChargeStatus.SUCCEEDED
    [invitation] = invitations(session)
    assert (invitation.email, invitation.role) == (CUSTOMER, Role.BILLING)
    assert f"{SET_UP}:\n{BASE}/invitations/" in receipt_mail(session).text_body
    page = body(customer.client.get(thank_you))
    assert access(page) == "invited" and invitation_link(page)[1] == SET_UP


def test_a_payment_that_is_refunded_invites_no_one(session, w, customer):
    thank_you = pay(session, w, customer, number=TIMEOUT)
    lifecycle.close(session, w.bayside, w.avery)  # before the processor's answer
    session.commit()
    clock.freeze(NOW + rules.CHARGE_RETRY_AFTER)
    charges.retry_pending(session, SandboxGateway())
    assert invitations(session) == []
    page = body(customer.client.get(thank_you))
    assert "<h1>Payment received, and being refunded</h1>" in page
    assert "payer-access" not in page


def test_a_revoked_invitation_is_not_offered_and_the_page_says_ask_the_agency(
        app, client, session, w, customer):
    thank_you = pay(session, w, customer)
    [invitation] = invitations(session)
    sign_in_as(client, w.avery)  # Northwind's owner revokes it on Bayside's Users page
    revoked = post(client, f"/accounts/{w.bayside.id}/users/invitations/{invitation.id}/revoke",
                   {"confirm": "yes"}, token_page=f"/accounts/{w.bayside.id}/users/")
    assert revoked.status_code in (200, 303), body(revoked)[:500]
    assert invitations(session)[0].status == InvitationStatus.REVOKED
    page = body(customer.client.get(thank_you))
    assert access(page) == "none" and invitation_link(page) is None
    assert ("If you don't have a sign-in for Bayside Dental, ask Northwind Agency for one."
            in words(page))


def test_an_expired_invitation_is_not_offered(session, w, customer):
    thank_you = pay(session, w, customer)
    clock.freeze(NOW + rules.INVITATION_TTL + timedelta(minutes=1))
    page = body(customer.client.get(thank_you))
    assert access(page) == "none" and invitation_link(page) is None


def test_the_thank_you_page_writes_nothing(session, w, customer):
    thank_you = pay(session, w, customer)
    before = [(i.id, i.status, i.link_id) for i in invitations(session)]
    for _ in range(3):
        assert customer.client.get(thank_you).status_code == 200
    assert [(i.id, i.status, i.link_id) for i in invitations(session)] == before
    assert session.scalar(select(func.count()).select_from(Charge)) == 1
