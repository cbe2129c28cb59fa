"""The 60/90/14-day windows at their edges, against a clock the tests set (never sleep).

Each window is checked from several cancelation moments (mid-day, the last microsecond of a
year, a leap day) so that the edges don't depend on the date the tests run or on month
lengths: "60 days" is 60 × 24 hours from the stored UTC timestamp. Each edge gets an account
of its own, so one test walks a whole window.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.errors import NotAllowed, ValidationFailed
from portal.models import AccountEvent, AccountStatus, Call, EventKind, NumberStatus, SupportRequest
from portal.services import lifecycle, numbers, support
from portal.services.lifecycle import AccountClosed
from tests import factories as f

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

# (when it was canceled or released; that date, the last day of the 90-day balance window,
# as messages spell them)
MOMENTS = [
    pytest.param(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), "November 23, 2026",
                 "February 21, 2027", id="mid-day"),
    pytest.param(datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "December 31, 2026",
                 "March 31, 2027", id="last-microsecond-of-a-year"),
    pytest.param(datetime(2028, 2, 29, 0, 0, tzinfo=UTC), "February 29, 2028", "May 29, 2028",
                 id="leap-day"),
]
REACTIVATE = [(59 * DAY, True), (60 * DAY - SECOND, True), (60 * DAY, True),
              (60 * DAY + SECOND, False), (61 * DAY, False)]
RESTORE = [(13 * DAY, True), (14 * DAY, True), (14 * DAY + SECOND, False), (15 * DAY, False)]
REFUND = [(DAY, True), (89 * DAY, True), (90 * DAY, True), (90 * DAY + SECOND, False),
          (91 * DAY, False)]


def test_the_rules_are_the_articles_numbers():
    assert rules.DATA_RETENTION == timedelta(days=60)
    assert rules.BALANCE_RETENTION == timedelta(days=90)
    assert rules.NUMBER_RESTORE_WINDOW == timedelta(days=14)


def _closed_solo(session, canceled_at, name="Solo Shop"):
    admin = f.user(session)
    solo = f.standalone(session, name, admin=admin)
    f.number(session, solo)
    lifecycle.close(session, solo, admin, now=canceled_at)
    return solo, admin


def _events(session, account, kind):
    return list(session.scalars(select(AccountEvent).where(
        AccountEvent.account_id == account.id, AccountEvent.kind == kind)))


# --- reactivate: 60 days ------------------------------------------------------------------

@pytest.mark.parametrize("canceled_at,spelled,balance_until", MOMENTS)
def test_reactivate_until_exactly_60_days(session, canceled_at, spelled, balance_until):
    for after, allowed in REACTIVATE:
        solo, admin = _closed_solo(session, canceled_at)
        if allowed:
            lifecycle.reactivate(session, solo, admin, now=canceled_at + after)
            assert (solo.status, solo.canceled_at) == (AccountStatus.ACTIVE, None), after
            [event] = _events(session, solo, EventKind.REACTIVATED)
            assert (event.actor_id, event.at) == (admin.id, canceled_at + after)
            continue
        with pytest.raises(NotAllowed) as e:
            lifecycle.reactivate(session, solo, admin, now=canceled_at + after)
        assert e.value.message == (
            f"Solo Shop was canceled on {spelled}, more than 60 days ago: it can no longer be "
            "reactivated. Open a new account instead."), after
        session.expire_all()
        assert (solo.status, solo.canceled_at) == (AccountStatus.CANCELED, canceled_at), after
        assert _events(session, solo, EventKind.REACTIVATED) == [], after


def test_reactivate_uses_the_clock_when_no_time_is_given(session):
    canceled_at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    solo, admin = _closed_solo(session, canceled_at)
    clock.freeze(canceled_at + 60 * DAY + SECOND)
    with pytest.raises(NotAllowed):
        lifecycle.reactivate(session, solo, admin)
    clock.freeze(canceled_at + 60 * DAY)
    lifecycle.reactivate(session, solo, admin)
    assert solo.status == AccountStatus.ACTIVE


# --- data kept 60 days, then closed for good ---------------------------------------------

@pytest.mark.parametrize("canceled_at,spelled,balance_until", MOMENTS)
def test_data_is_kept_60_days_then_the_account_is_closed_for_good(session, canceled_at,
                                                                   spelled, balance_until):
    solo, _ = _closed_solo(session, canceled_at)
    w = lifecycle.windows(solo, now=canceled_at)
    assert (w.reactivate_until, w.balance_until) == (canceled_at + timedelta(days=60),
                                                     canceled_at + timedelta(days=90))
    for after in (DAY, 59 * DAY, 60 * DAY):
        lifecycle.check_open(solo, now=canceled_at + after)  # no error
        assert not lifecycle.is_closed_for_good(solo, now=canceled_at + after), after
    for after in (60 * DAY + SECOND, 61 * DAY, 400 * DAY):
        assert lifecycle.is_closed_for_good(solo, now=canceled_at + after), after
        with pytest.raises(AccountClosed) as e:
            lifecycle.check_open(solo, now=canceled_at + after)
        assert e.value.status == 410
        assert e.value.message == (
            f"Solo Shop was closed on {spelled} and its data was removed after 60 days. "
            "To use the portal again, open a new account.")


def test_an_open_account_is_never_closed_for_good(session):
    solo = f.standalone(session, "Solo Shop")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    lifecycle.check_open(solo, now=later)
    assert not lifecycle.is_closed_for_good(solo, now=later)
    assert lifecycle.windows(solo, now=later) is None


# --- restore a released number: 14 days ----------------------------------------------------

@pytest.mark.parametrize("released_at,spelled,balance_until", MOMENTS)
def test_restore_until_exactly_14_days(session, released_at, spelled, balance_until):
    for after, allowed in RESTORE:
        # a number released when its account closed, the account reactivated an hour later
        admin = f.user(session)
        solo = f.standalone(session, "Solo Shop", admin=admin)
        number = f.number(session, solo, label="Main line")
        lifecycle.close(session, solo, admin, now=released_at)
        lifecycle.reactivate(session, solo, admin, now=released_at + timedelta(hours=1))
        assert numbers.can_restore(number, now=released_at + after) is allowed, after
        if allowed:
            restored = numbers.restore(session, solo, number.id, admin,
                                       now=released_at + after)
            assert restored is number
            assert (number.status, number.released_at, number.account_id) == (
                NumberStatus.ACTIVE, None, solo.id), after
            [event] = _events(session, solo, EventKind.NUMBER_RESTORED)
            assert (event.actor_id, event.at, event.details) == (
                admin.id, released_at + after, {"number": number.number})
            continue
        with pytest.raises(NotAllowed) as e:
            numbers.restore(session, solo, number.id, admin, now=released_at + after)
        assert e.value.message == (
            f"{number.number} was released on {spelled}, more than 14 days ago. Send a "
            "support request to ask whether the carrier can restore it."), after
        session.expire_all()
        assert (number.status, number.released_at) == (NumberStatus.RELEASED, released_at)
        assert _events(session, solo, EventKind.NUMBER_RESTORED) == [], after


# --- refund of the available balance: 90 days --------------------------------------------

@pytest.mark.parametrize("canceled_at,spelled,balance_until", MOMENTS)
def test_refund_request_until_exactly_90_days(session, canceled_at, spelled, balance_until):
    for after, allowed in REFUND:
        solo, admin = _closed_solo(session, canceled_at)
        if allowed:
            ticket = support.request(session, solo, admin, "refund",
                                     now=canceled_at + after)
            assert (ticket.kind.value, ticket.status.value, ticket.account_id,
                    ticket.created_at) == ("refund", "open", solo.id, canceled_at + after)
            continue
        with pytest.raises(ValidationFailed) as e:
            support.request(session, solo, admin, "refund", now=canceled_at + after)
        assert e.value.errors == {"kind": (
            f"The available balance was kept for 90 days after cancelation, until "
            f"{balance_until}; a refund can no longer be requested.")}, after
        assert session.scalar(select(func.count()).select_from(SupportRequest).where(
            SupportRequest.account_id == solo.id)) == 0, after


# --- the purge job: 60 days ----------------------------------------------------------------

@pytest.mark.parametrize("canceled_at,spelled,balance_until", MOMENTS)
def test_purge_waits_until_60_days_have_passed(session, canceled_at, spelled, balance_until):
    solo, _ = _closed_solo(session, canceled_at)
    f.calls(session, solo, 3, start=canceled_at - timedelta(days=3))
    for after in (59 * DAY, 60 * DAY):
        assert lifecycle.purge_expired(session, now=canceled_at + after) == [], after
    assert session.scalar(select(func.count()).select_from(Call)) == 3
    assert solo.data_purged_at is None
    assert lifecycle.purge_expired(session, now=canceled_at + 60 * DAY + SECOND) == [solo.id]
    assert session.scalar(select(func.count()).select_from(Call)) == 0
