"""The lifecycle service: status changes, close, reactivate, restore, cancel an agency,
transfer a sub-account out, support requests and the purge job."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.extensions import db
from portal.models import (
    Account,
    AccountEvent,
    AccountKind,
    AccountStatus,
    BillingMode,
    Call,
    EventKind,
    Membership,
    NumberStatus,
    Role,
    SupportStatus,
    TrackingNumber,
    User,
)
from portal.services import access, lifecycle
from tests import factories as f

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=5)
ST = AccountStatus


def events(session, account=None, kind=None) -> list[AccountEvent]:
    query = select(AccountEvent).order_by(AccountEvent.id)
    if account is not None:
        query = query.where(AccountEvent.account_id == account.id)
    if kind is not None:
        query = query.where(AccountEvent.kind == kind)
    return list(session.scalars(query))


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def set_status(session, account, status, canceled_at=T0 - timedelta(days=1)):
    account.status = status
    account.canceled_at = canceled_at if status == ST.CANCELED else None
    session.flush()


@pytest.fixture
def solo(session):
    admin = f.user(session, name="Sam Solo")
    account = f.standalone(session, "Solo Shop", admin=admin)
    return account, admin


@pytest.fixture
def northwind(session):
    """An agency with its owner, two subs (agency- and customer-billed) and numbers."""
    owner = f.user(session, email="owner@example.test", name="Avery Agency")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    numbers = {
        "agency": [f.number(session, agency, label="Agency line")],
        "bayside": [f.number(session, bayside, label="Main"), f.number(session, bayside)],
        "harbor": [f.number(session, harbor, label="Harbor line")],
    }
    return {"owner": owner, "agency": agency, "bayside": bayside, "harbor": harbor,
            "numbers": numbers}


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
    assert lifecycle.active_sub_accounts(session, agency) == []


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


def _in_own_session(app, fn):
    """Run fn(session) in a thread with its own app context, so its own database session."""
    result = {}

    def run():
        with app.app_context():
            try:
                result["value"] = fn(db.session)
            except Exception as e:  # handed back to the test
                db.session.rollback()
                result["error"] = e
            finally:
                db.session.remove()

    return run, result


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

    runs = [_in_own_session(app, close) for _ in range(2)]
    threads = [threading.Thread(target=run) for run, _ in runs]
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
    lifecycle.cancel_agency(session, agency, owner, "Other", now=T0)
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
    lifecycle.cancel_agency(session, agency, owner, "Other", now=T0)
    session.commit()
    with pytest.raises(NotAllowed) as e:
        lifecycle.reactivate(session, agency, owner, now=LATER)
    assert e.value.message == ("A canceled agency can't be reactivated here: send a support "
                               "request to reactivate it.")
    session.expire_all()
    assert (agency.status, agency.canceled_at) == (ST.CANCELED, T0)


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
            lifecycle.restore_number(session, account, number_id, admin, now=LATER)
        assert e.value.message == "Tracking number not found."
    session.expire_all()
    assert (theirs.status, theirs.account_id) == (NumberStatus.RELEASED, other.id)


def test_restoring_an_active_number_is_refused(session, reactivated):
    account, admin, number = reactivated
    lifecycle.restore_number(session, account, number.id, admin, now=LATER)
    with pytest.raises(NotAllowed) as e:
        lifecycle.restore_number(session, account, number.id, admin, now=LATER)
    assert e.value.message == f"{number.number} is already active on this account."
    assert len(events(session, account, EventKind.NUMBER_RESTORED)) == 1


def test_a_number_active_on_another_account_is_not_restored(session, reactivated):
    account, admin, number = reactivated
    other = f.standalone(session, "Other Shop")
    taken = f.number(session, other)
    taken.number = number.number  # the carrier gave it to someone else meanwhile
    session.commit()
    with pytest.raises(NotAllowed) as e:
        lifecycle.restore_number(session, account, number.id, admin, now=LATER)
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
        lifecycle.restore_number(session, account, number.id, admin, now=LATER)
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
    original = lifecycle.begin_write

    def others_restore_first(s):
        """Another request restores it and commits after our "in use" check, just before
        our write transaction begins (on SQLite writers take turns, so that is the only
        moment left; on PostgreSQL it could be later still, with the same outcome)."""
        monkeypatch.setattr(lifecycle, "begin_write", original)
        with Session(db.engine) as other:
            lifecycle.restore_number(other, other.get(Account, second.id), theirs.id,
                                     other.get(User, admin.id), now=LATER)
            other.commit()
        return original(s)

    monkeypatch.setattr(lifecycle, "begin_write", others_restore_first)
    with pytest.raises(NotAllowed) as e:
        lifecycle.restore_number(session, first, mine.id, admin, now=LATER)
    assert e.value.message == (f"{mine.number} is in use by another account now; it can't be "
                               "restored.")
    session.commit()
    session.expire_all()
    assert (mine.status, mine.released_at) == (NumberStatus.RELEASED, T0)
    assert (theirs.status, theirs.released_at) == (NumberStatus.ACTIVE, None)
    assert events(session, first, EventKind.NUMBER_RESTORED) == []


# --- cancel an agency -----------------------------------------------------------------------

def test_cancel_agency_cancels_it_and_every_sub_still_active(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    earlier = T0 - timedelta(days=10)
    closed = f.sub(session, agency, "Oak Bakery")
    oak_number = f.number(session, closed)
    lifecycle.close(session, closed, owner, now=earlier)
    paused = f.sub(session, agency, "Pine Auto", status=ST.CALLS_STOPPED)
    other = f.agency(session, "Southwind Agency")
    rival = f.sub(session, other, "Rival")
    rival_number = f.number(session, rival)
    session.commit()
    events_before = len(events(session, closed))

    canceled = lifecycle.cancel_agency(session, agency, owner, "Too expensive",
                                       "  We are closing shop.  ", now=T0)
    session.commit()
    session.expire_all()

    assert sorted(s.name for s in canceled) == ["Bayside Dental", "Harbor Law", "Pine Auto"]
    for account in (agency, northwind["bayside"], northwind["harbor"], paused):
        assert (account.status, account.canceled_at) == (ST.CANCELED, T0), account.name
    for key in ("agency", "bayside", "harbor"):
        for n in northwind["numbers"][key]:
            assert (n.status, n.released_at) == (NumberStatus.RELEASED, T0)
    assert (closed.canceled_at, oak_number.released_at) == (earlier, earlier)
    assert len(events(session, closed)) == events_before
    assert (rival.status, rival_number.status, other.status) == (
        ST.ACTIVE, NumberStatus.ACTIVE, ST.ACTIVE)

    [event] = events(session, agency, EventKind.AGENCY_CANCELED)
    assert (event.actor_id, event.at) == (owner.id, T0)
    assert event.details == {
        "reason": "Too expensive", "comments": "We are closing shop.",
        "sub_accounts": ["Bayside Dental", "Harbor Law", "Pine Auto"],
        "released": [northwind["numbers"]["agency"][0].number]}
    [sub_closed] = events(session, northwind["bayside"], EventKind.CLOSED)
    assert sub_closed.details["by_agency"] == "Northwind Agency"
    assert sorted(sub_closed.details["released"]) == sorted(
        n.number for n in northwind["numbers"]["bayside"])
    released_now = [e for e in events(session, kind=EventKind.NUMBER_RELEASED) if e.at == T0]
    assert len(released_now) == 4  # the agency's one, Bayside's two, Harbor's one


def test_cancel_agency_skips_a_sub_account_closed_meanwhile(session, northwind, monkeypatch):
    """The list of subs to cancel was read just before Bayside was closed on its own: it keeps
    its own date and isn't counted as canceled with the agency."""
    owner, agency, bayside = northwind["owner"], northwind["agency"], northwind["bayside"]
    stale = [bayside, northwind["harbor"]]
    lifecycle.close(session, bayside, owner, now=T0 - timedelta(minutes=1))
    monkeypatch.setattr(lifecycle, "active_sub_accounts", lambda _session, _agency: stale)
    canceled = lifecycle.cancel_agency(session, agency, owner, "Other", now=T0)
    session.expire_all()
    assert [s.name for s in canceled] == ["Harbor Law"]
    assert bayside.canceled_at == T0 - timedelta(minutes=1)
    assert len(events(session, bayside, EventKind.CLOSED)) == 1
    [event] = events(session, agency, EventKind.AGENCY_CANCELED)
    assert event.details["sub_accounts"] == ["Harbor Law"]


