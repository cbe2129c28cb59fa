from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from portal.errors import NotFound, ValidationFailed
from portal.models import Account, AccountKind, AccountStatus, BillingMode
from portal.services import accounts
from portal.services.accounts import SubAccountFilter
from tests import factories as f

CANCELED = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize("name,plan,errors", [
    ("", "Pro", {"name": "Enter the account name."}),
    ("   ", "Pro", {"name": "Enter the account name."}),
    ("x" * 121, "Pro", {"name": "The account name is at most 120 characters."}),
    ("Acme", "Gold", {"plan": "Choose a plan: Starter, Essentials, Pro, Performance, "
                              "Marketing Lite, Agency."}),
    ("Acme", "Agency", {"plan": "A standalone account can't be on the Agency plan."}),
])
def test_create_standalone_refuses_bad_input(session, name, plan, errors):
    with pytest.raises(ValidationFailed) as e:
        accounts.create_standalone(session, name, plan)
    assert e.value.errors == errors


def test_sub_accounts_belong_to_an_agency(session):
    standalone = f.standalone(session)
    with pytest.raises(ValidationFailed) as e:
        accounts.create_sub_account(session, standalone, "Child")
    assert e.value.errors == {"parent": "Sub-accounts belong to an agency."}
    agency = f.agency(session)
    sub = accounts.create_sub_account(session, agency, "  Child  ")
    assert (sub.kind, sub.parent_id, sub.name, sub.billing_mode) == (
        AccountKind.SUB, agency.id, "Child", BillingMode.AGENCY)


@pytest.mark.parametrize("fields", [
    {"kind": AccountKind.SUB, "parent_id": None},  # a sub needs its agency
    {"kind": AccountKind.STANDALONE, "billing_mode": BillingMode.AGENCY},  # only subs
    {"kind": AccountKind.STANDALONE, "status": AccountStatus.CANCELED},  # no canceled_at
])
def test_database_refuses_inconsistent_accounts(session, fields):
    values = {"name": "Bad", "plan": "Pro", "kind": AccountKind.STANDALONE,
              "billing_mode": BillingMode.CUSTOMER, **fields}
    session.add(Account(**values))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def _names(page):
    return [row.name for row in page.items]


@pytest.fixture
def northwind(session):
    agency = f.agency(session, "Northwind")
    f.sub(session, agency, "Bayside Dental")
    f.sub(session, agency, "Cedar 100% Law", billing=BillingMode.CUSTOMER)
    f.sub(session, agency, "Harbor_Fitness", status=AccountStatus.SWAPPING_PAUSED)
    f.sub(session, agency, "Oak Bakery", canceled_at=CANCELED)
    other = f.agency(session, "Other")
    f.sub(session, other, "Bayside Other")
    return agency


def test_list_defaults_to_active_sub_accounts_by_name(session, northwind):
    page = accounts.list_sub_accounts(session, northwind)
    assert _names(page) == ["Bayside Dental", "Cedar 100% Law", "Harbor_Fitness"]
    assert page.total == 3


@pytest.mark.parametrize("status,expected", [
    (SubAccountFilter.CANCELED, ["Oak Bakery"]),
    (SubAccountFilter.ALL, ["Bayside Dental", "Cedar 100% Law", "Harbor_Fitness", "Oak Bakery"]),
])
def test_filter_panel(session, northwind, status, expected):
    assert _names(accounts.list_sub_accounts(session, northwind, status=status)) == expected


@pytest.mark.parametrize("q,expected", [
    ("bay", ["Bayside Dental"]),
    ("BAYSIDE", ["Bayside Dental"]),
    ("100%", ["Cedar 100% Law"]),
    ("%", ["Cedar 100% Law"]),
    ("d%l", []),  # as a wildcard it would match "Bayside Dental"
    ("e_d", []),  # as a wildcard it would match "Bayside Dental"
    ("r_f", ["Harbor_Fitness"]),
])
def test_search_is_case_insensitive_and_literal(session, northwind, q, expected):
    assert _names(accounts.list_sub_accounts(session, northwind, q=q)) == expected


def test_pagination_and_number_counts(session):
    agency = f.agency(session)
    subs = [f.sub(session, agency, f"Client {i:02d}") for i in range(7)]
    f.number(session, subs[0])
    f.number(session, subs[0])
    f.number(session, subs[0], released_at=CANCELED)  # released numbers don't count
    first = accounts.list_sub_accounts(session, agency, page=1, per_page=3)
    last = accounts.list_sub_accounts(session, agency, page=3, per_page=3)
    assert _names(first) == ["Client 00", "Client 01", "Client 02"]
    assert [row.number_count for row in first.items] == [2, 0, 0]
    assert _names(last) == ["Client 06"]
    assert (first.pages, first.has_prev, first.has_next) == (3, False, True)
    assert (last.has_prev, last.has_next, last.first_index, last.last_index) == (True, False, 7, 7)


def test_only_agencies_have_sub_accounts(session):
    with pytest.raises(NotFound):
        accounts.list_sub_accounts(session, f.standalone(session))


@pytest.mark.parametrize("raw,expected", [
    (None, SubAccountFilter.ACTIVE), ("", SubAccountFilter.ACTIVE),
    ("canceled", SubAccountFilter.CANCELED), ("all", SubAccountFilter.ALL),
])
def test_parse_filter(raw, expected):
    assert accounts.parse_filter(raw) == expected


def test_parse_filter_refuses_unknown_values():
    with pytest.raises(ValidationFailed) as e:
        accounts.parse_filter("deleted")
    assert e.value.errors == {
        "status": "Choose Active sub-accounts, Canceled sub-accounts or All sub-accounts."}
