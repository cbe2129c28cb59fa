"""An agency's own actions (services/agency.py): cancel the agency with its sub-accounts,
transfer a sub-account out."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import (
    AccountKind,
    BillingMode,
    Call,
    EventKind,
    Membership,
    NumberStatus,
    Role,
    User,
)
from portal.services import access, lifecycle
from portal.services import agency as agencies
from tests import factories as f
from tests.unit import lifecycle_world as world
from tests.unit.lifecycle_world import LATER, ST, T0, count, events


@pytest.fixture
def northwind(session):
    return world.northwind(session)


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

    canceled = agencies.cancel(session, agency, owner, "Too expensive",
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
    monkeypatch.setattr(agencies, "active_sub_accounts", lambda _session, _agency: stale)
    canceled = agencies.cancel(session, agency, owner, "Other", now=T0)
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
            agencies.cancel(session, northwind["agency"], northwind["owner"], reason,
                            comments, now=T0)
        assert e.value.errors == errors, (reason, len(comments))
    session.expire_all()
    assert [northwind[k].status for k in ("agency", "bayside", "harbor")] == [ST.ACTIVE] * 3
    assert events(session) == []


def test_cancel_agency_accepts_2000_characters_of_comments(session, northwind):
    agencies.cancel(session, northwind["agency"], northwind["owner"], "Other",
                    "x" * 2000, now=T0)
    assert northwind["agency"].status == ST.CANCELED


def test_canceling_an_agency_twice_is_refused(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    agencies.cancel(session, agency, owner, "Other", now=T0)
    session.commit()
    before = len(events(session))
    with pytest.raises(NotAllowed) as e:
        agencies.cancel(session, agency, owner, "Other", now=LATER)
    assert e.value.message == "Northwind Agency is already canceled."
    session.commit()
    session.expire_all()
    assert agency.canceled_at == T0
    assert len(events(session)) == before


def test_only_an_agency_is_canceled_that_way(session, northwind):
    for account in (northwind["bayside"], f.standalone(session)):
        with pytest.raises(NotFound) as e:
            agencies.cancel(session, account, northwind["owner"], "Other", now=T0)
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

    result = agencies.transfer_out(session, harbor, owner, "  Casey@Cedar.TEST ", "Essentials",
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
    agencies.transfer_out(session, harbor, northwind["owner"], customer.email, "Pro", now=T0)
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
            agencies.transfer_out(session, sub, northwind["owner"], email, plan, now=T0)
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
    known = agencies.transfer_out(session, northwind["bayside"], northwind["owner"],
                                  customer.email, "Pro", now=T0)
    unknown = agencies.transfer_out(session, harbor, northwind["owner"],
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
        agencies.transfer_out(session, harbor, northwind["owner"], customer.email, "Pro",
                              now=LATER)
    assert e.value.errors == {"": "Harbor Law is canceled: reactivate it before transferring it."}
    session.rollback()
    assert (harbor.kind, harbor.parent_id) == (AccountKind.SUB, northwind["agency"].id)


def test_only_a_sub_account_is_transferred(session, northwind, customer):
    for account in (northwind["agency"], f.standalone(session)):
        with pytest.raises(NotFound) as e:
            agencies.transfer_out(session, account, northwind["owner"], customer.email, "Pro",
                                  now=T0)
        assert e.value.message == "Only a sub-account can be transferred out of an agency."