def test_cancel_agency_refuses_bad_feedback_and_changes_nothing(session, northwind):
    reason_error = {"reason": "Choose why you are canceling."}
    comments_error = {"comments": "Comments are at most 2,000 characters."}
    for reason, comments, errors in [
        ("", "", reason_error),
        ("Because", "", reason_error),
        ("too expensive", "", reason_error),  # the choices, exactly
        ("Other", "x" * 2001, comments_error),
        ("", "x" * 2001, {**reason_error, **comments_error}),
    ]:
        with pytest.raises(ValidationFailed) as e:
            lifecycle.cancel_agency(session, northwind["agency"], northwind["owner"], reason,
                                    comments, now=T0)
        assert e.value.errors == errors, (reason, len(comments))
    session.expire_all()
    assert [northwind[k].status for k in ("agency", "bayside", "harbor")] == [ST.ACTIVE] * 3
    assert events(session) == []


def test_cancel_agency_accepts_2000_characters_of_comments(session, northwind):
    lifecycle.cancel_agency(session, northwind["agency"], northwind["owner"], "Other",
                            "x" * 2000, now=T0)
    assert northwind["agency"].status == ST.CANCELED


def test_canceling_an_agency_twice_is_refused(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    lifecycle.cancel_agency(session, agency, owner, "Other", now=T0)
    session.commit()
    before = len(events(session))
    with pytest.raises(NotAllowed) as e:
        lifecycle.cancel_agency(session, agency, owner, "Other", now=LATER)
    assert e.value.message == "Northwind Agency is already canceled."
    session.commit()
    session.expire_all()
    assert agency.canceled_at == T0
    assert len(events(session)) == before


def test_only_an_agency_is_canceled_that_way(session, northwind):
    for account in (northwind["bayside"], f.standalone(session)):
        with pytest.raises(NotFound) as e:
            lifecycle.cancel_agency(session, account, northwind["owner"], "Other", now=T0)
        assert e.value.message == "Only an agency is canceled this way."
        assert account.status == ST.ACTIVE


# --- transfer a sub-account out -----------------------------------------------------------

@pytest.fixture
def customer(session):
    return f.user(session, email="casey@cedar.test", name="Casey Cedar")


def test_transfer_out_makes_a_standalone_account_with_its_numbers_and_calls(
        session, northwind, customer):
    owner, agency, harbor = northwind["owner"], northwind["agency"], northwind["harbor"]
    f.calls(session, harbor, 4, start=T0 - timedelta(days=2))
    lifecycle.stop_calls(session, harbor, owner, now=T0 - timedelta(days=1))
    session.commit()
    assert access.account_for(session, owner, harbor.id).via_agency

    result = lifecycle.transfer_out(session, harbor, owner, "  Casey@Cedar.TEST ", "Essentials",
                                    now=T0)
    session.commit()
    session.expire_all()

    assert (result.account, result.owner) == (harbor, customer)
    assert (harbor.kind, harbor.parent_id, harbor.plan, harbor.billing_mode) == (
        AccountKind.STANDALONE, None, "Essentials", BillingMode.CUSTOMER)
    assert harbor.status == ST.CALLS_STOPPED  # its status travels with it
    assert [n.account_id for n in northwind["numbers"]["harbor"]] == [harbor.id]
    assert northwind["numbers"]["harbor"][0].status == NumberStatus.ACTIVE
    assert count(session, Call, Call.account_id == harbor.id) == 4
    assert [e.kind for e in events(session, harbor)] == [EventKind.CALLS_STOPPED,
                                                         EventKind.TRANSFERRED_IN]
    membership = session.scalar(select(Membership).where(Membership.account_id == harbor.id))
    assert (membership.user_id, membership.role) == (customer.id, Role.OWNER)
    assert access.account_for(session, customer, harbor.id).role == Role.OWNER
    with pytest.raises(NotFound):
        access.account_for(session, owner, harbor.id)
    assert harbor.id not in [a.id for a in access.switcher_accounts(session, owner)]
    assert agency.status == ST.ACTIVE
    assert northwind["bayside"].parent_id == agency.id

    [out] = events(session, agency, EventKind.TRANSFERRED_OUT)
    assert (out.actor_id, out.at, out.details) == (owner.id, T0, {
        "account": "Harbor Law", "account_id": harbor.id, "new_owner": "casey@cedar.test"})
    [into] = events(session, harbor, EventKind.TRANSFERRED_IN)
    assert (into.actor_id, into.at, into.details) == (owner.id, T0, {
        "agency": "Northwind Agency", "new_owner": "casey@cedar.test", "plan": "Essentials"})


def test_transfer_out_makes_an_existing_member_the_owner(session, northwind, customer):
    harbor = northwind["harbor"]
    f.member(session, customer, harbor, Role.USER)
    lifecycle.transfer_out(session, harbor, northwind["owner"], customer.email, "Pro", now=T0)
    session.commit()
    roles = session.execute(select(Membership.user_id, Membership.role).where(
        Membership.account_id == harbor.id)).all()
    assert roles == [(customer.id, Role.OWNER)]


AGENCY_BILLED = ("Bayside Dental is paid from the agency balance and has no payment method of "
                 "its own. Remove it from agency billing (the customer adds a card) before "
                 "transferring it.")
PLAN_CHOICE = "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite."
NEW_OWNER = "Enter the new owner's email address, like name@example.com."


def test_transfer_out_refuses_bad_input_and_changes_nothing(session, northwind, customer):
    agency = northwind["agency"]
    session.commit()
    for key, email, plan, errors in [
        ("bayside", "casey@cedar.test", "Pro", {"": AGENCY_BILLED}),
        ("harbor", "", "Pro", {"email": NEW_OWNER}),
        ("harbor", "   ", "Pro", {"email": NEW_OWNER}),
        ("harbor", "casey@cedar.test\r\nBcc: x@y.test", "Pro", {"email": NEW_OWNER}),
        ("harbor", "Casey <casey@cedar.test>", "Pro", {"email": NEW_OWNER}),
        ("harbor", "casey@cedar.test, x@y.test", "Pro", {"email": NEW_OWNER}),
        ("harbor", "casey@localhost", "Pro", {"email": NEW_OWNER}),
        ("harbor", "casey@cedar.test", "Gold", {"plan": PLAN_CHOICE}),
        ("harbor", "casey@cedar.test", "Agency", {"plan": PLAN_CHOICE}),
        ("harbor", "casey@cedar.test", "", {"plan": PLAN_CHOICE}),
        ("bayside", "", "Gold", {"": AGENCY_BILLED, "plan": PLAN_CHOICE,
                                 "email": NEW_OWNER}),
    ]:
        sub = northwind[key]
        with pytest.raises(ValidationFailed) as e:
            lifecycle.transfer_out(session, sub, northwind["owner"], email, plan, now=T0)
        assert e.value.errors == errors, (key, email, plan)
        session.rollback()
        session.expire_all()
        assert (sub.kind, sub.parent_id, sub.plan) == (AccountKind.SUB, agency.id, "Agency")
        assert count(session, Membership, Membership.account_id == sub.id) == 0
    assert events(session) == []


def test_an_email_without_a_user_gets_a_user_without_a_password(session, northwind, customer):
    """The agency must not learn whether an email has a user: the transfer goes through
    either way. Without one, the new owner's user is made without a password (none signs
    in) and they set one from the link the view emails them."""
    from portal.services import auth

    harbor = northwind["harbor"]
    northwind["bayside"].billing_mode = BillingMode.CUSTOMER
    session.commit()
    known = lifecycle.transfer_out(session, northwind["bayside"], northwind["owner"],
                                   customer.email, "Pro", now=T0)
    unknown = lifecycle.transfer_out(session, harbor, northwind["owner"],
                                     " New.Owner@Harbor.TEST ", "Pro", now=T0)
    session.commit()
    assert known.owner == customer and auth.has_password(customer)
    made = unknown.owner
    assert (made.email, made.name) == ("new.owner@harbor.test", "new.owner")
    assert not auth.has_password(made)
    assert access.account_for(session, made, harbor.id).role == Role.OWNER
    for password in ("", made.password_hash, "!", made.password_hash[1:]):
        with pytest.raises(ValidationFailed):
            auth.sign_in(session, made.email, password, "10.0.0.9")
    # Named again (another transfer): the same user, not a second one.
    assert auth.user_for_email(session, "new.owner@harbor.test") == made
    assert count(session, User, User.email == "new.owner@harbor.test") == 1


def test_a_canceled_sub_account_is_not_transferred(session, northwind, customer):
    harbor = northwind["harbor"]
    lifecycle.close(session, harbor, northwind["owner"], now=T0)
    session.commit()
    with pytest.raises(ValidationFailed) as e:
        lifecycle.transfer_out(session, harbor, northwind["owner"], customer.email, "Pro",
                               now=LATER)
    assert e.value.errors == {"": "Harbor Law is canceled: reactivate it before transferring it."}
    session.rollback()
    assert (harbor.kind, harbor.parent_id) == (AccountKind.SUB, northwind["agency"].id)


def test_only_a_sub_account_is_transferred(session, northwind, customer):
    for account in (northwind["agency"], f.standalone(session)):
        with pytest.raises(NotFound) as e:
            lifecycle.transfer_out(session, account, northwind["owner"], customer.email, "Pro",
                                   now=T0)
        assert e.value.message == "Only a sub-account can be transferred out of an agency."


# --- support requests -----------------------------------------------------------------------

def _closed(session, solo):
    account, admin = solo
    lifecycle.close(session, account, admin, now=T0)
    return account, admin


def test_support_request_is_stored_open_and_recorded(session, solo):
    account, admin = _closed(session, solo)
    ticket = lifecycle.request_support(session, account, admin, "refund", "  Please refund.  ",
                                       now=LATER)
    assert (ticket.account_id, ticket.kind.value, ticket.status, ticket.message,
            ticket.created_by_id, ticket.created_at, ticket.tracking_number_id) == (
        account.id, "refund", SupportStatus.OPEN, "Please refund.", admin.id, LATER, None)
    assert ticket.label == "Refund of the available balance"
    [event] = events(session, account, EventKind.SUPPORT_REQUESTED)
    assert (event.actor_id, event.at, event.details) == (
        admin.id, LATER, {"request": ticket.id, "kind": "refund", "number": None})
    assert lifecycle.support_requests(session, account) == [ticket]


def test_refund_needs_a_canceled_account(session, solo):
    account, admin = solo
    with pytest.raises(ValidationFailed) as e:
        lifecycle.request_support(session, account, admin, "refund", now=T0)
    assert e.value.errors == {"kind": "A refund of the available balance can be requested once "
                                      "the account is canceled."}


def test_support_request_refuses_bad_input(session, solo):
    account, admin = _closed(session, solo)
    for kind, message, errors in [
        ("", "", {"kind": "Choose what the request is about."}),
        ("refunds", "", {"kind": "Choose what the request is about."}),
        ("other", "", {"message": "Tell us what you need."}),
        ("other", "   ", {"message": "Tell us what you need."}),
        ("other", "x" * 5001, {"message": "The message is at most 5,000 characters."}),
        ("reactivate_agency", "", {"kind": "Only a canceled agency is reactivated by support."}),
        ("restore_number", "", {"number": "Choose a released number of this account."}),
    ]:
        with pytest.raises(ValidationFailed) as e:
            lifecycle.request_support(session, account, admin, kind, message, now=LATER)
        assert e.value.errors == errors, (kind, message[:10])
    assert lifecycle.support_requests(session, account) == []
    assert events(session, account, EventKind.SUPPORT_REQUESTED) == []


def test_reactivate_agency_only_for_a_canceled_agency(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    only = {"kind": "Only a canceled agency is reactivated by support."}
    for account in (agency, northwind["bayside"]):
        with pytest.raises(ValidationFailed) as e:
            lifecycle.request_support(session, account, owner, "reactivate_agency", now=T0)
        assert e.value.errors == only
    lifecycle.cancel_agency(session, agency, owner, "Other", now=T0)
    with pytest.raises(ValidationFailed) as e:  # a sub of it is not the agency
        lifecycle.request_support(session, northwind["bayside"], owner, "reactivate_agency",
                                  now=LATER)
    assert e.value.errors == only
    ticket = lifecycle.request_support(session, agency, owner, "reactivate_agency", now=LATER)
    assert ticket.label == "Reactivate a canceled agency"


def test_restore_number_request_needs_a_released_number_of_the_account(session, solo):
    account, admin = solo
    active = f.number(session, account)
    released = f.number(session, account, released_at=T0 - timedelta(days=20))
    elsewhere = f.number(session, f.standalone(session), released_at=T0)
    for number_id in (None, active.id, elsewhere.id, 999_999):
        with pytest.raises(ValidationFailed) as e:
            lifecycle.request_support(session, account, admin, "restore_number",
                                      number_id=number_id, now=T0)
        assert e.value.errors == {"number": "Choose a released number of this account."}
    ticket = lifecycle.request_support(session, account, admin, "restore_number",
                                       number_id=released.id, now=T0)
    assert ticket.tracking_number_id == released.id
    [event] = events(session, account, EventKind.SUPPORT_REQUESTED)
    assert event.details["number"] == released.number


def test_a_second_open_request_about_the_same_thing_is_refused(session, solo):
    account, admin = solo
    first_number = f.number(session, account, released_at=T0 - timedelta(days=20))
    second_number = f.number(session, account, released_at=T0 - timedelta(days=20))
    lifecycle.close(session, account, admin, now=T0)
    refund = lifecycle.request_support(session, account, admin, "refund", now=T0)
    restore = lifecycle.request_support(session, account, admin, "restore_number",
                                        number_id=first_number.id, now=T0)
    with pytest.raises(ValidationFailed) as e:
        lifecycle.request_support(session, account, admin, "refund", now=LATER)
    assert e.value.errors == {"": f"Request #{refund.id} about this is already open."}
    with pytest.raises(ValidationFailed) as e:
        lifecycle.request_support(session, account, admin, "restore_number",
                                  number_id=first_number.id, now=LATER)
    assert e.value.errors == {"": f"Request #{restore.id} about this is already open."}
    # another number, or "something else" again, is a new request
    lifecycle.request_support(session, account, admin, "restore_number",
                              number_id=second_number.id, now=LATER)
    lifecycle.request_support(session, account, admin, "other", "One", now=LATER)
    lifecycle.request_support(session, account, admin, "other", "Two", now=LATER)
    # once answered, the same thing can be asked again
    lifecycle.resolve_support(session, refund.id, SupportStatus.DECLINED, "No balance.")
    again = lifecycle.request_support(session, account, admin, "refund", now=LATER)
    assert again.status == SupportStatus.OPEN
    assert len(lifecycle.support_requests(session, account)) == 6


def test_requests_of_another_account_are_not_duplicates_nor_listed(session, solo):
    account, admin = _closed(session, solo)
    other = f.standalone(session)
    lifecycle.close(session, other, admin, now=T0)
    mine = lifecycle.request_support(session, account, admin, "refund", now=T0)
    theirs = lifecycle.request_support(session, other, admin, "refund", now=T0)
    assert lifecycle.support_requests(session, account) == [mine]
    assert lifecycle.support_requests(session, other) == [theirs]


@pytest.mark.parametrize("status", [SupportStatus.RESOLVED, SupportStatus.DECLINED])
def test_resolve_support(session, solo, status):
    account, admin = _closed(session, solo)
    ticket = lifecycle.request_support(session, account, admin, "refund", now=T0)
    lifecycle.resolve_support(session, ticket.id, status, "  Refunded $12.00.  ", now=LATER)
    assert (ticket.status, ticket.resolution, ticket.resolved_at) == (
        status, "Refunded $12.00.", LATER)
    with pytest.raises(NotAllowed) as e:
        lifecycle.resolve_support(session, ticket.id, SupportStatus.RESOLVED, "", now=LATER)
    assert e.value.message == f"Support request #{ticket.id} is already {status.value}."
    assert ticket.status == status


def test_resolving_a_missing_request_is_not_found(session):
    with pytest.raises(NotFound) as e:
        lifecycle.resolve_support(session, 999_999, SupportStatus.RESOLVED, "")
    assert e.value.message == "No support request #999999."


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
    from portal.models import Account, AccountKind

    assert lifecycle.status_actions(Account(kind=AccountKind.STANDALONE, status=status)) == offered
    assert lifecycle.status_actions(Account(kind=AccountKind.AGENCY, status=ST.ACTIVE)) == set()
