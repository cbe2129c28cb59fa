import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.models import Account, AccountStatus, BillingMode, Cause, LedgerEntry, LedgerKind
from portal.services import ledger, usage
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY_ERROR = ("An idempotency key of 1 to 80 letters, digits, '.', '_', ':' or '-' is "
             "required.")


@pytest.fixture(autouse=True)
def frozen(app):
    clock.freeze(NOW)


def ledger_rows(session, account):
    return [tuple(row) for row in session.execute(
        select(LedgerEntry.amount_cents, LedgerEntry.balance_after_cents,
               LedgerEntry.description).where(LedgerEntry.account_id == account.id)
        .order_by(LedgerEntry.id))]


def test_usage_is_priced_per_item_and_described(session):
    account = f.standalone(session)
    posted = usage.post(session, account, {"numbers": 1, "minutes": 120, "transcriptions": 10,
                                           "enhanced_caller_id": 2, "encrypted_recording": 7},
                        "batch-0001")
    entry = posted.entry
    # 1 x 300 + 120 x 5 + 10 x 3 + 2 x 15 + 7 x 2
    assert (entry.kind, entry.amount_cents, entry.balance_after_cents) == (
        LedgerKind.USAGE, -974, -974)
    assert entry.description == ("Usage: 1 number, 120 minutes, 10 transcription minutes, "
                                 "2 enhanced caller ID lookups, 7 encrypted recording minutes")
    assert (entry.cause, entry.cause_ref, entry.idempotency_key, entry.for_account_id) == (
        Cause.USAGE, "batch-0001", f"usage:{account.id}:batch-0001", None)
    assert entry.created_at == NOW
    assert (posted.duplicate, posted.recharge) == (False, None)
    assert session.get(Account, account.id).balance_cents == -974


@pytest.mark.parametrize("items,cents,text", [
    ({"minutes": 1}, 5, "Usage: 1 minute"),
    ({"minutes": 1000}, 5000, "Usage: 1,000 minutes"),
    ({"transcriptions": 1}, 3, "Usage: 1 transcription minute"),
    ({"enhanced_caller_id": 1}, 15, "Usage: 1 enhanced caller ID lookup"),
    ({"encrypted_recording": 1}, 2, "Usage: 1 encrypted recording minute"),
    ({"numbers": 3, "minutes": 0}, 900, "Usage: 3 numbers"),
    ({"minutes": "12", "numbers": None, "transcriptions": ""}, 60, "Usage: 12 minutes"),
    ({"minutes": 1_000_000}, 5_000_000, "Usage: 1,000,000 minutes"),
])
def test_each_item_has_its_price_and_label(session, items, cents, text):
    account = f.standalone(session)
    entry = usage.post(session, account, items, "k").entry
    assert (entry.amount_cents, entry.description) == (-cents, text)


def test_the_same_key_twice_debits_once(session):
    account = f.standalone(session)
    first = usage.post(session, account, {"minutes": 120}, "batch-7")
    again = usage.post(session, account, {"minutes": 120}, "batch-7")
    assert again.duplicate is True and again.recharge is None
    assert again.entry.id == first.entry.id
    assert ledger_rows(session, account) == [(-600, -600, "Usage: 120 minutes")]
    assert session.get(Account, account.id).balance_cents == -600


def test_keys_are_per_account(session):
    a, b = f.standalone(session), f.standalone(session)
    usage.post(session, a, {"minutes": 1}, "same")
    assert usage.post(session, b, {"minutes": 1}, "same").duplicate is False
    assert (a.balance_cents, b.balance_cents) == (-5, -5)


def test_the_same_key_with_other_usage_is_refused(session):
    account = f.standalone(session)
    usage.post(session, account, {"minutes": 120}, "batch-7")
    with pytest.raises(ledger.KeyReused) as e:
        usage.post(session, account, {"minutes": 121}, "batch-7")
    assert e.value.errors == {"": "This request was already made with different details."}
    assert ledger_rows(session, account) == [(-600, -600, "Usage: 120 minutes")]


