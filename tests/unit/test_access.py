import pytest

from portal.errors import NotFound
from portal.models import Role
from portal.services import access
from tests import factories as f


def test_direct_member_reaches_own_account_with_its_role(session):
    u = f.user(session)
    account = f.standalone(session, admin=u)
    result = access.account_for(session, u, account.id)
    assert result.account.id == account.id
    assert result.role == Role.ADMIN
    assert result.via_agency is False


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_agency_owner_and_admin_reach_every_sub_account(session, role):
    u = f.user(session)
    agency = f.agency(session)
    f.member(session, u, agency, role)
    subs = [f.sub(session, agency) for _ in range(3)]
    for sub in subs:
        result = access.account_for(session, u, sub.id)
        assert result.role == role and result.via_agency is True


def test_agency_plain_user_does_not_reach_sub_accounts(session):
    u = f.user(session)
    agency = f.agency(session)
    f.member(session, u, agency, Role.USER)
    sub = f.sub(session, agency)
    assert access.account_for(session, u, agency.id).role == Role.USER
    with pytest.raises(NotFound):
        access.account_for(session, u, sub.id)


def test_sub_account_user_reaches_neither_sibling_nor_agency(session):
    u = f.user(session)
    agency = f.agency(session)
    mine, sibling = f.sub(session, agency), f.sub(session, agency)
    f.member(session, u, mine, Role.USER)
    assert access.account_for(session, u, mine.id).role == Role.USER
    for other in (sibling, agency):
        with pytest.raises(NotFound):
            access.account_for(session, u, other.id)


def test_other_agency_and_missing_accounts_are_not_found(session):
    u = f.user(session)
    f.agency(session, owner=u)
    other = f.agency(session, owner=f.user(session))
    other_sub = f.sub(session, other)
    for account_id in (other.id, other_sub.id, 999_999):
        with pytest.raises(NotFound):
            access.account_for(session, u, account_id)


def test_highest_role_wins_when_reached_two_ways(session):
    u = f.user(session)
    agency = f.agency(session, owner=u)
    sub = f.sub(session, agency)
    f.member(session, u, sub, Role.USER)
    result = access.account_for(session, u, sub.id)
    assert result.role == Role.OWNER


def test_switcher_lists_only_reachable_accounts_matching_query(session):
    u = f.user(session)
    agency = f.agency(session, "Northwind", owner=u)
    f.sub(session, agency, "Bayside Dental")
    f.sub(session, agency, "Cedar Law")
    other = f.agency(session, "Other Agency", owner=f.user(session))
    f.sub(session, other, "Bayside Other")
    names = [a.name for a in access.switcher_accounts(session, u)]
    assert names == ["Northwind", "Bayside Dental", "Cedar Law"]
    assert [a.name for a in access.switcher_accounts(session, u, "bay")] == ["Bayside Dental"]
    assert access.switcher_accounts(session, u, "%") == []


def test_default_account_prefers_the_agency(session):
    u = f.user(session)
    agency = f.agency(session, "Zed Agency", owner=u)
    f.sub(session, agency, "Alpha")
    assert access.default_account(session, u).id == agency.id
    assert access.reaches_several(session, u) is True


def test_single_account_user_needs_no_switcher(session):
    u = f.user(session)
    f.standalone(session, admin=u)
    assert access.reaches_several(session, u) is False
    assert access.default_account(session, f.user(session)) is None
