"""portal/services/people.py on a Session: the invitation's token, the one-time consume under
two writers, the role rules (issue 15)."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Invitation, InvitationStatus, Membership, Role, User
from portal.services import people
from tests import factories as f
from tests.threads import in_own_session

SETTINGS = people.LinkSettings(keys=["k-old", "k-new"], ttl=rules.INVITATION_TTL,
                               base_url="https://portal.example.test")
PASSWORD = "a long enough passphrase 15"


@pytest.fixture
def world(session):
    owner = f.user(session, "olive@acme.test", name="Olive")
    account = f.standalone(session, "Acme")
    f.member(session, owner, account, Role.OWNER)
    session.commit()
    return owner, account


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_token_is_signed_with_its_own_salt_and_rotates(world, session):
    owner, account = world
    invitation, url = people.invite(session, SETTINGS, account, owner, Role.OWNER,
                                    "new@acme.test", "user")
    session.commit()
    assert url.startswith("https://portal.example.test/invitations/")
    token = token_of(url)
    assert people.verify(SETTINGS.keys, token, SETTINGS.ttl) == invitation.link_id
    # signed by the newest key, still verified after a newer one is added
    assert people.verify(["k-new", "k-newer"], token, SETTINGS.ttl) == invitation.link_id
    with pytest.raises(people.InvitationTampered):
        people.verify(["k-newer"], token, SETTINGS.ttl)
    from billing_links import tokens

    with pytest.raises(tokens.LinkTampered):  # no billing link either
        tokens.verify(SETTINGS.keys, token, SETTINGS.ttl)


def test_an_accept_that_reads_the_link_before_a_racing_accept_made_the_user_is_told_used(
        app, world, session):
    """The other interleaving of two accepts: this one read the invitation (pending) before
    the racing accept committed, and reads the user it made (with a password) after. That
    user is the link's own doing: the answer is "already used", not "sign in to accept"."""
    owner, account = world
    invitation, url = people.invite(session, SETTINGS, account, owner, Role.OWNER,
                                    "race2@acme.test", "billing")
    session.commit()
    token = token_of(url)
    assert session.get(Invitation, invitation.id).status == InvitationStatus.PENDING  # read

    def other(s):
        user, _ = people.accept_new(s, SETTINGS, token, "Other", PASSWORD, PASSWORD)
        s.commit()
        return user.id

    thread, result = in_own_session(app, other)
    thread.start()
    thread.join(60)
    assert "value" in result, result
    # this session's copy of the invitation still says pending (read before the commit)
    assert invitation.status == InvitationStatus.PENDING
    with pytest.raises(people.InvitationUsed):
        people.accept_new(session, SETTINGS, token, "Late", PASSWORD, PASSWORD)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "race2@acme.test")) == 1


def test_a_concurrent_accept_waits_and_then_finds_it_used(app, world, session):
    """Two writers: the first consumes the invitation and holds its transaction open; the
    second (in its own session) reaches the conditional UPDATE, waits for the first (the
    row lock on PostgreSQL, the write lock on SQLite) and then changes no row: "used"."""
    owner, account = world
    invitation, url = people.invite(session, SETTINGS, account, owner, Role.OWNER,
                                    "race@acme.test", "billing")
    session.commit()
    token = token_of(url)
    first_user, _ = people.accept_new(session, SETTINGS, token, "First", PASSWORD, PASSWORD)
    # not committed yet: the second accept runs now

    def second(s):
        return people.accept_new(s, SETTINGS, token, "Second", PASSWORD, PASSWORD)

    thread, result = in_own_session(app, second)
    thread.start()
    time.sleep(0.5)  # let it reach the lock (it must still be waiting)
    assert thread.is_alive(), result  # waiting for the first writer
    session.commit()
    thread.join(60)
    assert isinstance(result.get("error"), people.InvitationUsed), result
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "race@acme.test")) == 1
    assert session.scalar(select(User.name).where(User.email == "race@acme.test")) == "First"
    stored = session.get(Invitation, invitation.id)
    assert (stored.status, stored.accepted_by_id) == (InvitationStatus.ACCEPTED, first_user.id)


def test_an_invitation_consumed_after_it_expired_is_refused(world, session):
    owner, account = world
    start = clock.now()
    _invitation, url = people.invite(session, SETTINGS, account, owner, Role.OWNER,
                                     "x@acme.test", "user", now=start)
    session.commit()
    with pytest.raises(people.InvitationExpired):
        people.accept_new(session, SETTINGS, token_of(url), "X", PASSWORD, PASSWORD,
                          now=start + rules.INVITATION_TTL)
    session.rollback()
    people.accept_new(session, SETTINGS, token_of(url), "X", PASSWORD, PASSWORD,
                      now=start + rules.INVITATION_TTL - timedelta(seconds=1))


def test_a_user_made_without_a_password_accepts_by_setting_one(world, session):
    from portal.services import auth

    owner, account = world
    made = auth.user_for_email(session, "nopass@acme.test")
    version = made.session_version
    _invitation, url = people.invite(session, SETTINGS, account, owner, Role.OWNER,
                                     "nopass@acme.test", "admin")
    session.commit()
    user, membership = people.accept_new(session, SETTINGS, token_of(url), "Nia", PASSWORD,
                                         PASSWORD)
    assert user.id == made.id and auth.has_password(user) and user.name == "Nia"
    assert user.session_version == version + 1
    assert membership.role == Role.ADMIN


def test_assignable_roles():
    assert people.assignable_roles(Role.OWNER) == [Role.OWNER, Role.ADMIN, Role.BILLING,
                                                   Role.USER]
    assert people.assignable_roles(Role.ADMIN) == [Role.ADMIN, Role.BILLING, Role.USER]
    assert people.assignable_roles(Role.BILLING) == []
    assert people.assignable_roles(Role.USER) == []


def test_billing_and_user_roles_manage_no_one(world, session):
    owner, account = world
    for role in (Role.BILLING, Role.USER):
        with pytest.raises(NotAllowed):
            people.invite(session, SETTINGS, account, owner, role, "z@acme.test", "user")


def test_a_canceled_account_invites_no_one(world, session):
    owner, account = world
    account.status, account.canceled_at = "canceled", clock.now()
    session.flush()
    with pytest.raises(NotAllowed, match="canceled"):
        people.invite(session, SETTINGS, account, owner, Role.OWNER, "z@acme.test", "user")


def test_the_last_owner_rule_counts_owners(world, session):
    owner, account = world
    mine = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    with pytest.raises(NotAllowed, match="must keep at least one owner"):
        people.change_role(session, account, owner, Role.OWNER, mine.id, "admin")
    with pytest.raises(NotAllowed, match="must keep at least one owner"):
        people.remove(session, account, owner, Role.OWNER, mine.id)
    with pytest.raises(ValidationFailed):
        people.change_role(session, account, owner, Role.OWNER, mine.id, "root")
