"""The lifecycle service: status changes, close, reactivate and the purge job (an agency's
cancel and transfer: test_agency.py; support requests: test_support.py; restoring released
numbers: test_numbers.py)."""

import threading
from datetime import timedelta

import pytest

from portal.errors import NotAllowed
from portal.models import (
    Account,
    AccountEvent,
    AccountKind,
    AccountStatus,
    Call,
    EventKind,
    NumberStatus,
    User,
)
from portal.services import agency as agencies
from portal.services import lifecycle
from tests import factories as f
from tests.threads import in_own_session
from tests.unit import lifecycle_world as world
from tests.unit.lifecycle_world import LATER, ST, T0, count, events, set_status


@pytest.fixture
def solo(session):
    return world.solo(session)


@pytest.fixture
def northwind(session):
    return world.northwind(session)


# --- pause, stop, resume --------------------------------------------------------------------

CANCELED_REFUSAL = "Solo Shop is canceled: reactivate it first."
BILLING_REFUSAL = ("Solo Shop is paused for billing: its balance is below zero. A payment that "
                   "brings it to zero or more lifts the pause.")

# (action, from, to or the refusal, the event kind)
TRANSITIONS = [
    (lifecycle.pause_swapping, ST.ACTIVE, ST.SWAPPING_PAUSED),
    (lifecycle.pause_swapping, ST.CALLS_STOPPED, ST.SWAPPING_PAUSED),
    (lifecycle.pause_swapping, ST.SWAPPING_PAUSED,
     "Can't pause number swapping for Solo Shop: number swapping is already paused."),
    (lifecycle.pause_swapping, ST.BILLING_PAUSED, BILLING_REFUSAL),
    (lifecycle.pause_swapping, ST.CANCELED, CANCELED_REFUSAL),
    (lifecycle.stop_calls, ST.ACTIVE, ST.CALLS_STOPPED),
    (lifecycle.stop_calls, ST.SWAPPING_PAUSED, ST.CALLS_STOPPED),
    (lifecycle.stop_calls, ST.CALLS_STOPPED,
     "Can't stop incoming calls for Solo Shop: incoming calls are already stopped."),
    (lifecycle.stop_calls, ST.BILLING_PAUSED, BILLING_REFUSAL),
    (lifecycle.stop_calls, ST.CANCELED, CANCELED_REFUSAL),
    (lifecycle.resume, ST.SWAPPING_PAUSED, ST.ACTIVE),
    (lifecycle.resume, ST.CALLS_STOPPED, ST.ACTIVE),
    (lifecycle.resume, ST.ACTIVE, "Can't resume Solo Shop: it is active."),
    (lifecycle.resume, ST.BILLING_PAUSED, BILLING_REFUSAL),
    (lifecycle.resume, ST.CANCELED, CANCELED_REFUSAL),
]
EVENT_OF = {lifecycle.pause_swapping: EventKind.SWAPPING_PAUSED,
            lifecycle.stop_calls: EventKind.CALLS_STOPPED, lifecycle.resume: EventKind.RESUMED}


@pytest.mark.parametrize("action", [lifecycle.pause_swapping, lifecycle.stop_calls,
                                    lifecycle.resume], ids=lambda a: a.__name__)
def test_status_transitions_from_each_state(session, action):
    """Allowed: the status changes and an event says who and when. Refused: the exact
    reason, and nothing changes. One account per starting state."""
    admin = f.user(session)
    for act, start, outcome in TRANSITIONS:
        if act is not action:
            continue
        account = f.standalone(session, "Solo Shop", admin=admin)
        set_status(session, account, start)
        canceled_at = account.canceled_at
        session.commit()
        if isinstance(outcome, AccountStatus):
            action(session, account, admin, now=T0)
            session.commit()
            session.expire_all()
            assert account.status == outcome, start
            [event] = events(session, account)
            assert (event.kind, event.actor_id, event.at) == (EVENT_OF[action], admin.id, T0)
            continue
        with pytest.raises(NotAllowed) as e:
            action(session, account, admin, now=T0)
        assert e.value.message == outcome, start
        session.commit()
        session.expire_all()
        assert (account.status, account.canceled_at) == (start, canceled_at), start
        assert events(session, account) == [], start


