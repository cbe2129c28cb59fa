from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import Account
from tests import factories as f


def test_datetimes_come_back_timezone_aware_utc(session):
    moment = datetime(2026, 11, 23, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    account = f.standalone(session)
    account.created_at = moment
    session.commit()
    session.expire_all()
    stored = session.scalar(select(Account.created_at).where(Account.id == account.id))
    assert stored == moment and stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(session):
    account = f.standalone(session)
    account.created_at = datetime(2026, 11, 23, 9, 0)
    with pytest.raises(Exception, match="naive datetime"):
        session.flush()
    session.rollback()


def test_the_clock_can_be_set_and_refuses_naive_times():
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    clock.freeze(moment)
    try:
        assert clock.now() == moment
    finally:
        clock.freeze(None)
    assert clock.now() != moment
    with pytest.raises(ValueError):
        clock.freeze(datetime(2030, 1, 1))
