"""Support requests (services/support.py): open, refuse duplicates and bad input, resolve."""

from datetime import timedelta

import pytest

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import (
    EventKind,
    SupportStatus,
)
from portal.services import agency as agencies
from portal.services import lifecycle, support
from tests import factories as f
from tests.unit import lifecycle_world as world
from tests.unit.lifecycle_world import LATER, T0, events


@pytest.fixture
def solo(session):
    return world.solo(session)


@pytest.fixture
def northwind(session):
    return world.northwind(session)


# --- support requests -----------------------------------------------------------------------

def _closed(session, solo):
    account, admin = solo
    lifecycle.close(session, account, admin, now=T0)
    return account, admin


def test_support_request_is_stored_open_and_recorded(session, solo):
    account, admin = _closed(session, solo)
    ticket = support.request(session, account, admin, "refund", "  Please refund.  ",
                             now=LATER)
    assert (ticket.account_id, ticket.kind.value, ticket.status, ticket.message,
            ticket.created_by_id, ticket.created_at, ticket.tracking_number_id) == (
        account.id, "refund", SupportStatus.OPEN, "Please refund.", admin.id, LATER, None)
    assert ticket.label == "Refund of the available balance"
    [event] = events(session, account, EventKind.SUPPORT_REQUESTED)
    assert (event.actor_id, event.at, event.details) == (
        admin.id, LATER, {"request": ticket.id, "kind": "refund", "number": None})
    assert support.requests_for(session, account) == [ticket]


def test_refund_needs_a_canceled_account(session, solo):
    account, admin = solo
    with pytest.raises(ValidationFailed) as e:
        support.request(session, account, admin, "refund", now=T0)
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
            support.request(session, account, admin, kind, message, now=LATER)
        assert e.value.errors == errors, (kind, message[:10])
    assert support.requests_for(session, account) == []
    assert events(session, account, EventKind.SUPPORT_REQUESTED) == []


def test_reactivate_agency_only_for_a_canceled_agency(session, northwind):
    owner, agency = northwind["owner"], northwind["agency"]
    only = {"kind": "Only a canceled agency is reactivated by support."}
    for account in (agency, northwind["bayside"]):
        with pytest.raises(ValidationFailed) as e:
            support.request(session, account, owner, "reactivate_agency", now=T0)
        assert e.value.errors == only
    agencies.cancel(session, agency, owner, "Other", now=T0)
    with pytest.raises(ValidationFailed) as e:  # a sub of it is not the agency
        support.request(session, northwind["bayside"], owner, "reactivate_agency",
                        now=LATER)
    assert e.value.errors == only
    ticket = support.request(session, agency, owner, "reactivate_agency", now=LATER)
    assert ticket.label == "Reactivate a canceled agency"


def test_restore_number_request_needs_a_released_number_of_the_account(session, solo):
    account, admin = solo
    active = f.number(session, account)
    released = f.number(session, account, released_at=T0 - timedelta(days=20))
    elsewhere = f.number(session, f.standalone(session), released_at=T0)
    for number_id in (None, active.id, elsewhere.id, 999_999):
        with pytest.raises(ValidationFailed) as e:
            support.request(session, account, admin, "restore_number",
                            number_id=number_id, now=T0)
        assert e.value.errors == {"number": "Choose a released number of this account."}
    ticket = support.request(session, account, admin, "restore_number",
                             number_id=released.id, now=T0)
    assert ticket.tracking_number_id == released.id
    [event] = events(session, account, EventKind.SUPPORT_REQUESTED)
    assert event.details["number"] == released.number


def test_a_second_open_request_about_the_same_thing_is_refused(session, solo):
    account, admin = solo
    first_number = f.number(session, account, released_at=T0 - timedelta(days=20))
    second_number = f.number(session, account, released_at=T0 - timedelta(days=20))
    lifecycle.close(session, account, admin, now=T0)
    refund = support.request(session, account, admin, "refund", now=T0)
    restore = support.request(session, account, admin, "restore_number",
                              number_id=first_number.id, now=T0)
    with pytest.raises(ValidationFailed) as e:
        support.request(session, account, admin, "refund", now=LATER)
    assert e.value.errors == {"": f"Request #{refund.id} about this is already open."}
    with pytest.raises(ValidationFailed) as e:
        support.request(session, account, admin, "restore_number",
                        number_id=first_number.id, now=LATER)
    assert e.value.errors == {"": f"Request #{restore.id} about this is already open."}
    # another number, or "something else" again, is a new request
    support.request(session, account, admin, "restore_number",
                    number_id=second_number.id, now=LATER)
    support.request(session, account, admin, "other", "One", now=LATER)
    support.request(session, account, admin, "other", "Two", now=LATER)
    # once answered, the same thing can be asked again
    support.resolve(session, refund.id, SupportStatus.DECLINED, "No balance.")
    again = support.request(session, account, admin, "refund", now=LATER)
    assert again.status == SupportStatus.OPEN
    assert len(support.requests_for(session, account)) == 6


def test_requests_of_another_account_are_not_duplicates_nor_listed(session, solo):
    account, admin = _closed(session, solo)
    other = f.standalone(session)
    lifecycle.close(session, other, admin, now=T0)
    mine = support.request(session, account, admin, "refund", now=T0)
    theirs = support.request(session, other, admin, "refund", now=T0)
    assert support.requests_for(session, account) == [mine]
    assert support.requests_for(session, other) == [theirs]


@pytest.mark.parametrize("status", [SupportStatus.RESOLVED, SupportStatus.DECLINED])
def test_resolve_support(session, solo, status):
    account, admin = _closed(session, solo)
    ticket = support.request(session, account, admin, "refund", now=T0)
    support.resolve(session, ticket.id, status, "  Refunded $12.00.  ", now=LATER)
    assert (ticket.status, ticket.resolution, ticket.resolved_at) == (
        status, "Refunded $12.00.", LATER)
    with pytest.raises(NotAllowed) as e:
        support.resolve(session, ticket.id, SupportStatus.RESOLVED, "", now=LATER)
    assert e.value.message == f"Support request #{ticket.id} is already {status.value}."
    assert ticket.status == status


def test_resolving_a_missing_request_is_not_found(session):
    with pytest.raises(NotFound) as e:
        support.resolve(session, 999_999, SupportStatus.RESOLVED, "")
    assert e.value.message == "No support request #999999."
