"""services/metering.py (issue 18 M): the events' checks by hand, and batches received at
once by 8 senders (each event debited once, the ledger consistent, the recharges once)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from portal import clock, rules
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.models import (
    Account,
    BillingMode,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    SandboxCharge,
    UsageEvent,
)
from portal.services import charges, ledger, metering, usage
from tests import factories as f
from tests.threads import at_once

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STAMP = "2026-11-23T11:59:00+00:00"


def ev(event_id, account, item="minutes", quantity=1, timestamp=STAMP):
    return {"id": event_id, "account": account, "item": item, "quantity": quantity,
            "timestamp": timestamp}


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)
    yield
    clock.freeze(None)


# --------------------------------------------------------------- the checks by hand

@pytest.mark.parametrize("value, expected", [
    ("2026-11-23T11:00:00Z", datetime(2026, 11, 23, 11, 0, tzinfo=UTC)),
    ("2026-11-23T12:30:00+01:00", datetime(2026, 11, 23, 11, 30, tzinfo=UTC)),
    ("2026-11-23T11:00:00.123456+00:00", datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-23T11:00:00", None),  # no timezone
    ("2026-11-23", None),
    ("yesterday", None),
    ("", None),
    (1732359600, None),
    (None, None),
    ("0001-01-01T00:00:00+01:00", None),
    ("2026-11-23T11:00:00Z" + " " * 40, None),
])
def test_parse_time(value, expected):
    assert metering.parse_time(value) == expected


def test_the_window_edges_are_in():
    events = [ev("old", 1, timestamp=(NOW - metering.MAX_AGE).isoformat()),
              ev("ahead", 1, timestamp=(NOW + metering.MAX_AHEAD).isoformat()),
              ev("too-old", 1, timestamp=(NOW - metering.MAX_AGE
                                          - timedelta(seconds=1)).isoformat()),
              ev("too-far", 1, timestamp=(NOW + metering.MAX_AHEAD
                                          + timedelta(seconds=1)).isoformat())]
    valid, refused = metering.check(events, NOW)
    assert [e.id for e in valid] == ["old", "ahead"]
    assert [(r.id, r.code) for r in refused] == [("too-old", "timestamp_outside_window"),
                                                 ("too-far", "timestamp_outside_window")]


@pytest.mark.parametrize("changes, code, field", [
    ({"id": ""}, "invalid_id", "id"),
    ({"id": "x" * 81}, "invalid_id", "id"),
    ({"id": "a b"}, "invalid_id", "id"),
    ({"id": 12}, "invalid_id", "id"),
    ({"id": "e\n"}, "invalid_id", "id"),  # "$" in a pattern let a final newline in
    ({"account": "1"}, "account_not_found", "account"),
    ({"account": None}, "account_not_found", "account"),
    ({"account": 0}, "account_not_found", "account"),
    ({"account": 2**31}, "account_not_found", "account"),
    ({"account": 1.0}, "account_not_found", "account"),
    ({"item": "Minutes"}, "unknown_item", "item"),
    ({"item": ["minutes"]}, "unknown_item", "item"),
    ({"quantity": -1}, "invalid_quantity", "quantity"),
    ({"quantity": 1.5}, "invalid_quantity", "quantity"),
    ({"quantity": "3"}, "invalid_quantity", "quantity"),
    ({"quantity": rules.MAX_USAGE_QUANTITY + 1}, "invalid_quantity", "quantity"),
    ({"timestamp": None}, "invalid_timestamp", "timestamp"),
])
def test_each_field_is_checked(changes, code, field):
    valid, refused = metering.check([{**ev("e", 1), **changes}], NOW)
    assert valid == []
    assert [(r.code, r.field, r.index) for r in refused] == [(code, field, 0)]


def test_a_long_id_is_cut_in_the_answer():
    _valid, refused = metering.check([ev("x" * 500, 1)], NOW)
    assert refused[0].id == "x" * 80


def test_the_items_and_prices_are_the_single_postings():
    assert set(metering.ITEM_ORDER) == set(usage.ITEMS) == set(rules.USAGE_PRICES)
    valid, _ = metering.check([ev("a", 1, "transcriptions", 7)], NOW)
    assert usage.price({valid[0].item: valid[0].quantity}) == 7 * 3


@pytest.mark.parametrize("body", [None, {}, {"events": {}}, {"events": []},
                                  {"events": [{}] * 1001}])
def test_the_request_as_a_whole(body):
    with pytest.raises(ValidationFailed):
        metering.events_of(body)


# --------------------------------------------------------------- statements per batch

def test_a_batch_takes_a_fixed_number_of_statements(app, session):
    """The statements of a batch don't grow with its events: 10 or 500 events over the same
    accounts and items take the same number."""
    agency = f.agency(session, "Northwind Agency")
    subs = [f.sub(session, agency, f"Sub {n}") for n in range(5)]
    f.funds(session, agency, 10_000_00)
    session.commit()

    def statements(n, prefix):
        seen = []

        def count(*_args):
            seen.append(1)

        events = [ev(f"{prefix}{i}", subs[i % 5].id, ("minutes", "transcriptions")[i % 2])
                  for i in range(n)]
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            batch = metering.receive(session, agency, {"events": events})
            session.commit()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert len(batch.accepted) == n
        return len(seen)

    small, large = statements(10, "s"), statements(500, "l")
    assert small == large
    assert large <= 12


# --------------------------------------------------------------- concurrency

def test_eight_senders_at_once_debit_each_event_once(app, session):
    """8 senders post overlapping batches over the same accounts (an agency paying for two
    sub-accounts, one paying for itself, auto recharge on for both payers): every event is
    accepted by exactly one of them, the debits add up to the events' prices, the ledger is
    consistent, and every recharge is charged once."""
    agency = f.agency(session, "Northwind Agency")
    paid = [f.sub(session, agency, "Bayside Dental"), f.sub(session, agency, "Cove Clinic")]
    own = f.sub(session, agency, "Own Pay Dental", billing=BillingMode.CUSTOMER)
    for payer in (agency, own):
        f.card(session, payer)
        f.recharge_settings(session, payer, "10", "50")
        f.funds(session, payer, 20_00)
    session.commit()
    accounts = [a.id for a in (*paid, own)]
    agency_id = agency.id
    pool = [ev(f"e{n:03d}", accounts[n % 3], ("minutes", "transcriptions")[n % 2], 10 + n % 7)
            for n in range(120)]

    def sender(i):
        events = pool[i * 10: i * 10 + 40]  # each overlaps its neighbours
        with app.app_context():
            owner = db.session.get(Account, agency_id)
            batch = metering.receive(db.session, owner, {"events": events})
            accepted = [(e.account_id, e.id) for e in batch.accepted]
            duplicates = [(e.account_id, e.id) for e in batch.duplicates]
            started = list(batch.recharges)
            db.session.commit()
            for charge in started:
                charges.run_recharge(db.session, payment_gateway(), charge)
            db.session.remove()
        return i, accepted, duplicates

    results = at_once(8, sender)
    sent = {(e["account"], e["id"]) for e in pool[:110]}
    accepted = [pair for _i, got, _d in results for pair in got]
    assert sorted(accepted) == sorted(sent)  # each once, none lost
    for i, got, duplicates in results:
        assert sorted(got + duplicates) == sorted(
            (e["account"], e["id"]) for e in pool[i * 10: i * 10 + 40])

    session.expire_all()
    assert session.scalar(select(func.count()).select_from(UsageEvent)) == 110
    price = {(e["account"], e["id"]): usage.price({e["item"]: e["quantity"]})
             for e in pool[:110]}
    debited = session.scalar(select(func.sum(LedgerEntry.amount_cents))
                             .where(LedgerEntry.kind == LedgerKind.USAGE))
    assert -debited == sum(price.values())
    # Each event's entry is for its account and item; each entry's amount is its events'.
    per_entry = {}
    for account_id, event_id, item, entry_id in session.execute(select(
            UsageEvent.account_id, UsageEvent.event_id, UsageEvent.item,
            UsageEvent.ledger_entry_id)):
        per_entry.setdefault(entry_id, []).append((account_id, event_id, item))
    for entry in session.scalars(select(LedgerEntry).where(
            LedgerEntry.kind == LedgerKind.USAGE)):
        events = per_entry[entry.id]
        assert {a for a, _e, _i in events} == {entry.for_account_id or entry.account_id}
        assert -entry.amount_cents == sum(price[(a, e)] for a, e, _i in events)
    assert ledger.check(session) == []
    for payer_id in (agency_id, own.id):
        running = 0
        for amount, after in session.execute(
                select(LedgerEntry.amount_cents, LedgerEntry.balance_after_cents)
                .where(LedgerEntry.account_id == payer_id).order_by(LedgerEntry.id)):
            running += amount
            assert after == running
    # Every recharge charged once and credited once.
    recharges = session.scalars(select(Charge).where(
        Charge.purpose == ChargePurpose.RECHARGE)).all()
    assert recharges and all(c.status == ChargeStatus.SUCCEEDED for c in recharges)
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == len(recharges)
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.kind == LedgerKind.RECHARGE)) == len(recharges)


def test_a_crash_retry_gets_the_same_ledger_keys(app, session):
    """The entries' idempotency keys derive from the batch's accepted events: a batch rolled
    back (the request crashed before its commit) and sent again writes the same keys, and
    a second debit of the same events could never pass the ledger's unique usage key."""
    account = f.standalone(session, "Harbor Dental")
    f.funds(session, account, 50_00)
    session.commit()
    events = {"events": [ev("a", account.id), ev("b", account.id, "transcriptions")]}
    first = metering.receive(session, account, events)
    keys = [f"usage-batch:{first.batch}:{account.id}:{item}"
            for item in ("minutes", "transcriptions")]
    session.rollback()
    again = metering.receive(session, account, events)
    session.commit()
    assert again.batch == first.batch
    assert session.scalars(select(LedgerEntry.idempotency_key).where(
        LedgerEntry.kind == LedgerKind.USAGE).order_by(LedgerEntry.id)).all() == keys
    # The same accepted set can't be debited twice under these keys.
    session.execute(UsageEvent.__table__.delete())
    with pytest.raises(IntegrityError):
        metering.receive(session, account, events)
    session.rollback()
    assert ledger.check(session) == []


def test_an_account_sent_as_a_string_is_told_what_it_should_be():
    _valid, refused = metering.check([{**ev("e", 1), "account": "2"}], NOW)
    assert refused[0].reason == 'The account is its id, a whole number: 2, not "2".'