def test_the_same_key_with_other_items_of_the_same_price_is_refused(session):
    """3 minutes and 5 transcription minutes both cost 15 cents: still a different posting."""
    account = f.standalone(session)
    usage.post(session, account, {"minutes": 3}, "batch-8")
    with pytest.raises(ledger.KeyReused):
        usage.post(session, account, {"transcriptions": 5}, "batch-8")
    assert ledger_rows(session, account) == [(-15, -15, "Usage: 3 minutes")]


def test_a_sub_account_on_agency_billing_is_debited_from_the_agency(session):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Bayside Vet", billing=BillingMode.AGENCY)
    posted = usage.post(session, sub, {"minutes": 10}, "k1")
    entry = posted.entry
    assert (entry.account_id, entry.for_account_id, entry.amount_cents) == (
        agency.id, sub.id, -50)
    assert entry.description == "Usage (Bayside Vet): 10 minutes"
    assert entry.idempotency_key == f"usage:{sub.id}:k1"
    assert (session.get(Account, agency.id).balance_cents,
            session.get(Account, sub.id).balance_cents) == (-50, 0)
    assert usage.post(session, sub, {"minutes": 10}, "k1").duplicate is True
    assert session.get(Account, agency.id).balance_cents == -50
    assert ledger_rows(session, sub) == []


def test_a_sub_account_on_customer_billing_pays_for_itself(session):
    agency = f.agency(session)
    sub = f.sub(session, agency, billing=BillingMode.CUSTOMER)
    entry = usage.post(session, sub, {"minutes": 10}, "k1").entry
    assert (entry.account_id, entry.for_account_id, entry.description) == (
        sub.id, None, "Usage: 10 minutes")
    assert session.get(Account, agency.id).balance_cents == 0


def test_usage_below_zero_pauses_billing(session):
    account = f.standalone(session)
    f.funds(session, account, 100)
    usage.post(session, account, {"minutes": 20}, "k1")
    assert session.get(Account, account.id).status == AccountStatus.ACTIVE  # exactly $0.00
    usage.post(session, account, {"minutes": 1}, "k2")
    assert session.get(Account, account.id).status == AccountStatus.BILLING_PAUSED


def test_a_canceled_account_takes_no_usage(session):
    account = f.standalone(session, "Old Shop")
    account.status, account.canceled_at = AccountStatus.CANCELED, NOW
    session.flush()
    with pytest.raises(NotAllowed) as e:
        usage.post(session, account, {"minutes": 10}, "k1")
    assert e.value.message == "Old Shop is canceled: it takes no usage."
    assert ledger_rows(session, account) == []


def test_a_canceled_sub_account_takes_no_usage_from_the_agency(session):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Closed Sub", canceled_at=NOW)
    with pytest.raises(NotAllowed) as e:
        usage.post(session, sub, {"minutes": 10}, "k1")
    assert e.value.message == "Closed Sub is canceled: it takes no usage."
    assert ledger_rows(session, agency) == []