def test_status_changes_apply_to_a_sub_account_alone(session, northwind):
    bayside, harbor, agency = northwind["bayside"], northwind["harbor"], northwind["agency"]
    lifecycle.stop_calls(session, bayside, northwind["owner"], now=T0)
    session.expire_all()
    assert (bayside.status, harbor.status, agency.status) == (
        ST.CALLS_STOPPED, ST.ACTIVE, ST.ACTIVE)


def test_an_agency_is_not_paused_or_stopped_as_a_whole(session, northwind):
    agency = northwind["agency"]
    for action in (lifecycle.pause_swapping, lifecycle.stop_calls):
        with pytest.raises(NotAllowed) as e:
            action(session, agency, northwind["owner"], now=T0)
        assert e.value.message == "An agency is paused or stopped one sub-account at a time."
    session.expire_all()
    assert agency.status == ST.ACTIVE
    assert events(session) == []


# --- close ----------------------------------------------------------------------------------

def test_close_releases_every_active_number_and_records_it(session, solo):
    account, admin = solo
    main = f.number(session, account, label="Main line")
    ads = f.number(session, account, label="Google Ads")
    earlier = T0 - timedelta(days=30)
    old = f.number(session, account, released_at=earlier)
    released = lifecycle.close(session, account, admin, now=T0)
    session.commit()
    session.expire_all()

    assert sorted(n.id for n in released) == sorted([main.id, ads.id])
    assert (account.status, account.canceled_at) == (ST.CANCELED, T0)
    for n in (main, ads):
        assert (n.status, n.released_at, n.account_id) == (NumberStatus.RELEASED, T0, account.id)
    assert old.released_at == earlier  # released before: untouched
    recorded = events(session, account)
    assert sorted((e.kind, e.details.get("number")) for e in recorded) == sorted([
        (EventKind.NUMBER_RELEASED, main.number), (EventKind.NUMBER_RELEASED, ads.number),
        (EventKind.CLOSED, None)])
    assert all((e.actor_id, e.at) == (admin.id, T0) for e in recorded)
    [closed] = [e for e in recorded if e.kind == EventKind.CLOSED]
    assert sorted(closed.details["released"]) == sorted([main.number, ads.number])


def test_close_lists_the_numbers_it_will_release(session, solo):
    account, _ = solo
    b = f.number(session, account)
    a = f.number(session, account)
    f.number(session, account, released_at=T0)
    f.number(session, f.standalone(session))
    assert lifecycle.numbers_to_release(session, account) == sorted([a, b], key=lambda n: n.number)


def test_closing_a_sub_account_leaves_the_agency_and_siblings_untouched(session, northwind):
    bayside, harbor, agency = northwind["bayside"], northwind["harbor"], northwind["agency"]
    lifecycle.close(session, bayside, northwind["owner"], now=T0)
    session.commit()
    session.expire_all()
    assert bayside.status == ST.CANCELED
    assert (agency.status, agency.canceled_at) == (ST.ACTIVE, None)
    assert (harbor.status, harbor.canceled_at) == (ST.ACTIVE, None)
    for key in ("agency", "harbor"):
        for n in northwind["numbers"][key]:
            assert (n.status, n.released_at) == (NumberStatus.ACTIVE, None)
    assert {e.account_id for e in events(session)} == {bayside.id}


def test_closing_every_sub_account_leaves_the_agency_active(session, northwind):
    for key in ("bayside", "harbor"):
        lifecycle.close(session, northwind[key], northwind["owner"], now=T0)
    session.commit()
    session.expire_all()
    agency = northwind["agency"]
    assert (agency.status, agency.canceled_at) == (ST.ACTIVE, None)
    assert northwind["numbers"]["agency"][0].status == NumberStatus.ACTIVE
    assert agencies.active_sub_accounts(session, agency) == []


