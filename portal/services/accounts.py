"""Accounts, agencies and sub-accounts, and who belongs to them."""

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, case, cast, func, select
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotFound, ValidationFailed
from portal.models import (
    PLANS,
    STATUS_LABELS,
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    Membership,
    NumberStatus,
    Role,
    TrackingNumber,
    User,
)
from portal.services.fees import month_start
from portal.services.inputs import clean_text
from portal.services.paging import Page, contains
from portal.services.spend import month_spend_query

SORTS = ("name", "spend", "spend_asc")  # Settings → Accounts: by name, or this month's spend
SORTS += ("budget", "budget_asc")  # issue 17 (B): by the share of the month's budget used


class SubAccountFilter(enum.StrEnum):
    """The filter panel on Settings → Accounts."""

    ACTIVE = "active"
    CANCELED = "canceled"
    ALL = "all"

    @property
    def is_default(self) -> bool:
        """The filter a page opens with: the panel stays closed."""
        return self is SubAccountFilter.ACTIVE


FILTER_LABELS = {
    SubAccountFilter.ACTIVE: "Active sub-accounts",
    SubAccountFilter.CANCELED: "Canceled sub-accounts",
    SubAccountFilter.ALL: "All sub-accounts",
}


@dataclass(frozen=True, slots=True)
class SubAccountRow:
    """One row of Settings → Accounts: plain values, no ORM object (the list is hot)."""

    id: int
    name: str
    status: AccountStatus
    billing_mode: BillingMode
    canceled_at: datetime | None
    number_count: int
    balance_cents: int = 0  # its own balance: shown for customer billing only
    month_spend: int = 0  # cents spent this month, from either balance (issue 17)
    budget_cents: int | None = None  # its monthly budget (issue 17, B), None: no budget
    budget_spent: int = 0  # the month's usage counted against it
    closed_for_good: bool = False  # canceled over 60 days ago: data removed, no Edit

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def customer_billed(self) -> bool:
        return self.billing_mode == BillingMode.CUSTOMER

    @property
    def budget_percent(self) -> int | None:
        """The share of the month's budget used, in whole percent (None: no budget)."""
        if not self.budget_cents:
            return None
        return self.budget_spent * 100 // self.budget_cents


def _check_name(name: str) -> str:
    return clean_text(name, "name", "The account name", 120,
                      required="Enter the account name.")


def _check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise ValidationFailed({"plan": f"Choose a plan: {', '.join(PLANS)}."})
    return plan


def create_standalone(session: Session, name: str, plan: str) -> Account:
    if plan == "Agency":
        raise ValidationFailed({"plan": "A standalone account can't be on the Agency plan."})
    account = Account(name=_check_name(name), kind=AccountKind.STANDALONE,
                      plan=_check_plan(plan), billing_mode=BillingMode.CUSTOMER)
    session.add(account)
    session.flush()
    return account


def create_agency(session: Session, name: str) -> Account:
    account = Account(name=_check_name(name), kind=AccountKind.AGENCY, plan="Agency",
                      billing_mode=BillingMode.CUSTOMER)
    session.add(account)
    session.flush()
    return account


def create_sub_account(session: Session, agency: Account, name: str,
                       billing_mode: BillingMode = BillingMode.AGENCY) -> Account:
    if not agency.is_agency:
        raise ValidationFailed({"parent": "Sub-accounts belong to an agency."})
    account = Account(name=_check_name(name), kind=AccountKind.SUB, parent_id=agency.id,
                      plan="Agency", billing_mode=billing_mode)
    session.add(account)
    session.flush()
    return account


def add_member(session: Session, user: User, account: Account, role: Role) -> Membership:
    membership = Membership(user_id=user.id, account_id=account.id, role=role)
    session.add(membership)
    session.flush()
    return membership


def parse_filter(raw: str | None) -> SubAccountFilter:
    if raw in (None, ""):
        return SubAccountFilter.ACTIVE
    try:
        return SubAccountFilter(raw)
    except ValueError:
        raise ValidationFailed(
            {"status": "Choose Active sub-accounts, Canceled sub-accounts or All sub-accounts."}
        ) from None


