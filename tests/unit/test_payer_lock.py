"""Who pays is read under the lock that writes the entry (issue 12, items 1 and 2).

A sub-account's payer changes when it is added to agency billing or a customer pays its
billing link. A debit must land on the ledger of whoever pays at the moment it is written,
not of whoever paid when the caller loaded the account, and a usage key belongs to the
metered account whichever ledger paid it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as links
from portal import clock
from portal.extensions import db
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    Cause,
    LedgerEntry,
    LedgerKind,
)
from portal.sandbox.testing import paying_card
from portal.services import ledger, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = links.LinkSettings(keys=["unit-key"], ttl=timedelta(days=7),
                              base_url="https://portal.example/")
def card_form() -> dict:
    """What the billing link's page posts: the id the sandbox's card form gave (issue 16)."""
    return {"payment_method": paying_card(), "amount": "25"}


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    avery = f.user(session, "avery@example.test")
    agency = f.agency(session, "Northwind Agency", owner=avery)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    session.commit()
    return type("World", (), dict(app=app, avery=avery, agency=agency, harbor=harbor,
                                  bayside=bayside, ids=(agency.id, harbor.id, bayside.id)))


def elsewhere(app, work) -> threading.Thread:
    """Run `work(session)` in another thread with its own session (another request), commit,
    and wait for it."""
    errors = []

    def run():
        with app.app_context():
            try:
                work(db.session)
                db.session.commit()
            except Exception as e:  # surfaced in the test's thread
                errors.append(e)
                db.session.rollback()
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors
    return thread


def balances(session, *ids) -> list[int]:
    session.expire_all()
    return [session.get(Account, i).balance_cents for i in ids]


def usage_on(session, account_id) -> list[tuple[int, int | None]]:
    return [tuple(r) for r in session.execute(
        select(LedgerEntry.amount_cents, LedgerEntry.for_account_id).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == LedgerKind.USAGE)
        .order_by(LedgerEntry.id))]


def add_to_agency(account_id):
    def work(session):
        links.add_to_agency_billing(session, session.get(Account, account_id[0]),
                                    session.get(Account, account_id[1]),
                                    session.get(portal.models.User, account_id[2]))
    return work


# --------------------------------------------------------------- item 1: the payer

def test_usage_after_add_to_agency_billing_is_paid_by_the_agency_even_if_loaded_before(w,
                                                                                      session):
    """The caller (the usage API) loaded Harbor Law while it paid for itself; before its
    posting was written, the agency took it onto agency billing. The debit is the agency's:
    Harbor Law must not go below zero and be billing-paused on its own ledger while the
    agency pays for it (the probe's 3 runs of 3)."""
    stale = session.get(Account, w.harbor.id)
    assert stale.billing_mode == BillingMode.CUSTOMER
    elsewhere(w.app, add_to_agency((w.agency.id, w.harbor.id, w.avery.id)))
    posted = usage.post(session, stale, {"minutes": 20}, "k1")
    session.commit()
    assert (posted.entry.account_id, posted.entry.for_account_id) == (w.agency.id, w.harbor.id)
    assert posted.entry.description == "Usage (Harbor Law): 20 minutes"
    harbor = session.get(Account, w.harbor.id)
    assert (harbor.billing_mode, harbor.balance_cents, harbor.status) == (
        BillingMode.AGENCY, 0, AccountStatus.ACTIVE)
    assert balances(session, w.agency.id) == [-100]
    assert ledger.check(session) == []


def test_usage_after_the_customer_paid_the_link_is_not_paid_by_the_agency(w, session):
    """The reverse: Bayside Dental was loaded on agency billing, then its customer paid the
    link. Its usage is its own from then on."""
    _request, url = links.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                          "pat@example.test", "25", "")
    session.commit()
    stale = session.get(Account, w.bayside.id)
    assert stale.billing_mode == BillingMode.AGENCY
    token = url.rsplit("/", 1)[1]
    form = card_form()
    elsewhere(w.app, lambda s: links.pay(s, SandboxGateway(), SETTINGS, token, form))
    posted = usage.post(session, stale, {"minutes": 20}, "k1")
    session.commit()
    assert (posted.entry.account_id, posted.entry.for_account_id) == (w.bayside.id, None)
    assert balances(session, w.agency.id, w.bayside.id) == [0, 2400]
    assert ledger.check(session) == []


def test_a_switch_waits_for_a_posting_that_read_the_payer(w, session, monkeypatch):
    """Once a posting has read who pays, the switch can't happen until it is written: the
    switch then moves a balance that includes it."""
    real = ledger.lock_payer
    started = {}
    switch = add_to_agency((w.agency.id, w.harbor.id, w.avery.id))

    def lock_then_switch(session_, account_id):
        locked = real(session_, account_id)
        if "thread" not in started:
            started["thread"] = threading.Thread(target=lambda: elsewhere(w.app, switch))
            started["thread"].start()
            started["thread"].join(timeout=0.3)  # it waits for our lock (or hasn't begun)
        return locked

    monkeypatch.setattr(ledger, "lock_payer", lock_then_switch)
    posted = usage.post(session, session.get(Account, w.harbor.id), {"minutes": 20}, "k1")
    session.commit()
    started["thread"].join(timeout=30)
    monkeypatch.undo()
    assert posted.entry.account_id == w.harbor.id  # Harbor Law paid for itself then
    harbor = session.get(Account, w.harbor.id)
    session.refresh(harbor)
    assert (harbor.billing_mode, harbor.balance_cents, harbor.status) == (
        BillingMode.AGENCY, 0, AccountStatus.ACTIVE)
    assert balances(session, w.agency.id) == [-100]  # its -$1.00 moved with it
    assert ledger.check(session) == []


