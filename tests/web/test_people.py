"""Settings → Users and invitations (issue 15): the list, Invite User, the one-time link
(accepted by a new user or by an existing one signed in as that email), Resend, Revoke,
change role, remove; every refusal of a link (tampered, expired, used, revoked, replaced,
wrong user signed in) and two accepts at once; tenancy and CSRF on every new route."""

import html
import re
import threading
import traceback
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.models import (
    BillingEmailRecipient,
    Invitation,
    InvitationStatus,
    Membership,
    OutboxMessage,
    Role,
    User,
)
from tests import factories as f
from tests.conftest import csrf_token
from tests.web.conftest import sign_in_as

LINK = re.compile(r"https?://[^\s\"<>]+/invitations/[A-Za-z0-9._-]+")
NEW_PASSWORD = "a long enough passphrase 15"


class World:
    pass


@pytest.fixture
def w(session):
    world = World()
    world.owner = f.user(session, "olive@northwind.test", name="Olive Owner")
    world.admin = f.user(session, "adam@northwind.test", name="Adam Admin")
    world.agency = f.agency(session, "Northwind Agency", owner=world.owner)
    f.member(session, world.admin, world.agency, Role.ADMIN)
    world.sub = f.sub(session, world.agency, "Bayside Dental")
    world.sub_owner = f.user(session, "sam@bayside.test", name="Sam Bayside")
    f.member(session, world.sub_owner, world.sub, Role.OWNER)
    world.worker = f.user(session, "una@bayside.test", name="Una User")
    world.worker_m = f.member(session, world.worker, world.sub, Role.USER)
    world.other_admin = f.user(session, "otto@elsewhere.test", name="Otto Other")
    world.other = f.standalone(session, "Elsewhere Inc", admin=world.other_admin)
    session.commit()
    return world


def path_of(url: str) -> str:
    return urlsplit(url).path


def users_path(account) -> str:
    return f"/accounts/{account.id}/users/"


def post(client, path, data=None, token_page="/login", **kwargs):
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client, token_page))
    return client.post(path, data=data, **kwargs)


def invite(client, account, email, role="user"):
    return post(client, f"/accounts/{account.id}/users/invitations",
                {"email": email, "role": role}, token_page=users_path(account))


def last_link(session, email) -> str:
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == email)
                              .order_by(OutboxMessage.id.desc())).first()
    assert message is not None, f"no email to {email}"
    assert message.kind == "invitation"
    return path_of(LINK.search(message.text_body).group(0))


