from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from portal.errors import ValidationFailed
from portal.models import NumberStatus, TrackingNumber
from portal.services import numbers
from tests import factories as f


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
