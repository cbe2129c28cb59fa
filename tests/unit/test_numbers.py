from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.extensions import db
from portal.models import Account, AccountStatus, EventKind, NumberStatus, TrackingNumber, User
from portal.services import lifecycle, numbers
from tests import factories as f
from tests.unit import lifecycle_world as world
from tests.unit.lifecycle_world import LATER, T0, events


@pytest.mark.parametrize("raw,expected", [
    ("+14155550100", "+14155550100"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_numbers_are_normalized_to_e164(raw, expected):
    assert numbers.normalize_e164(raw) == expected


@pytest.mark.parametrize("raw", ["", "4155550100", "+0123456789", "+1415555010012345", "+1-abc",
                                 "+12"])
def test_non_e164_numbers_are_refused(raw):
    with pytest.raises(ValidationFailed) as e:
        numbers.normalize_e164(raw)
    assert e.value.errors == {
        "number": "Enter the number in international format, like +14155550100."}


def test_a_number_is_active_on_one_account_only(session):
    a, b = f.standalone(session), f.standalone(session)
    numbers.add(session, a, "+14155550100")
    with pytest.raises(ValidationFailed) as e:
        numbers.add(session, b, "+1 415 555 0100")
    assert e.value.errors == {"number": "+14155550100 is already in use."}


def test_the_database_enforces_one_active_number(session):
    a, b = f.standalone(session), f.standalone(session)
    numbers.add(session, a, "+14155550100")
    session.add(TrackingNumber(account_id=b.id, number="+14155550100"))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_a_released_number_can_be_taken_again_and_lists_are_per_status(session):
    a, b = f.standalone(session), f.standalone(session)
    old = numbers.add(session, a, "+14155550100")
    old.status, old.released_at = NumberStatus.RELEASED, datetime(2026, 11, 1, tzinfo=UTC)
    session.flush()
    new = numbers.add(session, b, "+14155550100")
    assert numbers.list_for(session, b, NumberStatus.ACTIVE) == [new]
    assert numbers.list_for(session, a, NumberStatus.ACTIVE) == []
    assert numbers.list_for(session, a, NumberStatus.RELEASED) == [old]


@pytest.fixture
def solo(session):
    return world.solo(session)


# --- restore a released number ---------------------------------------------------------------

@pytest.fixture
def reactivated(session, solo):
    """Solo Shop closed at T0 (its number released) and reactivated an hour later."""
    account, admin = solo
    number = f.number(session, account, label="Main line")
    lifecycle.close(session, account, admin, now=T0)
    lifecycle.reactivate(session, account, admin, now=T0 + timedelta(hours=1))
    session.commit()
    return account, admin, number


def test_restoring_another_accounts_number_is_not_found(session, reactivated):
    account, admin, _ = reactivated
    other = f.standalone(session)
    theirs = f.number(session, other, released_at=T0)
    session.commit()
    for number_id in (theirs.id, theirs.id + 1000):
        with pytest.raises(NotFound) as e:
            numbers.restore(session, account, number_id, admin, now=LATER)
        assert e.value.message == "Tracking number not found."
    session.expire_all()
    assert (theirs.status, theirs.account_id) == (NumberStatus.RELEASED, other.id)


def test_restoring_an_active_number_is_refused(session, reactivated):
    account, admin, number = reactivated
    numbers.restore(session, account, number.id, admin, now=LATER)
    with pytest.raises(NotAllowed) as e:
        numbers.restore(session, account, number.id, admin, now=LATER)
    assert e.value.message == f"{number.number} is already active on this account."
    assert len(events(session, account, EventKind.NUMBER_RESTORED)) == 1


def test_a_number_active_on_another_account_is_not_restored(session, reactivated):
    account, admin, number = reactivated
    other = f.standalone(session, "Other Shop")
    taken = f.number(session, other)
    taken.number = number.number  # the carrier gave it to someone else meanwhile
    session.commit()
    with pytest.raises(NotAllowed) as e:
        numbers.restore(session, account, number.id, admin, now=LATER)
    assert e.value.message == (f"{number.number} is in use by another account now; it can't be "
                               "restored.")
    session.commit()
    session.expire_all()
    assert (number.status, number.released_at, number.account_id) == (
        NumberStatus.RELEASED, T0, account.id)
    assert (taken.status, taken.account_id) == (NumberStatus.ACTIVE, other.id)
    assert events(session, account, EventKind.NUMBER_RESTORED) == []


def test_numbers_of_a_canceled_account_are_not_restored(session, solo):
    account, admin = solo
    number = f.number(session, account)
    lifecycle.close(session, account, admin, now=T0)
    with pytest.raises(NotAllowed) as e:
        numbers.restore(session, account, number.id, admin, now=LATER)
    assert e.value.message == "Reactivate Solo Shop before restoring its numbers."
    session.expire_all()
    assert number.status == NumberStatus.RELEASED


def test_the_database_keeps_a_number_active_on_one_account_only(session):
    first, second = f.standalone(session), f.standalone(session)
    f.number(session, first, released_at=T0).number = "+14155550100"
    f.number(session, second, released_at=T0).number = "+14155550100"
    f.number(session, first).number = "+14155550100"
    session.flush()  # released copies of an active number are fine
    session.add(TrackingNumber(account_id=second.id, number="+14155550100"))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_two_accounts_restoring_the_same_number_at_once_get_it_once(app, session, monkeypatch):
    """Both pass the "in use" check; the partial unique index stops the second."""
    admin = f.user(session)
    first, second = f.standalone(session, "First Shop"), f.standalone(session, "Second Shop")
    mine = f.number(session, first, released_at=T0)
    theirs = f.number(session, second, released_at=T0)
    theirs.number = mine.number
    session.commit()
    original = numbers.begin_write

    def others_restore_first(s):
        """Another request restores it and commits after our "in use" check, just before
        our write transaction begins (on SQLite writers take turns, so that is the only
        moment left; on PostgreSQL it could be later still, with the same outcome)."""
        monkeypatch.setattr(numbers, "begin_write", original)
        with Session(db.engine) as other:
            numbers.restore(other, other.get(Account, second.id), theirs.id,
                            other.get(User, admin.id), now=LATER)
            other.commit()
        return original(s)

    monkeypatch.setattr(numbers, "begin_write", others_restore_first)
    with pytest.raises(NotAllowed) as e:
        numbers.restore(session, first, mine.id, admin, now=LATER)
    assert e.value.message == (f"{mine.number} is in use by another account now; it can't be "
                               "restored.")
    session.commit()
    session.expire_all()
    assert (mine.status, mine.released_at) == (NumberStatus.RELEASED, T0)
    assert (theirs.status, theirs.released_at) == (NumberStatus.ACTIVE, None)
    assert events(session, first, EventKind.NUMBER_RESTORED) == []


# --- what the Released Numbers page offers ---------------------------------------------------

@pytest.mark.parametrize("canceled,can_manage,age,expected", [
    (True, True, timedelta(days=1), (False, False, "Reactivate the account to restore it.")),
    (False, False, timedelta(days=1), (False, False, "Owners and admins can restore it.")),
    (False, True, timedelta(days=14), (True, False, "")),
    (False, True, timedelta(days=14, seconds=1),
     (False, True, "Released more than 14 days ago.")),
])
def test_restore_offer_says_what_can_be_done_and_why_not(session, solo, canceled, can_manage,
                                                        age, expected):
    account, _ = solo
    number = f.number(session, account, released_at=T0)
    account.canceled_at = T0 if canceled else None
    if canceled:
        account.status = AccountStatus.CANCELED
    offer = numbers.restore_offer(account, number, can_manage, now=T0 + age)
    assert (offer.number, offer.restorable, offer.ask_support, offer.message) == (
        number, *expected)
    assert numbers.restore_offers(session, account, can_manage, now=T0 + age) == [offer]