def anonymous(app, address="198.51.100.7"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def accept_new(client, link, name="Bea Billing", password=NEW_PASSWORD, again=None):
    return post(client, link, {"name": name, "password": password,
                               "again": password if again is None else again})


def memberships(session, account):
    session.expire_all()
    return dict(session.execute(select(User.email, Membership.role).join(
        Membership, Membership.user_id == User.id).where(Membership.account_id == account.id)
    ).all())


def invitation_of(session, email) -> Invitation:
    session.expire_all()
    return session.scalars(select(Invitation).where(Invitation.email == email)
                           .order_by(Invitation.id.desc())).first()


def body(response) -> str:
    """The page's text with its entities read (Jinja writes "can't" as "can&#39;t")."""
    return html.unescape(response.get_data(as_text=True))


# --- the list ---------------------------------------------------------------------------------

def test_users_page_lists_people_invitations_and_who_reaches_it_through_the_agency(
        client, session, w):
    session.add(__import__("portal.models", fromlist=["SigninAttempt"]).SigninAttempt(
        email=w.worker.email, address="x", succeeded=True, user_id=w.worker.id,
        at=clock.now() - timedelta(days=1)))
    session.commit()
    sign_in_as(client, w.sub_owner)
    assert invite(client, w.sub, "new@bayside.test", "billing").status_code == 303
    page = body(client.get(users_path(w.sub)))
    members = page.split('data-testid="members"')[1].split("</table>")[0]
    for text in ("Sam Bayside", "sam@bayside.test", "Owner", "Una User", "una@bayside.test",
                 "User", "Never"):
        assert text in members
    assert members.count("<td data-label=\"Two-factor\">Off</td>") == 2
    assert f"{(clock.now() - timedelta(days=1)):%Y-%m-%d}" in members  # Una's last sign-in
    invitations = page.split('data-testid="invitations"')[1].split("</table>")[0]
    assert "new@bayside.test" in invitations and "Billing" in invitations
    through = page.split('data-testid="through-agency"')[1].split("</table>")[0]
    assert "Olive Owner" in through and "Adam Admin" in through
    assert "Through Northwind Agency" in page

    sign_in_as(client, w.owner)
    agency_page = body(client.get(users_path(w.agency)))
    assert "Through the agency" in agency_page
    assert "reach every one of its sub-accounts" in agency_page


def test_the_menu_shows_users_to_owners_and_admins_only(client, session, w):
    sign_in_as(client, w.sub_owner)
    assert f'href="{users_path(w.sub)}"' in body(client.get(f"/accounts/{w.sub.id}/"))
    sign_in_as(client, w.worker)
    assert f'href="{users_path(w.sub)}"' not in body(client.get(f"/accounts/{w.sub.id}/"))


# --- invite and accept --------------------------------------------------------------------------

def test_a_new_user_accepts_once_and_is_signed_in_with_the_invited_role(app, client, session, w):
    sign_in_as(client, w.admin)  # an agency admin, on the sub-account
    response = invite(client, w.sub, "Bea@Client.test", "billing")
    assert response.status_code == 303
    invitation = invitation_of(session, "bea@client.test")
    assert (invitation.status, invitation.role, invitation.account_id) == (
        InvitationStatus.PENDING, Role.BILLING, w.sub.id)
    assert invitation.expires_at == invitation.created_at + rules.INVITATION_TTL
    mail = session.scalars(select(OutboxMessage).where(
        OutboxMessage.to_address == "bea@client.test")).one()
    assert mail.subject == "Adam Admin invited you to Bayside Dental"
    assert "as Billing" in mail.text_body and "for 7 days" in mail.text_body
    link = last_link(session, "bea@client.test")

    bea = anonymous(app)
    page = bea.get(link)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Adam Admin invited" in body(page) and "Billing" in body(page)
    assert memberships(session, w.sub).get("bea@client.test") is None  # opening uses nothing

    done = accept_new(bea, link)
    assert done.status_code == 303, body(done)
    assert memberships(session, w.sub)["bea@client.test"] == Role.BILLING
    user = session.scalars(select(User).where(User.email == "bea@client.test")).one()
    assert user.name == "Bea Billing"
    invitation = invitation_of(session, "bea@client.test")
    assert (invitation.status, invitation.accepted_by_id) == (InvitationStatus.ACCEPTED,
                                                              user.id)
    # signed in as Bea, on the account she joined
    with bea.session_transaction() as s:
        assert s["_user_id"] == user.get_id() and s["account_id"] == w.sub.id

    # the link is used up, for anyone
    again = anonymous(app, "198.51.100.8").get(link)
    assert again.status_code == 410 and 'data-reason="used"' in body(again)
    assert accept_new(anonymous(app, "198.51.100.9"), link).status_code == 410
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "bea@client.test")) == 1


@pytest.mark.parametrize("fields, field, message", [
    ({"name": ""}, "name", "Enter your name."),
    ({"password": "short"}, "password", "at least 12 characters"),
    ({"password": "bea@client.test", "again": "bea@client.test"}, "password",
     "can't be your email address"),
    ({"again": "something else entirely"}, "again", "The two passwords are not the same."),
])
def test_bad_name_or_password_changes_nothing(app, client, session, w, fields, field, message):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "bea@client.test", "user")
    link = last_link(session, "bea@client.test")
    data = {"name": "Bea", "password": NEW_PASSWORD, "again": NEW_PASSWORD, **fields}
    response = post(anonymous(app), link, data)
    assert response.status_code == 422
    assert message in body(response)
    assert 'aria-invalid="true"' in body(response)
    assert invitation_of(session, "bea@client.test").status == InvitationStatus.PENDING
    assert session.scalar(select(User.id).where(User.email == "bea@client.test")) is None