def test_an_agency_is_not_closed_this_way(session, northwind):
    agency = northwind["agency"]
    with pytest.raises(NotAllowed) as e:
        lifecycle.close(session, agency, northwind["owner"], now=T0)
    assert e.value.message == ("An agency is canceled from Parent Settings, with all its "
                               "sub-accounts.")
    session.expire_all()
    assert agency.status == ST.ACTIVE
    assert northwind["numbers"]["agency"][0].status == NumberStatus.ACTIVE


def test_closing_a_closed_account_is_refused_and_changes_nothing(session, solo):
    account, admin = solo
    numbers = [f.number(session, account) for _ in range(2)]
    lifecycle.close(session, account, admin, now=T0)
    session.commit()
    before = len(events(session))
    with pytest.raises(NotAllowed) as e:
        lifecycle.close(session, account, admin, now=LATER)
    assert e.value.message == "Solo Shop is already canceled."
    session.commit()
    session.expire_all()
    assert account.canceled_at == T0
    assert [n.released_at for n in numbers] == [T0, T0]
    assert len(events(session)) == before


def test_two_closes_in_a_row_release_each_number_once(session, solo):
    account, admin = solo
    numbers = [f.number(session, account) for _ in range(3)]
    lifecycle.close(session, account, admin, now=T0)
    with pytest.raises(NotAllowed):
        lifecycle.close(session, account, admin, now=T0)
    session.commit()
    released = events(session, account, EventKind.NUMBER_RELEASED)
    assert sorted(e.details["number"] for e in released) == sorted(n.number for n in numbers)
    assert len(events(session, account, EventKind.CLOSED)) == 1


