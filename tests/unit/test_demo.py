from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from portal import clock
from portal.cli import demo
from portal.models import (
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    Call,
    NumberStatus,
    TrackingNumber,
    User,
)
from portal.services import access, budgets
from portal.services.auth import sign_in

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_demo_covers_every_state_the_readme_promises(session):
    assert demo.is_empty(session)
    demo.seed(session, calls_per_account=20, now=NOW)
    assert not demo.is_empty(session)
    agency = session.scalar(select(Account).where(Account.name == "Northwind Agency"))
    subs = list(session.scalars(select(Account).where(Account.parent_id == agency.id)))
    assert len(subs) >= 6
    states = {(s.status, s.billing_mode) for s in subs}
    assert (AccountStatus.ACTIVE, BillingMode.AGENCY) in states
    assert (AccountStatus.ACTIVE, BillingMode.CUSTOMER) in states
    assert {s.status for s in subs} >= {AccountStatus.SWAPPING_PAUSED, AccountStatus.CALLS_STOPPED,
                                        AccountStatus.BILLING_PAUSED, AccountStatus.CANCELED}
    canceled_days = sorted((NOW - s.canceled_at).days for s in subs if s.canceled_at)
    assert canceled_days == [5, 30, 70]
    for s in subs:
        statuses = set(session.scalars(
            select(TrackingNumber.status).where(TrackingNumber.account_id == s.id)))
        assert statuses == ({NumberStatus.RELEASED} if s.canceled_at else {NumberStatus.ACTIVE})
        assert session.scalar(select(func.count()).where(Call.account_id == s.id)) == 20

    solo = session.scalar(select(Account).where(Account.name == "Solo Plumbing"))
    assert (solo.kind, solo.plan) == (AccountKind.STANDALONE, "Pro")

    # Bayside Dental has a monthly budget a little above the month's usage so far (issue 17).
    bayside = next(s for s in subs if s.name == "Bayside Dental")
    with clock.at(NOW):
        standing = budgets.standing(session, bayside)
        spent = budgets.ledger_spend(session, bayside, NOW)
    assert standing is not None and spent > 0 and standing.spent_cents == spent
    assert spent < standing.amount_cents <= max(2000, spent * 5 // 4 + 1000)


def test_demo_users_sign_in_and_reach_what_the_readme_says(session):
    clock.freeze(NOW + timedelta(hours=1))  # which accounts are closed for good depends on it
    demo.seed(session, calls_per_account=1, now=NOW)
    for email in ("agency@demo.test", "solo@demo.test", "sub@demo.test", "cedar@demo.test"):
        assert sign_in(session, email, demo.PASSWORD, "127.0.0.1", now=NOW + timedelta(hours=1))
    sub_user = session.scalar(select(User).where(User.email == "sub@demo.test"))
    reachable = access.switcher_accounts(session, sub_user)
    assert [a.name for a in reachable] == ["Bayside Dental"]
    owner = session.scalar(select(User).where(User.email == "agency@demo.test"))
    # the agency and its subs, less Quarry Coffee: canceled 70 days ago, closed for good
    names = [a.name for a in access.switcher_accounts(session, owner)]
    assert len(names) == 8 and "Quarry Coffee" not in names