def test_an_existing_user_accepts_only_signed_in_as_the_invited_email(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, w.other_admin.email, "admin")
    link = last_link(session, w.other_admin.email)

    # not signed in: asked to sign in as that email; a name and password are not accepted
    visitor = anonymous(app)
    page = body(visitor.get(link))
    assert f"Sign in as {w.other_admin.email}" in page
    assert 'name="password"' not in page
    refused = accept_new(visitor, link)
    assert refused.status_code == 403 and "already has a user here" in body(refused)

    # signed in as someone else: told so, and a POST adds no one
    wrong = sign_in_as(anonymous(app, "198.51.100.20"), w.worker)
    page = body(wrong.get(link))
    assert 'data-testid="wrong-user"' in page
    assert f"signed in as {w.worker.email}" in page
    refused = post(wrong, link, {})
    assert refused.status_code == 403
    assert f"This invitation is for {w.other_admin.email}" in body(refused)
    assert memberships(session, w.sub) == {"sam@bayside.test": Role.OWNER,
                                           "una@bayside.test": Role.USER}
    assert invitation_of(session, w.other_admin.email).status == InvitationStatus.PENDING

    # signed in as the invited email: Join
    right = sign_in_as(anonymous(app, "198.51.100.21"), w.other_admin)
    assert "Join Bayside Dental" in body(right.get(link))
    done = post(right, link, {})
    assert done.status_code == 303
    assert memberships(session, w.sub)[w.other_admin.email] == Role.ADMIN
    assert right.get(f"/accounts/{w.sub.id}/").status_code == 200
    assert post(right, link, {}).status_code == 410  # used


def test_an_expired_invitation_is_refused_and_changes_nothing(app, client, session, w):
    start = clock.now()
    clock.freeze(start)
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "late@client.test")
    link = last_link(session, "late@client.test")
    clock.freeze(start + rules.INVITATION_TTL - timedelta(seconds=1))
    assert anonymous(app).get(link).status_code == 200
    clock.freeze(start + rules.INVITATION_TTL)
    late = anonymous(app, "198.51.100.30")
    page = late.get(link)
    assert page.status_code == 410 and 'data-reason="expired"' in body(page)
    assert accept_new(late, link).status_code == 410
    assert session.scalar(select(User.id).where(User.email == "late@client.test")) is None
    # still listed as pending, marked Expired, with Resend
    sign_in_as(client, w.sub_owner)
    listing = body(client.get(users_path(w.sub)))
    assert '<span class="badge">Expired</span>' in listing


def test_a_revoked_invitation_stops_working(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "gone@client.test")
    link = last_link(session, "gone@client.test")
    invitation = invitation_of(session, "gone@client.test")
    path = f"/accounts/{w.sub.id}/users/invitations/{invitation.id}/revoke"
    dialog = client.get(path, headers={"HX-Request": "true"})
    assert dialog.status_code == 200 and "Revoke the invitation to gone@client.test?" in body(
        dialog)
    unconfirmed = post(client, path, {}, token_page=users_path(w.sub))
    assert unconfirmed.status_code == 422
    assert invitation_of(session, "gone@client.test").status == InvitationStatus.PENDING
    assert post(client, path, {"confirm": "yes"}, token_page=users_path(w.sub)
                ).status_code == 303
    assert invitation_of(session, "gone@client.test").status == InvitationStatus.REVOKED
    page = anonymous(app).get(link)
    assert page.status_code == 410 and 'data-reason="revoked"' in body(page)
    assert accept_new(anonymous(app, "198.51.100.40"), link).status_code == 410
    assert "gone@client.test" not in memberships(session, w.sub)
    # revoking again: no longer pending
    again = post(client, path, {"confirm": "yes"}, token_page=users_path(w.sub))
    assert again.status_code == 403 and "no longer pending" in body(again)


def test_a_newer_invitation_replaces_the_older_one(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "twice@client.test", "user")
    first = last_link(session, "twice@client.test")
    invite(client, w.sub, "twice@client.test", "billing")
    second = last_link(session, "twice@client.test")
    assert first != second
    assert anonymous(app).get(first).status_code == 410
    # Resend: a third link, the second stops
    current = invitation_of(session, "twice@client.test")
    resent = post(client, f"/accounts/{w.sub.id}/users/invitations/{current.id}/resend", {},
                  token_page=users_path(w.sub))
    assert resent.status_code == 303
    third = last_link(session, "twice@client.test")
    assert third not in (first, second)
    assert 'data-reason="revoked"' in body(anonymous(app, "198.51.100.50").get(second))
    assert accept_new(anonymous(app, "198.51.100.51"), third).status_code == 303
    assert memberships(session, w.sub)["twice@client.test"] == Role.BILLING
    statuses = sorted(i.status for i in session.scalars(select(Invitation).where(
        Invitation.email == "twice@client.test")))
    assert statuses == sorted([InvitationStatus.REPLACED, InvitationStatus.REPLACED,
                               InvitationStatus.ACCEPTED])


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t.split(".")[0],
    lambda t: "nonsense",
])
def test_a_tampered_link_is_not_found(app, client, session, w, mangle):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "t@client.test")
    link = last_link(session, "t@client.test")
    token = link.rsplit("/", 1)[1]
    bad = f"/invitations/{mangle(token)}"
    page = anonymous(app).get(bad)
    assert page.status_code == 404 and 'data-reason="tampered"' in body(page)
    assert accept_new(anonymous(app, "198.51.100.60"), bad).status_code == 404