def test_twenty_postings_racing_add_to_agency_billing(w, session):
    """The probe's race, for real: 20 postings of $0.05 (in 20 threads) and Add to Agency
    Billing at once. Each debit is on the ledger of whoever paid when it was written (the
    sub-account's before the switch, the agency's after), Harbor Law is never left paused
    on its own ledger, and nothing is lost."""
    barrier = threading.Barrier(21)
    errors = []
    harbor_id = w.harbor.id
    switch_work = add_to_agency((w.agency.id, w.harbor.id, w.avery.id))

    def post(i):
        with w.app.app_context():
            try:
                barrier.wait(timeout=30)
                usage.post(db.session, db.session.get(Account, harbor_id), {"minutes": 1},
                           f"race-{i}")
                db.session.commit()
            except Exception as e:
                errors.append(e)
                db.session.rollback()
            finally:
                db.session.remove()

    def switch():
        with w.app.app_context():
            try:
                barrier.wait(timeout=30)
                switch_work(db.session)
                db.session.commit()
            except Exception as e:
                errors.append(e)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    threads.append(threading.Thread(target=switch))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    session.expire_all()
    moved = session.scalar(select(LedgerEntry).where(
        LedgerEntry.kind == LedgerKind.TRANSFER_OUT))
    own = session.scalars(select(LedgerEntry).where(
        LedgerEntry.account_id == w.harbor.id, LedgerEntry.kind == LedgerKind.USAGE)).all()
    agency = session.scalars(select(LedgerEntry).where(
        LedgerEntry.account_id == w.agency.id, LedgerEntry.kind == LedgerKind.USAGE)).all()
    assert len(own) + len(agency) == 20
    before = len(own)
    if before:  # some were written before the switch: it moved them with the balance
        assert moved is not None and moved.amount_cents == 5 * before
        assert all(e.id < moved.id for e in own)
    assert all(e.for_account_id == w.harbor.id for e in agency)
    into = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.TRANSFER_IN))
    assert all(e.id > (into.id if into else 0) for e in agency)
    harbor = session.get(Account, w.harbor.id)
    assert (harbor.billing_mode, harbor.balance_cents, harbor.status) == (
        BillingMode.AGENCY, 0, AccountStatus.ACTIVE)
    assert balances(session, w.agency.id) == [-100]
    assert ledger.check(session) == []


# --------------------------------------------------------------- item 2: the key

def test_a_key_retried_after_add_to_agency_billing_is_a_duplicate(w, session):
    first = usage.post(session, session.get(Account, w.harbor.id), {"minutes": 20}, "k1")
    session.commit()
    assert first.entry.account_id == w.harbor.id
    add_to_agency((w.agency.id, w.harbor.id, w.avery.id))(session)
    session.commit()
    again = usage.post(session, session.get(Account, w.harbor.id), {"minutes": 20}, "k1")
    session.commit()
    assert (again.duplicate, again.entry.id, again.recharge) == (True, first.entry.id, None)
    assert usage_on(session, w.agency.id) == []
    assert balances(session, w.agency.id, w.harbor.id) == [-100, 0]


def test_a_key_retried_after_the_customer_paid_the_link_is_a_duplicate(w, session):
    first = usage.post(session, session.get(Account, w.bayside.id), {"minutes": 20}, "k1")
    session.commit()
    assert first.entry.account_id == w.agency.id
    _request, url = links.request_removal(session, SETTINGS, w.agency, w.bayside, w.avery,
                                          "pat@example.test", "25", "")
    session.commit()
    links.pay(session, SandboxGateway(), SETTINGS, url.rsplit("/", 1)[1], card_form())
    again = usage.post(session, session.get(Account, w.bayside.id), {"minutes": 20}, "k1")
    session.commit()
    assert (again.duplicate, again.entry.id) == (True, first.entry.id)
    assert usage_on(session, w.bayside.id) == []
    assert balances(session, w.agency.id, w.bayside.id) == [-100, 2500]


def test_a_key_retried_across_the_switch_with_other_usage_is_refused(w, session):
    usage.post(session, session.get(Account, w.harbor.id), {"minutes": 20}, "k1")
    session.commit()
    add_to_agency((w.agency.id, w.harbor.id, w.avery.id))(session)
    session.commit()
    with pytest.raises(ledger.KeyReused):
        usage.post(session, session.get(Account, w.harbor.id), {"transcriptions": 33}, "k1")
    with pytest.raises(ledger.KeyReused):  # the same price ($1.00), other items
        usage.post(session, session.get(Account, w.harbor.id), {"encrypted_recording": 50},
                   "k1")


def test_a_renamed_sub_account_still_recognises_its_key(w, session):
    usage.post(session, session.get(Account, w.bayside.id), {"minutes": 20}, "k1")
    session.commit()
    bayside = session.get(Account, w.bayside.id)
    bayside.name = "Bayside Dental): Group"  # anything, even what the description splits on
    session.commit()
    again = usage.post(session, bayside, {"minutes": 20}, "k1")
    assert again.duplicate is True


def test_the_database_refuses_one_usage_key_on_two_ledgers(w, session):
    """The unique index behind it: the same metered key can't be written on the agency's
    and the sub-account's ledger, whatever the code above it does."""
    key = usage.key_for(w.harbor.id, "k1")
    ledger.post(session, session.get(Account, w.harbor.id), LedgerKind.USAGE, -100,
                "Usage: 20 minutes", key, Cause.USAGE)
    session.commit()
    with pytest.raises(IntegrityError):
        ledger.post(session, session.get(Account, w.agency.id), LedgerKind.USAGE, -100,
                    "Usage (Harbor Law): 20 minutes", key, Cause.USAGE,
                    for_account=session.get(Account, w.harbor.id))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
