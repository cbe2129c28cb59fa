"""The demo's dates agree with its history (issue 14, item 9): an account is created before
anything happens to it, an agency before its sub-accounts, a number before its first call,
a card before its first charge, and nothing after "now"."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.cli import demo
from portal.models import (
    Account,
    AccountEvent,
    Call,
    Charge,
    LedgerEntry,
    Membership,
    PaymentMethod,
    TrackingNumber,
    User,
    Version,
)

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def seeded(session):
    clock.freeze(NOW)  # what the demo leaves undated is "now"; the seed dates the rest
    demo.seed(session, calls_per_account=40, now=NOW)
    session.commit()
    return session


def first(session, column, *where):
    return session.scalar(select(func.min(column)).where(*where))


def test_every_account_is_created_before_its_first_event_entry_charge_call_and_version(seeded):
    s = seeded
    accounts = list(s.scalars(select(Account)))
    assert len(accounts) == 10
    for a in accounts:
        firsts = {
            "event": first(s, AccountEvent.at, AccountEvent.account_id == a.id),
            "ledger entry": first(s, LedgerEntry.created_at, LedgerEntry.account_id == a.id),
            "charge": first(s, Charge.created_at, Charge.account_id == a.id),
            "call": first(s, Call.started_at, Call.account_id == a.id),
            "version": first(s, Version.at, Version.account_id == a.id),
            "number": first(s, TrackingNumber.created_at, TrackingNumber.account_id == a.id),
            "payment method": first(s, PaymentMethod.created_at,
                                    PaymentMethod.account_id == a.id),
            "member": first(s, Membership.created_at, Membership.account_id == a.id),
        }
        for what, when in firsts.items():
            if when is not None:
                assert a.created_at <= when, (a.name, what, a.created_at, when)
        if a.canceled_at is not None:
            assert a.created_at < a.canceled_at <= NOW, a.name
        assert a.created_at < NOW - timedelta(days=200), a.name  # not "Created" today


def test_an_agency_is_created_before_its_sub_accounts(seeded):
    s = seeded
    subs = list(s.scalars(select(Account).where(Account.parent_id.is_not(None))))
    assert len(subs) == 8
    for sub in subs:
        agency = s.get(Account, sub.parent_id)
        assert agency.created_at < sub.created_at, sub.name


def test_a_number_is_there_before_its_first_call_and_after_its_account(seeded):
    s = seeded
    numbers = list(s.scalars(select(TrackingNumber)))
    assert numbers
    for n in numbers:
        account = s.get(Account, n.account_id)
        assert account.created_at <= n.created_at, n.number
        first_call = first(s, Call.started_at, Call.tracking_number_id == n.id)
        if first_call is not None:
            assert n.created_at <= first_call, (n.number, n.created_at, first_call)
        if n.released_at is not None:
            assert n.created_at < n.released_at, n.number
        assert n.created_at < NOW - timedelta(days=30), n.number  # not "Since" today


def test_a_card_is_added_before_its_first_charge(seeded):
    s = seeded
    for method in s.scalars(select(PaymentMethod)):
        charged = first(s, Charge.created_at, Charge.method_id == method.id)
        if charged is not None:
            assert method.created_at <= charged, method.last4


def test_a_user_exists_before_their_membership_and_nothing_is_dated_after_now(seeded):
    s = seeded
    for m in s.scalars(select(Membership)):
        assert s.get(User, m.user_id).created_at <= m.created_at
    for column in (Account.created_at, AccountEvent.at, LedgerEntry.created_at,
                   Charge.created_at, Call.started_at, Version.at, TrackingNumber.created_at,
                   PaymentMethod.created_at, User.created_at):
        assert s.scalar(select(func.max(column))) <= NOW, column


def test_the_activity_log_reads_in_order_with_the_account(seeded):
    """The canceled sub-accounts' Closed events come after their creation, the paused ones'
    after theirs, and the agency's history begins with it."""
    s = seeded
    for a in s.scalars(select(Account)):
        events = list(s.scalars(select(AccountEvent).where(AccountEvent.account_id == a.id)))
        for e in events:
            assert a.created_at <= e.at <= NOW, (a.name, e.kind)