def test_a_billing_link_token_is_no_invitation(app, session, w):
    from billing_links import tokens

    keys = app.config["BILLING_LINK_SECRET_KEYS"]
    sign_in_as(app.test_client(), w.sub_owner)
    forged = tokens.sign(keys, "0" * 32)  # a billing link's signature over a link id
    assert anonymous(app).get(f"/invitations/{forged}").status_code == 404


def test_two_accepts_at_once_make_one_user_and_one_membership(app, client, session, w):
    """Two browsers submit the same new-user link at the same moment: one joins (303), the
    other is told the invitation was already used (410); one user, one membership."""
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "race@client.test", "billing")
    link = last_link(session, "race@client.test")
    session.commit()
    browsers = [anonymous(app, f"198.51.100.{70 + i}") for i in range(2)]
    tokens = [csrf_token(b, "/login") for b in browsers]
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def go(i):
        try:
            barrier.wait(timeout=30)
            response = browsers[i].post(link, data={
                "name": f"Racer {i}", "password": NEW_PASSWORD, "again": NEW_PASSWORD,
                "csrf_token": tokens[i]})
            results[i] = (response.status_code, body(response))
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(status for status, _ in results.values()) == [303, 410], results
    loser = next(html for status, html in results.values() if status == 410)
    assert 'data-reason="used"' in loser
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "race@client.test")) == 1
    assert memberships(session, w.sub)["race@client.test"] == Role.BILLING
    assert session.scalar(select(func.count()).select_from(Membership).where(
        Membership.account_id == w.sub.id)) == 3


def test_two_accepts_at_once_by_the_invited_user_join_once(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, w.other_admin.email, "user")
    link = last_link(session, w.other_admin.email)
    session.commit()
    tabs = [sign_in_as(anonymous(app, f"198.51.100.{80 + i}"), w.other_admin)
            for i in range(2)]
    tokens = [csrf_token(t, link) for t in tabs]
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def go(i):
        try:
            barrier.wait(timeout=30)
            results[i] = tabs[i].post(link, data={"csrf_token": tokens[i]}).status_code
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results.values()) == [303, 410]
    assert session.scalar(select(func.count()).select_from(Membership).where(
        Membership.account_id == w.sub.id, Membership.user_id == w.other_admin.id)) == 1


# --- the rules of inviting ----------------------------------------------------------------------

@pytest.mark.parametrize("email, role, field, message", [
    ("", "user", "email", "Enter their email address"),
    ("not an email", "user", "email", "Enter their email address"),
    ("x@client.test", "emperor", "role", "Choose a role"),
    ("una@bayside.test", "user", "email", "una@bayside.test is already a user of Bayside"),
])
def test_bad_invitations_are_refused_with_the_reason(client, session, w, email, role, field,
                                                     message):
    sign_in_as(client, w.sub_owner)
    response = post(client, f"/accounts/{w.sub.id}/users/invitations",
                    {"email": email, "role": role}, token_page=users_path(w.sub),
                    headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = body(response)
    assert message in html and 'id="invite-form"' in html and "<html" not in html
    assert session.scalar(select(func.count()).select_from(Invitation)) == 0
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_only_an_owner_invites_an_owner(client, session, w):
    sign_in_as(client, w.worker)  # (a user: not even the page)
    assert client.get(users_path(w.sub)).status_code == 403
    admin = f.user(session, "ada@bayside.test", name="Ada Admin")
    f.member(session, admin, w.sub, Role.ADMIN)
    session.commit()
    sign_in_as(client, admin)
    assert 'value="owner"' not in body(client.get(users_path(w.sub)))
    response = invite(client, w.sub, "boss@client.test", "owner")
    assert response.status_code == 422
    assert "Only an owner can make someone an owner." in body(response)
    sign_in_as(client, w.sub_owner)
    assert invite(client, w.sub, "boss@client.test", "owner").status_code == 303


def test_invitations_are_throttled_per_account(client, session, w):
    sign_in_as(client, w.sub_owner)
    for i in range(rules.INVITATIONS_PER_HOUR):
        assert invite(client, w.sub, f"p{i}@client.test").status_code == 303
    response = invite(client, w.sub, "one-more@client.test")
    assert response.status_code == 429
    assert "wait a while before sending more" in body(response)
    assert invitation_of(session, "one-more@client.test") is None
    # another account is not held back
    sign_in_as(client, w.other_admin)
    assert invite(client, w.other, "fresh@client.test").status_code == 303
    # an hour later, again
    clock.freeze(clock.now() + timedelta(hours=1, seconds=1))
    sign_in_as(client, w.sub_owner)
    assert invite(client, w.sub, "one-more@client.test").status_code == 303


# --- change role, remove ------------------------------------------------------------------------

def role_path(account, membership):
    return f"/accounts/{account.id}/users/{membership.id}/role"


def remove_path(account, membership):
    return f"/accounts/{account.id}/users/{membership.id}/remove"


def membership(session, user, account):
    return session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                   Membership.account_id == account.id))