# Built once, on the tables' columns rather than the ORM entities: constructing the statement
# and the ORM's per-execute work cost more than running it on a page of rows.
_accounts = Account.__table__.c
_numbers = TrackingNumber.__table__.c
_SUB_ACCOUNT_ROWS = select(
    _accounts.id, _accounts.name, _accounts.status, _accounts.billing_mode,
    _accounts.canceled_at,
    select(func.count())
    .where(_numbers.account_id == _accounts.id, _numbers.status == NumberStatus.ACTIVE)
    .correlate(Account.__table__)
    .scalar_subquery(),
).order_by(_accounts.name, _accounts.id)
_SUB_ACCOUNT_COUNT = select(func.count()).select_from(Account.__table__)


def list_sub_accounts(session: Session, agency: Account, *, q: str = "",
                      status: SubAccountFilter = SubAccountFilter.ACTIVE,
                      page: int = 1, per_page: int = 25, now: datetime | None = None,
                      sort: str = "name") -> Page:
    """One page of an agency's sub-accounts with their active number counts, balances and
    this month's spend (issue 17), by name or by spend (`sort`, one of SORTS).

    At most two queries whatever the agency's size: the page, with the number counts as a
    correlated subquery evaluated for the page's rows only, and the total (skipped on the
    last page, where the page itself tells it).
    """
    if not agency.is_agency:
        raise NotFound("Only an agency has sub-accounts.")
    conditions = [_accounts.parent_id == agency.id]
    if status == SubAccountFilter.ACTIVE:
        conditions.append(_accounts.status != AccountStatus.CANCELED)
    elif status == SubAccountFilter.CANCELED:
        conditions.append(_accounts.status == AccountStatus.CANCELED)
    if q.strip():
        conditions.append(contains(_accounts.name, q.strip()))

    spend = month_spend_query(agency.id, month_start(now or clock_now()))
    # A BIGINT again: PostgreSQL's SUM of a BIGINT is a NUMERIC (a Decimal in Python).
    spent = cast(func.coalesce(spend.c.by_agency + spend.c.by_customer, 0), BigInteger)
    # Issue 17 (B): the budget and the month's usage against it, from the same row query.
    from portal.models.budgets import Budget

    budget = Budget.__table__.c
    budget_spent = case((budget.month == f"{now or clock_now():%Y-%m}", budget.spent_cents),
                        else_=0)
    statement = (_SUB_ACCOUNT_ROWS.add_columns(_accounts.balance_cents, spent,
                                               budget.amount_cents, budget_spent)
                 .select_from(Account.__table__.outerjoin(spend, spend.c.sub_id == _accounts.id)
                              .outerjoin(Budget.__table__, budget.account_id == _accounts.id)))
    if sort in ("spend", "spend_asc"):
        statement = statement.order_by(None).order_by(
            spent.desc() if sort == "spend" else spent.asc(), _accounts.name, _accounts.id)
    elif sort in ("budget", "budget_asc"):
        # Basis points of the budget used; no budget is -1 (last by most used, first by least).
        used = func.coalesce(budget_spent * 10000 / budget.amount_cents, -1)
        statement = statement.order_by(None).order_by(
            used.desc() if sort == "budget" else used.asc(), _accounts.name, _accounts.id)
    rows = session.execute(
        statement.where(*conditions)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    cutoff = (now or clock_now()) - rules.DATA_RETENTION
    items = [SubAccountRow(*row, closed_for_good=row.canceled_at is not None
                           and row.canceled_at < cutoff) for row in rows]
    if 0 < len(items) < per_page or (page == 1 and not items):
        total = (page - 1) * per_page + len(items)  # the last page: no count needed
    else:
        total = session.scalar(_SUB_ACCOUNT_COUNT.where(*conditions))
    return Page(items=items, total=total, number=page, per_page=per_page)