def test_two_simultaneous_closes_release_each_number_once(app, session, solo):
    account, admin = solo
    numbers = [f.number(session, account) for _ in range(3)]
    account_id, admin_id = account.id, admin.id
    session.commit()
    barrier = threading.Barrier(2, timeout=10)

    def close(s):  # never touches the test's own session: it isn't thread-safe
        mine, actor = s.get(Account, account_id), s.get(User, admin_id)
        barrier.wait()
        lifecycle.close(s, mine, actor, now=T0)
        s.commit()
        return "closed"

    runs = [in_own_session(app, close) for _ in range(2)]
    threads = [thread for thread, _ in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = sorted(r.get("value") or r["error"].message for _, r in runs)
    assert outcomes == ["Solo Shop is already canceled.", "closed"]
    session.expire_all()
    released = events(session, account, EventKind.NUMBER_RELEASED)
    assert sorted(e.details["number"] for e in released) == sorted(n.number for n in numbers)
    assert len(events(session, account, EventKind.CLOSED)) == 1


# --- reactivate -----------------------------------------------------------------------------

def test_reactivate_makes_it_active_and_keeps_numbers_released(session, solo):
    account, admin = solo
    number = f.number(session, account)
    lifecycle.close(session, account, admin, now=T0)
    lifecycle.reactivate(session, account, admin, now=LATER)
    session.commit()
    session.expire_all()
    assert (account.status, account.canceled_at) == (ST.ACTIVE, None)
    assert (number.status, number.released_at) == (NumberStatus.RELEASED, T0)
    [event] = events(session, account, EventKind.REACTIVATED)
    assert (event.actor_id, event.at) == (admin.id, LATER)


def test_reactivating_an_account_that_is_not_canceled_is_refused(session, solo):
    account, admin = solo
    for status in (ST.ACTIVE, ST.SWAPPING_PAUSED, ST.CALLS_STOPPED, ST.BILLING_PAUSED):
        set_status(session, account, status)
        with pytest.raises(NotAllowed) as e:
            lifecycle.reactivate(session, account, admin, now=T0)
        assert e.value.message == "Solo Shop is not canceled.", status
        session.expire_all()
        assert account.status == status
    assert events(session) == []


def test_a_sub_of_a_canceled_agency_is_not_reactivated(session, northwind):
    owner, agency, bayside = northwind["owner"], northwind["agency"], northwind["bayside"]
    agencies.cancel(session, agency, owner, "Other", now=T0)
    session.commit()
    with pytest.raises(NotAllowed) as e:
        lifecycle.reactivate(session, bayside, owner, now=LATER)
    assert e.value.message == ("Northwind Agency is canceled: the agency must be reactivated "
                               "(a support request) before its sub-accounts.")
    session.expire_all()
    assert (bayside.status, bayside.canceled_at) == (ST.CANCELED, T0)


def test_a_closed_sub_of_an_active_agency_is_reactivated(session, northwind):
    owner, bayside = northwind["owner"], northwind["bayside"]
    lifecycle.close(session, bayside, owner, now=T0)
    lifecycle.reactivate(session, bayside, owner, now=LATER)
    assert bayside.status == ST.ACTIVE


def test_a_canceled_agency_is_reactivated_only_by_support(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    agencies.cancel(session, agency, owner, "Other", now=T0)
    session.commit()
    with pytest.raises(NotAllowed) as e:
        lifecycle.reactivate(session, agency, owner, now=LATER)
    assert e.value.message == ("A canceled agency can't be reactivated here: send a support "
                               "request to reactivate it.")
    session.expire_all()
    assert (agency.status, agency.canceled_at) == (ST.CANCELED, T0)


# --- the purge job ----------------------------------------------------------------------------

def test_purge_deletes_calls_only_of_accounts_closed_over_60_days_ago(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    old = f.sub(session, agency, "Old Client")
    exactly = f.sub(session, agency, "Sixty Days")
    recent = f.sub(session, agency, "Recent Client")
    solo = f.standalone(session, "Solo Shop")
    now = T0 + timedelta(days=100)
    lifecycle.close(session, old, owner, now=now - timedelta(days=61))
    lifecycle.close(session, exactly, owner, now=now - timedelta(days=60))
    lifecycle.close(session, recent, owner, now=now - timedelta(days=59))
    lifecycle.close(session, solo, owner, now=now - timedelta(days=90))
    for account in (agency, northwind["bayside"], old, exactly, recent, solo):
        f.calls(session, account, 3, start=T0)
    session.commit()

    assert sorted(lifecycle.purge_expired(session, now=now)) == sorted([old.id, solo.id])
    session.commit()
    session.expire_all()
    for account in (old, solo):
        assert count(session, Call, Call.account_id == account.id) == 0
        assert account.data_purged_at == now
        [event] = events(session, account, EventKind.DATA_PURGED)
        assert (event.actor_id, event.at, event.details) == (None, now, {"calls": 3})
        assert account.status == ST.CANCELED  # still there, still canceled
    for account in (agency, northwind["bayside"], exactly, recent):
        assert count(session, Call, Call.account_id == account.id) == 3
        assert account.data_purged_at is None
    assert count(session, AccountEvent, AccountEvent.kind == EventKind.DATA_PURGED) == 2


def test_purge_is_idempotent(session, solo):
    account, admin = solo
    lifecycle.close(session, account, admin, now=T0)
    f.calls(session, account, 2, start=T0 - timedelta(days=1))
    first = T0 + timedelta(days=61)
    assert lifecycle.purge_expired(session, now=first) == [account.id]
    session.commit()
    f.calls(session, account, 1, start=T0)  # would be removed by a second purge
    session.commit()
    assert lifecycle.purge_expired(session, now=first + timedelta(minutes=1)) == []
    assert lifecycle.purge_expired(session, now=first + timedelta(days=30)) == []
    session.commit()
    session.expire_all()
    assert account.data_purged_at == first
    assert count(session, Call, Call.account_id == account.id) == 1
    assert len(events(session, account, EventKind.DATA_PURGED)) == 1


@pytest.mark.parametrize("status,offered", [
    (ST.ACTIVE, {"pause", "stop"}),
    (ST.SWAPPING_PAUSED, {"stop", "resume"}),
    (ST.CALLS_STOPPED, {"pause", "resume"}),
    (ST.BILLING_PAUSED, set()),
    (ST.CANCELED, set()),
])
def test_the_status_section_offers_what_the_rules_allow(status, offered):
    from portal.models import Account

    assert lifecycle.status_actions(Account(kind=AccountKind.STANDALONE, status=status)) == offered
    assert lifecycle.status_actions(Account(kind=AccountKind.AGENCY, status=ST.ACTIVE)) == set()