def test_an_owner_changes_a_role(client, session, w):
    sign_in_as(client, w.sub_owner)
    path = role_path(w.sub, w.worker_m)
    assert "Change Una User's role" in body(client.get(path, headers={"HX-Request": "true"}))
    assert post(client, path, {"role": "billing"}, token_page=users_path(w.sub)
                ).status_code == 303
    assert memberships(session, w.sub)["una@bayside.test"] == Role.BILLING


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, session, w):
    sign_in_as(client, w.sub_owner)
    mine = membership(session, w.sub_owner, w.sub)
    response = post(client, role_path(w.sub, mine), {"role": "admin"},
                    token_page=users_path(w.sub))
    assert response.status_code == 403
    assert "Bayside Dental must keep at least one owner" in body(response)
    response = post(client, remove_path(w.sub, mine), {"confirm": "yes"},
                    token_page=users_path(w.sub))
    assert response.status_code == 403
    assert "must keep at least one owner" in body(response)
    assert memberships(session, w.sub)["sam@bayside.test"] == Role.OWNER
    # with a second owner, the first may step down
    post(client, role_path(w.sub, w.worker_m), {"role": "owner"}, token_page=users_path(w.sub))
    assert post(client, role_path(w.sub, mine), {"role": "admin"},
                token_page=users_path(w.sub)).status_code == 303
    assert memberships(session, w.sub)["sam@bayside.test"] == Role.ADMIN


def test_nobody_raises_their_own_role_and_admins_leave_owners_alone(client, session, w):
    admin = f.user(session, "ada@bayside.test", name="Ada Admin")
    f.member(session, admin, w.sub, Role.ADMIN)
    session.commit()
    sign_in_as(client, admin)
    mine = membership(session, admin, w.sub)
    raised = post(client, role_path(w.sub, mine), {"role": "owner"},
                  token_page=users_path(w.sub))
    assert raised.status_code == 422 and "Only an owner can make someone an owner." in body(
        raised)
    owner_m = membership(session, w.sub_owner, w.sub)
    assert post(client, role_path(w.sub, owner_m), {"role": "user"},
                token_page=users_path(w.sub)).status_code == 403
    assert post(client, remove_path(w.sub, owner_m), {"confirm": "yes"},
                token_page=users_path(w.sub)).status_code == 403
    assert memberships(session, w.sub)["sam@bayside.test"] == Role.OWNER
    assert memberships(session, w.sub)["ada@bayside.test"] == Role.ADMIN
    # an admin may lower their own role (and then can't manage people any more)
    assert post(client, role_path(w.sub, mine), {"role": "user"},
                token_page=users_path(w.sub)).status_code == 303
    assert client.get(users_path(w.sub)).status_code == 403


def test_a_removed_user_is_out_of_that_account_at_once(app, client, session, w):
    session.add(BillingEmailRecipient(account_id=w.sub.id, user_id=w.worker.id))
    session.commit()
    una = sign_in_as(anonymous(app, "198.51.100.90"), w.worker)
    assert una.get(f"/accounts/{w.sub.id}/calls/").status_code == 200
    sign_in_as(client, w.sub_owner)
    unconfirmed = post(client, remove_path(w.sub, w.worker_m), {},
                       token_page=users_path(w.sub))
    assert unconfirmed.status_code == 422
    done = post(client, remove_path(w.sub, w.worker_m), {"confirm": "yes"},
                token_page=users_path(w.sub))
    assert done.status_code == 303
    assert "una@bayside.test" not in memberships(session, w.sub)
    assert session.scalar(select(func.count()).select_from(BillingEmailRecipient)) == 0
    # her very next request to the account, in the session she already had
    assert una.get(f"/accounts/{w.sub.id}/calls/").status_code == 404
    assert una.post(f"/accounts/{w.sub.id}/agent-statuses/mine",
                    data={"status": "away"}).status_code in (400, 404)
    assert session.get(User, w.worker.id) is not None  # the user stays


