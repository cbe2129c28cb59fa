import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from portal.errors import ValidationFailed
from portal.extensions import db
from portal.models import (
    Account,
    AccountEvent,
    AccountStatus,
    BillingMode,
    Cause,
    EventKind,
    LedgerEntry,
    LedgerKind,
)
from portal.services import ledger
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _post(session, account, amount, key, kind=LedgerKind.USAGE):
    return ledger.post(session, account, kind, amount, f"{kind} {amount}", key, Cause.USAGE,
                       now=NOW)


def test_entries_carry_the_balance_after_and_the_cached_balance_is_their_sum(session):
    account = f.standalone(session)
    first = _post(session, account, 5000, "pay-1", LedgerKind.PAYMENT)
    second = _post(session, account, -1234, "use-1")
    assert (first.balance_after_cents, second.balance_after_cents) == (5000, 3766)
    assert account.balance_cents == 3766
    total = session.scalar(select(func.sum(LedgerEntry.amount_cents))
                           .where(LedgerEntry.account_id == account.id))
    assert total == 3766
    assert ledger.check(session) == []


def test_a_retried_posting_is_a_no_op(session):
    account = f.standalone(session)
    a = _post(session, account, -250, "usage-batch-7")
    b = _post(session, account, -250, "usage-batch-7")
    assert a.id == b.id
    assert account.balance_cents == -250
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_a_key_reused_for_something_else_is_refused(session):
    account = f.standalone(session)
    _post(session, account, -250, "k")
    with pytest.raises(ledger.KeyReused):
        _post(session, account, -999, "k")
    assert account.balance_cents == -250


def test_keys_are_per_account(session):
    a, b = f.standalone(session), f.standalone(session)
    _post(session, a, 100, "same", LedgerKind.PAYMENT)
    _post(session, b, 100, "same", LedgerKind.PAYMENT)
    assert (a.balance_cents, b.balance_cents) == (100, 100)


@pytest.mark.parametrize("amount,error", [(0, ValidationFailed), (1.5, TypeError),
                                          (True, TypeError), ("100", TypeError)])
def test_amounts_are_nonzero_integer_cents(session, amount, error):
    account = f.standalone(session)
    with pytest.raises(error):
        _post(session, account, amount, "k")
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_below_zero_pauses_billing_and_a_payment_back_to_zero_lifts_it(session):
    account = f.standalone(session)
    _post(session, account, 1000, "p1", LedgerKind.PAYMENT)
    _post(session, account, -1000, "u1")
    assert account.status == AccountStatus.ACTIVE  # exactly zero is not below zero
    _post(session, account, -1, "u2")
    assert account.status == AccountStatus.BILLING_PAUSED
    _post(session, account, 1, "p2", LedgerKind.PAYMENT)
    assert account.status == AccountStatus.ACTIVE
    kinds = list(session.scalars(select(AccountEvent.kind).order_by(AccountEvent.id)))
    assert kinds == [EventKind.BILLING_PAUSED, EventKind.BILLING_RESUMED]


def test_a_canceled_account_is_not_put_in_billing_pause(session):
    account = f.standalone(session)
    account.status, account.canceled_at = AccountStatus.CANCELED, NOW
    session.flush()
    _post(session, account, -500, "u1")
    assert account.status == AccountStatus.CANCELED


def test_agency_billing_debits_the_agency(session):
    agency = f.agency(session)
    on_agency = f.sub(session, agency, billing=BillingMode.AGENCY)
    own = f.sub(session, agency, billing=BillingMode.CUSTOMER)
    assert ledger.paying_account(session, on_agency).id == agency.id
    assert ledger.paying_account(session, own).id == own.id
    entry = ledger.post(session, ledger.paying_account(session, on_agency), LedgerKind.USAGE,
                        -300, "Minutes", "m1", Cause.USAGE, for_account=on_agency, now=NOW)
    assert (entry.account_id, entry.for_account_id) == (agency.id, on_agency.id)


def test_check_finds_a_cached_balance_that_disagrees_with_the_ledger(session):
    account = f.standalone(session)
    _post(session, account, 700, "p", LedgerKind.PAYMENT)
    session.execute(update(Account).where(Account.id == account.id).values(balance_cents=701))
    assert ledger.check(session) == [ledger.Mismatch(account.id, 701, 700)]


def test_concurrent_postings_to_one_account_all_count(app, session):
    account = f.standalone(session)
    session.commit()
    account_id, errors = account.id, []

    def worker(i):
        try:
            with app.app_context():
                target = db.session.get(Account, account_id)
                _post(db.session, target, -100, f"usage-{i}")
                _post(db.session, target, -100, f"usage-{i}")  # a retry
                db.session.commit()
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    session.expire_all()
    assert session.get(Account, account_id).balance_cents == -2000
    afters = sorted(session.scalars(select(LedgerEntry.balance_after_cents)))
    assert afters == list(range(-2000, 0, 100))
    assert ledger.check(session) == []


def test_the_check_command_exits_nonzero_on_a_mismatch(app, session):
    account = f.standalone(session)
    _post(session, account, 700, "p", LedgerKind.PAYMENT)
    session.commit()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["ledger", "check"])
    assert ok.exit_code == 0 and "every balance equals" in ok.output
    session.execute(update(Account).where(Account.id == account.id).values(balance_cents=1))
    session.commit()
    bad = runner.invoke(args=["ledger", "check"])
    assert bad.exit_code == 1
    assert f"account {account.id}: cached 1 cents, ledger 700 cents" in bad.output