@pytest.mark.parametrize("items,errors", [
    ({"minutes": -1}, {"minutes": "Must be from 0 to 1,000,000."}),
    ({"minutes": 1_000_001}, {"minutes": "Must be from 0 to 1,000,000."}),
    ({"minutes": "1000001"}, {"minutes": "Must be from 0 to 1,000,000."}),
    ({"minutes": 1.5}, {"minutes": "Must be a whole number."}),
    ({"minutes": 2.0}, {"minutes": "Must be a whole number."}),
    ({"minutes": "ten"}, {"minutes": "Must be a whole number."}),
    ({"minutes": "-3"}, {"minutes": "Must be a whole number."}),
    ({"minutes": True}, {"minutes": "Must be a whole number."}),
    ({"minutes": [5]}, {"minutes": "Must be a whole number."}),
    ({"minutes": 0}, {"items": "Post at least one usage item with a quantity above 0."}),
    ({}, {"items": "Post at least one usage item with a quantity above 0."}),
    ({"calls": 3, "minutes": 5}, {"items": "Unknown usage item: calls. Known: numbers, "
                                           "minutes, transcriptions, enhanced_caller_id, "
                                           "encrypted_recording."}),
    ({"sms": 1, "fax": 2, "minutes": -1}, {
        "items": "Unknown usage item: fax, sms. Known: numbers, minutes, transcriptions, "
                 "enhanced_caller_id, encrypted_recording.",
        "minutes": "Must be from 0 to 1,000,000."}),
    (None, {"items": "Send the usage as an object of quantities."}),
    ([{"minutes": 5}], {"items": "Send the usage as an object of quantities."}),
    ("minutes=5", {"items": "Send the usage as an object of quantities."}),
])
def test_bad_items_are_refused_with_messages(session, items, errors):
    account = f.standalone(session)
    with pytest.raises(ValidationFailed) as e:
        usage.post(session, account, items, "k1")
    assert e.value.errors == errors
    assert ledger_rows(session, account) == []


@pytest.mark.parametrize("key", ["", None, "has space", "x" * 81, "semi;colon", 42])
def test_an_idempotency_key_is_required(session, key):
    account = f.standalone(session)
    with pytest.raises(ValidationFailed) as e:
        usage.post(session, account, {"minutes": 1}, key)
    assert e.value.errors == {"idempotency_key": KEY_ERROR}


@pytest.mark.parametrize("key", ["a", "x" * 80, "2026-11-23T12:00:00.batch_7"])
def test_keys_of_letters_digits_and_punctuation_are_accepted(session, key):
    account = f.standalone(session)
    entry = usage.post(session, account, {"minutes": 1}, key).entry
    assert entry.idempotency_key == f"usage:{account.id}:{key}"
    assert entry.cause_ref == key[:64]


def test_a_rolled_back_posting_leaves_no_debit(session):
    """The debit and its cached balance belong to the caller's transaction: when the caller
    rolls back (an error after posting, a request that fails), nothing is left behind."""
    account = f.standalone(session)
    session.commit()
    account_id = account.id
    usage.post(session, account, {"minutes": 10}, "k1")
    session.rollback()
    assert session.get(Account, account_id).balance_cents == 0
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert ledger.check(session) == []


def test_a_payment_landing_while_usage_is_posted_does_not_leave_the_account_paused(
        app, session, monkeypatch):
    """Usage takes the balance to -$5.00 while, at the same moment, a $10.00 payment is
    credited by another request. Whatever the interleaving, the account must end active with
    $5.00: the pause decision has to see the balance its own transaction wrote, with no other
    writer in between."""
    account = f.standalone(session)
    account_id = account.id
    session.commit()
    real_pause = ledger._billing_pause
    other = {}

    def pay_elsewhere():
        with app.app_context():
            target = db.session.get(Account, account_id)
            ledger.post(db.session, target, LedgerKind.PAYMENT, 1000, "Payment", "pay-1",
                        Cause.USER)
            db.session.commit()

    def pause_with_a_payment_in_between(session_, account_, balance, *args):
        if "thread" not in other and account_.id == account_id and balance < 0:
            other["thread"] = thread = threading.Thread(target=pay_elsewhere)
            thread.start()
            thread.join(timeout=1.0)  # on PostgreSQL it waits for our row lock: fine
        return real_pause(session_, account_, balance, *args)

    monkeypatch.setattr(ledger, "_billing_pause", pause_with_a_payment_in_between)
    usage.post(session, account, {"numbers": 1, "minutes": 40}, "k1")  # -$5.00
    session.commit()
    other["thread"].join(timeout=10)
    monkeypatch.undo()
    session.expire_all()
    account = session.get(Account, account_id)
    assert account.balance_cents == 500
    assert ledger.check(session) == []
    assert account.status == AccountStatus.ACTIVE