# --- tenancy and CSRF ---------------------------------------------------------------------------

def test_every_people_route_is_not_found_to_other_tenants(client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "mine@client.test")
    invitation = invitation_of(session, "mine@client.test")
    base = f"/accounts/{w.sub.id}/users"
    routes = [("get", f"{base}/"), ("post", f"{base}/invitations"),
              ("post", f"{base}/invitations/{invitation.id}/resend"),
              ("get", f"{base}/invitations/{invitation.id}/revoke"),
              ("post", f"{base}/invitations/{invitation.id}/revoke"),
              ("get", f"{base}/{w.worker_m.id}/role"), ("post", f"{base}/{w.worker_m.id}/role"),
              ("get", f"{base}/{w.worker_m.id}/remove"),
              ("post", f"{base}/{w.worker_m.id}/remove")]
    sign_in_as(client, w.other_admin)
    token = csrf_token(client, users_path(w.other))
    for method, path in routes:
        data = {"csrf_token": token, "confirm": "yes", "role": "owner", "email": "x@y.test"}
        response = client.get(path) if method == "get" else client.post(path, data=data)
        assert response.status_code == 404, (method, path)
    # an id of another account's record, through an account the user does manage
    other_base = f"/accounts/{w.other.id}/users"
    for method, path in [("post", f"{other_base}/invitations/{invitation.id}/resend"),
                         ("get", f"{other_base}/{w.worker_m.id}/role"),
                         ("post", f"{other_base}/{w.worker_m.id}/remove")]:
        data = {"csrf_token": token, "confirm": "yes", "role": "owner"}
        response = client.get(path) if method == "get" else client.post(path, data=data)
        assert response.status_code == 404, (method, path)
    assert memberships(session, w.sub)["una@bayside.test"] == Role.USER
    assert invitation_of(session, "mine@client.test").status == InvitationStatus.PENDING


def test_signed_out_and_no_csrf_change_nothing(app, client, session, w):
    base = f"/accounts/{w.sub.id}/users"
    assert client.get(f"{base}/").status_code == 302  # to sign in
    sign_in_as(client, w.sub_owner)
    assert client.post(f"{base}/invitations", data={"email": "a@b.test", "role": "user"}
                       ).status_code == 400
    assert client.post(f"{base}/{w.worker_m.id}/remove", data={"confirm": "yes"}
                       ).status_code == 400
    invite(client, w.sub, "c@client.test")
    link = last_link(session, "c@client.test")
    assert anonymous(app).post(link, data={"name": "C", "password": NEW_PASSWORD,
                                           "again": NEW_PASSWORD}).status_code == 400
    assert session.scalar(select(func.count()).select_from(Invitation)) == 1
    assert memberships(session, w.sub)["una@bayside.test"] == Role.USER


def test_an_owner_who_removes_themself_is_out_at_once(client, session, w):
    """With a second owner, an owner may leave: the answer sends them home, and the account
    is gone from their reach in the same session."""
    second = f.user(session, "sue@bayside.test", name="Sue Second")
    f.member(session, second, w.sub, Role.OWNER)
    session.commit()
    sign_in_as(client, w.sub_owner)
    mine = membership(session, w.sub_owner, w.sub)
    done = post(client, remove_path(w.sub, mine), {"confirm": "yes"},
                token_page=users_path(w.sub))
    assert done.status_code == 303 and done.headers["Location"].endswith("/")
    assert "sam@bayside.test" not in memberships(session, w.sub)
    assert client.get(users_path(w.sub)).status_code == 404
    assert client.get(f"/accounts/{w.sub.id}/").status_code == 404


def test_removing_an_agency_admin_ends_their_reach_into_every_sub_account(client, session, w):
    sign_in_as(client, w.owner)
    adam = membership(session, w.admin, w.agency)
    assert post(client, remove_path(w.agency, adam), {"confirm": "yes"},
                token_page=users_path(w.agency)).status_code == 303
    sign_in_as(client, w.admin)
    assert client.get(f"/accounts/{w.sub.id}/").status_code == 404
    assert client.get(f"/accounts/{w.agency.id}/").status_code == 404
