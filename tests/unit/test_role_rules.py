"""The rules on roles in portal/services/people.py (issue 15): an account keeps an owner,
nobody raises their own role, only an owner touches owners. Written against the service, on
a Session, so the pages (B's) and anything else that changes a role get the same answer."""

import time

import pytest
from sqlalchemy import func, select

from portal.errors import NotAllowed, ValidationFailed
from portal.models import Membership, Role
from portal.services import people
from tests import factories as f
from tests.threads import in_own_session


def membership(session, user, account) -> Membership:
    return session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                   Membership.account_id == account.id))


def owners(session, account) -> int:
    return session.scalar(select(func.count()).select_from(Membership).where(
        Membership.account_id == account.id, Membership.role == Role.OWNER))


@pytest.fixture
def acme(session):
    """Acme: owners olive and oscar, admin ada, billing bill, user uma."""
    account = f.standalone(session, "Acme")
    people_ = {}
    for key, role in (("olive", Role.OWNER), ("oscar", Role.OWNER), ("ada", Role.ADMIN),
                      ("bill", Role.BILLING), ("uma", Role.USER)):
        people_[key] = f.user(session, f"{key}@acme.test", name=key.capitalize())
        f.member(session, people_[key], account, role)
    session.commit()
    return account, people_


def test_an_owner_demotes_another_owner_until_one_is_left(session, acme):
    account, p = acme
    people.change_role(session, account, p["olive"], Role.OWNER,
                       membership(session, p["oscar"], account).id, "admin")
    session.commit()
    assert owners(session, account) == 1
    # now olive is the last owner: she can't demote or remove herself, and says why
    mine = membership(session, p["olive"], account).id
    with pytest.raises(NotAllowed, match="Acme must keep at least one owner: make someone "
                                         "else an owner first"):
        people.change_role(session, account, p["olive"], Role.OWNER, mine, "billing")
    session.rollback()
    with pytest.raises(NotAllowed, match="must keep at least one owner"):
        people.remove(session, account, p["olive"], Role.OWNER, mine)
    session.rollback()
    assert membership(session, p["olive"], account).role == Role.OWNER


def test_an_owner_may_step_down_while_another_owner_remains(session, acme):
    account, p = acme
    people.change_role(session, account, p["olive"], Role.OWNER,
                       membership(session, p["olive"], account).id, "admin")
    session.commit()
    assert membership(session, p["olive"], account).role == Role.ADMIN
    assert owners(session, account) == 1


def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, session, acme):
    """The count is taken under the account's write lock: the second writer waits for the
    first, then sees one owner left and is refused."""
    account, p = acme
    people.change_role(session, account, p["olive"], Role.OWNER,
                       membership(session, p["oscar"], account).id, "admin")
    # not committed: oscar demotes olive now, in his own session
    olive_id = membership(session, p["olive"], account).id

    def oscar(s):
        from portal.models import Account, User

        return people.change_role(s, s.get(Account, account.id), s.get(User, p["oscar"].id),
                                  Role.OWNER, olive_id, "admin")

    thread, result = in_own_session(app, oscar)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), result  # waiting for olive's transaction
    session.commit()
    thread.join(60)
    assert isinstance(result.get("error"), NotAllowed), result
    assert "must keep at least one owner" in result["error"].message
    session.expire_all()
    assert owners(session, account) == 1
    assert membership(session, p["olive"], account).role == Role.OWNER


def test_an_admin_neither_makes_an_owner_nor_touches_one(session, acme):
    account, p = acme
    with pytest.raises(ValidationFailed):  # herself
        people.change_role(session, account, p["ada"], Role.ADMIN,
                           membership(session, p["ada"], account).id, "owner")
    session.rollback()
    with pytest.raises(ValidationFailed):  # someone else
        people.change_role(session, account, p["ada"], Role.ADMIN,
                           membership(session, p["uma"], account).id, "owner")
    session.rollback()
    with pytest.raises(NotAllowed, match="Only an owner"):
        people.change_role(session, account, p["ada"], Role.ADMIN,
                           membership(session, p["oscar"], account).id, "user")
    session.rollback()
    with pytest.raises(NotAllowed, match="Only an owner"):
        people.remove(session, account, p["ada"], Role.ADMIN,
                      membership(session, p["oscar"], account).id)
    session.rollback()
    assert owners(session, account) == 2
    assert membership(session, p["ada"], account).role == Role.ADMIN


def test_billing_and_user_roles_change_no_role_not_even_their_own(session, acme):
    account, p = acme
    for key, role in (("bill", Role.BILLING), ("uma", Role.USER)):
        for target, new in ((key, "admin"), (key, "user" if key == "bill" else "billing"),
                            ("ada", "user")):
            with pytest.raises(NotAllowed):
                people.change_role(session, account, p[key], role,
                                   membership(session, p[target], account).id, new)
            session.rollback()
    assert [membership(session, p[k], account).role for k in ("bill", "uma", "ada")] == [
        Role.BILLING, Role.USER, Role.ADMIN]


def test_an_admin_may_lower_her_own_role(session, acme):
    account, p = acme
    people.change_role(session, account, p["ada"], Role.ADMIN,
                       membership(session, p["ada"], account).id, "billing")
    session.commit()
    assert membership(session, p["ada"], account).role == Role.BILLING


def test_an_agency_admin_can_t_raise_her_own_membership_on_a_sub_account(session):
    """Her role on the sub-account is admin through the agency; her own membership there is
    user. Making that membership admin would raise her own role (it would outlive her
    agency role), so it is refused."""
    agency = f.agency(session, "Northwind")
    sub = f.sub(session, agency, "Bayside")
    owner = f.user(session, "avery@northwind.test", name="Avery")
    ada = f.user(session, "ada@northwind.test", name="Ada")
    f.member(session, owner, sub, Role.OWNER)
    f.member(session, ada, agency, Role.ADMIN)
    f.member(session, ada, sub, Role.USER)
    session.commit()
    with pytest.raises(NotAllowed, match="raise your own role"):
        people.change_role(session, sub, ada, Role.ADMIN, membership(session, ada, sub).id,
                           "admin")
    session.rollback()
    assert membership(session, ada, sub).role == Role.USER
    # the owner may make her an admin there
    people.change_role(session, sub, owner, Role.OWNER, membership(session, ada, sub).id,
                       "admin")
    session.commit()
    assert membership(session, ada, sub).role == Role.ADMIN
