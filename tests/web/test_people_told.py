"""Issue 15, telling the people affected: closing, reactivating, canceling an agency (with
each of its sub-accounts) and transferring a sub-account out each email the people the change
affects (mail.notices.people_told): the account's owners and admins, the billing-email
recipients of whoever pays for it, its billing users, and for a customer-billed sub-account
the customer on its last billing request. One notice per event per person (the outbox's
dedupe key holds the event's id and the address), queued in the change's transaction: a
refused or rolled-back change sends nothing.

The world is tests/web/lifecycle_world.py (Solo Shop, Closed Shop, Northwind Agency with
Bayside Dental on agency billing and Harbor Law on customer billing).
"""

import secrets
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.errors import NotAllowed
from portal.mail import notices
from portal.models import (
    AccountEvent,
    BillingEmailRecipient,
    BillingRequest,
    EventKind,
    OutboxMessage,
    RequestStatus,
    Role,
    User,
)
from portal.services import agency, lifecycle
from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import NOW, post

BILLING = getattr(Role, "BILLING", None)  # helper A's role; until it lands, no billing users
CUSTOMER = "client@harbor.example"
LIFECYCLE_KINDS = ("account_closed", "account_reactivated", "agency_canceled",
                   "transferred_out", "transferred_in", "transfer")


def told(session, kind) -> list[str]:
    """The addresses a kind of notice went to, one entry per message (sorted)."""
    session.expire_all()
    return sorted(session.scalars(select(OutboxMessage.to_address)
                                  .where(OutboxMessage.kind == kind)))


def messages(session, kind) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                .order_by(OutboxMessage.to_address)))


def lifecycle_mail(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.kind.in_(LIFECYCLE_KINDS)))


def words(message: OutboxMessage) -> str:
    return " ".join(message.text_body.split())


def no_one_twice(session):
    """Every lifecycle notice's (event, address) is one message."""
    session.expire_all()
    keys = session.scalars(select(OutboxMessage.dedupe_key)
                           .where(OutboxMessage.kind.in_(LIFECYCLE_KINDS[:-1]))).all()
    assert all(keys) and len(keys) == len(set(keys))
    per_event_person = Counter(k.rsplit(":", 1)[0] + ":" + k.rsplit(":", 1)[1].lower()
                               for k in keys)
    assert max(per_event_person.values(), default=1) == 1


def billing_request(session, w, sub, email=CUSTOMER, created=None):
    session.add(BillingRequest(
        link_id=secrets.token_hex(8), agency_id=w.agency.id, sub_account_id=sub.id,
        email=email, amount_cents=2500, status=RequestStatus.PAID,
        created_at=created or NOW - timedelta(days=2), expires_at=NOW + timedelta(days=5)))
    session.flush()


@pytest.fixture
def harbor_people(session, w):
    """Harbor Law (customer billing): an owner hal, a plain user, a billing user (once the
    role exists), an older billing request to old@ and its last one to the customer."""
    w.hal = f.user(session, email="hal@harbor.example", name="Hal")
    f.member(session, w.hal, w.harbor, Role.OWNER)
    f.member(session, f.user(session, email="plain@harbor.example"), w.harbor, Role.USER)
    if BILLING is not None:
        f.member(session, f.user(session, email="payer@harbor.example"), w.harbor, BILLING)
    billing_request(session, w, w.harbor, "old@harbor.example", NOW - timedelta(days=9))
    billing_request(session, w, w.harbor, CUSTOMER, NOW - timedelta(days=2))
    session.commit()
    return w


def harbor_told() -> list[str]:
    return sorted(["hal@harbor.example", CUSTOMER]
                  + (["payer@harbor.example"] if BILLING is not None else []))


# ----------------------------------------------------------------------------- close

def test_closing_a_standalone_account_tells_its_admins_once(client, session, w):
    before = lifecycle_mail(session)
    sign_in_as(client, w.sam)
    assert post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"}).status_code == 303
    sent = [m for m in messages(session, "account_closed") if m.account_id == w.solo.id]
    assert sorted(m.to_address for m in sent) == ["sam@example.test"]  # not viewer (a user)
    message = sent[0]
    assert message.subject == "Solo Shop is closed"
    assert "Solo Shop was closed by sam@example.test." in words(message)
    assert all(n.number in words(message) for n in w.solo_numbers)
    assert "It can be reactivated within 60 days" in words(message)
    assert "Solo Shop is closed" in message.html_body
    event = session.scalar(select(AccountEvent).where(
        AccountEvent.account_id == w.solo.id, AccountEvent.kind == EventKind.CLOSED))
    assert message.dedupe_key == f"account_closed:{event.id}:sam@example.test"
    assert lifecycle_mail(session) == before + 1

    # closing it again is refused (a canceled account is read-only) and tells nobody again
    response = post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"})
    assert response.status_code == 403
    assert lifecycle_mail(session) == before + 1
    no_one_twice(session)


def test_billing_recipients_chosen_are_told_besides_the_admins(client, session, w):
    session.add(BillingEmailRecipient(account_id=w.solo.id, user_id=w.viewer.id))
    session.commit()
    sign_in_as(client, w.sam)
    assert post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"}).status_code == 303
    assert [m.to_address for m in messages(session, "account_closed")
            if m.account_id == w.solo.id] == ["sam@example.test", "viewer@example.test"]


def test_closing_an_agency_billed_sub_account_tells_it_and_the_agencys_billing_recipients(
        client, session, w):
    sign_in_as(client, w.avery)
    response = post(client, f"/accounts/{w.bayside.id}/close", {"confirm": "yes"})
    assert response.status_code == 303
    sent = [m.to_address for m in messages(session, "account_closed")
            if m.account_id == w.bayside.id]
    # its admin bea; the agency pays for it: the agency's recipients (its owner and admin);
    # not the agency's plain user staff
    assert sorted(sent) == ["ada@example.test", "avery@example.test", "bea@example.test"]


def test_closing_a_customer_billed_sub_account_tells_its_billing_users_and_last_customer(
        client, session, harbor_people):
    w = harbor_people
    sign_in_as(client, w.avery)
    assert post(client, f"/accounts/{w.harbor.id}/close", {"confirm": "yes"}).status_code == 303
    sent = [m.to_address for m in messages(session, "account_closed")
            if m.account_id == w.harbor.id]
    # it pays its own: its own recipients (hal); not the agency, not its plain user, not the
    # customer of an older request
    assert sorted(sent) == harbor_told()
    no_one_twice(session)


def test_a_customer_who_is_also_an_admin_is_told_once(client, session, harbor_people):
    w = harbor_people
    f.member(session, f.user(session, email=CUSTOMER.upper()), w.harbor, Role.ADMIN)
    session.commit()
    sign_in_as(client, w.avery)
    assert post(client, f"/accounts/{w.harbor.id}/close", {"confirm": "yes"}).status_code == 303
    sent = [m.to_address.lower() for m in messages(session, "account_closed")
            if m.account_id == w.harbor.id]
    assert sent.count(CUSTOMER) == 1
    assert len(sent) == len(set(sent))


def test_a_close_rolled_back_sends_nothing(session, w):
    before = lifecycle_mail(session)
    lifecycle.close(session, w.solo, w.sam, now=NOW)
    assert lifecycle_mail(session) == before + 1  # queued in the closing transaction
    session.rollback()
    assert lifecycle_mail(session) == before


def test_the_services_refusals_queue_nothing(session, w):
    """The refusals behind a double click or two requests at once (the page's guards stop
    the plain case first): already canceled, not canceled, an agency already canceled."""
    before = lifecycle_mail(session)
    with pytest.raises(NotAllowed):
        lifecycle.close(session, w.closed, w.sam, now=NOW)
    with pytest.raises(NotAllowed):
        lifecycle.reactivate(session, w.solo, w.sam, now=NOW)
    with pytest.raises(NotAllowed):
        lifecycle.close(session, w.agency, w.avery, now=NOW)
    agency.cancel(session, w.agency, w.avery, "Other", now=NOW)
    session.commit()
    after_cancel = lifecycle_mail(session)
    with pytest.raises(NotAllowed):
        agency.cancel(session, w.agency, w.avery, "Other", now=NOW)
    assert lifecycle_mail(session) == after_cancel > before


def test_a_close_without_the_confirmation_or_by_a_plain_user_sends_nothing(client, session, w):
    before = lifecycle_mail(session)
    sign_in_as(client, w.sam)
    post(client, f"/accounts/{w.solo.id}/close", {})
    sign_in_as(client, w.viewer)
    assert post(client, f"/accounts/{w.solo.id}/close", {"confirm": "yes"}).status_code == 403
    assert lifecycle_mail(session) == before


def test_the_same_event_told_again_queues_nothing_new(session, w):
    lifecycle.close(session, w.solo, w.sam, now=NOW)
    event = session.scalar(select(AccountEvent).where(
        AccountEvent.account_id == w.solo.id, AccountEvent.kind == EventKind.CLOSED))
    before = lifecycle_mail(session)
    assert notices.account_closed(session, w.solo, event, w.sam, []) == 1
    assert lifecycle_mail(session) == before
    session.commit()


def test_each_close_is_its_own_event(client, session, w):
    """Closed, reactivated, closed again: two closed notices, one reactivated."""
    sign_in_as(client, w.sam)
    for path in ("close", "reactivate", "close"):
        assert post(client, f"/accounts/{w.solo.id}/{path}",
                    {"confirm": "yes"}).status_code == 303
    solo = [m for m in messages(session, "account_closed") if m.account_id == w.solo.id]
    assert [m.to_address for m in solo] == ["sam@example.test"] * 2
    assert told(session, "account_reactivated") == ["sam@example.test"]
    no_one_twice(session)


# ----------------------------------------------------------------------------- reactivate

def test_reactivating_tells_the_people_once(client, session, w):
    before = lifecycle_mail(session)
    sign_in_as(client, w.sam)
    assert post(client, f"/accounts/{w.closed.id}/reactivate").status_code == 303
    [message] = messages(session, "account_reactivated")
    assert message.to_address == "sam@example.test"
    assert message.subject == "Closed Shop is reactivated"
    assert "Closed Shop was reactivated by sam@example.test: it is active again." in words(
        message)
    # again: refused (it is not canceled), nobody told twice
    assert post(client, f"/accounts/{w.closed.id}/reactivate").status_code == 303
    assert lifecycle_mail(session) == before + 1


def test_a_refused_reactivation_sends_nothing(client, session, w):
    sign_in_as(client, w.sam)
    # canceled more than 60 days ago: refused
    old = f.standalone(session, "Old Shop", admin=w.sam)
    lifecycle.close(session, old, w.sam, now=NOW - timedelta(days=61))
    session.commit()
    before = lifecycle_mail(session)
    post(client, f"/accounts/{old.id}/reactivate")
    assert lifecycle_mail(session) == before
    assert told(session, "account_reactivated") == []


# ----------------------------------------------------------------------------- agency cancel

def cancel_agency(client, w, **data):
    return post(client, f"/accounts/{w.agency.id}/parent/cancel",
                {"confirm": "yes", "reason": "Closing the business", **data})


def test_canceling_an_agency_tells_each_person_once(client, session, harbor_people):
    w = harbor_people
    f.member(session, w.bea, w.harbor, Role.ADMIN)  # bea: admin of both sub-accounts
    f.member(session, w.avery, w.bayside, Role.ADMIN)  # avery: the agency's and Bayside's
    session.commit()
    before = lifecycle_mail(session)
    sign_in_as(client, w.avery)
    assert cancel_agency(client, w).status_code == 303
    sent = messages(session, "agency_canceled")
    addresses = [m.to_address for m in sent]
    assert len(addresses) == len(set(addresses))  # one email per person for the whole cancel
    assert sorted(addresses) == sorted(
        ["ada@example.test", "avery@example.test", "bea@example.test", *harbor_told()])
    assert lifecycle_mail(session) == before + len(addresses)  # no separate close notices
    by = {m.to_address: words(m) for m in sent}
    assert by["ada@example.test"].startswith(
        "Northwind Agency is canceled Northwind Agency was canceled by avery@example.test, "
        "with 2 sub-accounts: Bayside Dental, Harbor Law.")
    assert ("Northwind Agency canceled its agency account (avery@example.test), and with it "
            "Bayside Dental, Harbor Law:") in by["bea@example.test"]
    assert ("Northwind Agency canceled its agency account (avery@example.test), and with it "
            "Harbor Law: its tracking numbers stopped working") in by[CUSTOMER]
    assert "Bayside" not in by[CUSTOMER]
    assert all(m.subject == "Northwind Agency is canceled" for m in sent)
    event = session.scalar(select(AccountEvent).where(
        AccountEvent.kind == EventKind.AGENCY_CANCELED))
    assert all(m.dedupe_key.startswith(f"agency_canceled:{event.id}:") for m in sent)
    assert "staff@example.test" not in addresses and "plain@harbor.example" not in addresses

    # again: refused (a canceled agency is read-only), nobody told again
    assert cancel_agency(client, w).status_code == 403
    assert lifecycle_mail(session) == before + len(addresses)
    no_one_twice(session)


def test_an_agency_cancel_refused_or_rolled_back_sends_nothing(client, session, w):
    before = lifecycle_mail(session)
    sign_in_as(client, w.avery)
    assert cancel_agency(client, w, reason="").status_code == 422  # no reason: refused
    assert cancel_agency(client, w, confirm="").status_code == 422
    sign_in_as(client, w.staff)
    assert cancel_agency(client, w).status_code == 403
    assert lifecycle_mail(session) == before
    agency.cancel(session, w.agency, w.avery, "Closing the business", now=NOW)
    assert lifecycle_mail(session) > before
    session.rollback()
    assert lifecycle_mail(session) == before


# ----------------------------------------------------------------------------- transfer

def transfer(client, w, sub, email="casey@example.test"):
    return post(client, f"/accounts/{sub.id}/transfer",
                {"email": email, "plan": "Essentials", "confirm": "yes"})


def test_a_transfer_tells_the_agency_and_the_sub_accounts_people(client, session, harbor_people):
    w = harbor_people
    sign_in_as(client, w.avery)
    assert transfer(client, w, w.harbor).status_code == 303
    out = messages(session, "transferred_out")
    assert sorted(m.to_address for m in out) == ["ada@example.test", "avery@example.test"]
    assert all(m.account_id == w.agency.id for m in out)
    assert ("Harbor Law was transferred out of Northwind Agency by avery@example.test: it is "
            "now a standalone account owned by casey@example.test") in words(out[0])
    into = messages(session, "transferred_in")
    assert sorted(m.to_address for m in into) == harbor_told()
    assert into[0].subject == "Harbor Law is now a standalone account"
    assert "owned by casey@example.test" in words(into[0])
    # the new owner: the new-owner email only
    assert told(session, "transfer") == ["casey@example.test"]
    no_one_twice(session)


def test_a_new_owner_already_among_the_sub_accounts_people_gets_one_email(
        client, session, harbor_people):
    w = harbor_people
    sign_in_as(client, w.avery)
    assert transfer(client, w, w.harbor, "HAL@harbor.example").status_code == 303
    assert "hal@harbor.example" not in [a.lower() for a in told(session, "transferred_in")]
    assert [a.lower() for a in told(session, "transfer")] == ["hal@harbor.example"]


def test_a_refused_transfer_sends_nothing(client, session, harbor_people):
    w = harbor_people
    before = lifecycle_mail(session)
    sign_in_as(client, w.avery)
    assert transfer(client, w, w.bayside).status_code == 422  # agency billed: refused
    assert transfer(client, w, w.harbor, "not an email").status_code == 422
    sign_in_as(client, w.hal)  # the sub-account's owner, not the agency's
    transfer(client, w, w.harbor)
    assert lifecycle_mail(session) == before
    agency.transfer_out(session, w.harbor, w.avery, "casey@example.test", "Pro", now=NOW)
    assert lifecycle_mail(session) > before
    session.rollback()
    assert lifecycle_mail(session) == before


# ----------------------------------------------------------------------------- who

def test_people_told_reads_billing_users_when_the_role_exists(session, harbor_people):
    w = harbor_people
    people = notices.people_told(session, w.harbor)
    assert sorted(people) == harbor_told()
    if BILLING is not None:
        assert "payer@harbor.example" in people
    # Bayside pays from the agency: no customer, the agency's recipients
    assert sorted(notices.people_told(session, w.bayside)) == [
        "ada@example.test", "avery@example.test", "bea@example.test"]


# ----------------------------------------------------------------------------- agency billing

def add_to_agency_billing(client, w, sub):
    return post(client, f"/accounts/{w.agency.id}/sub-accounts/{sub.id}/billing/add",
                {"confirm": "yes"})


def test_add_to_agency_billing_tells_billing_users_and_chosen_recipients_once_each(
        client, session, harbor_people):
    """Harbor Law pays its own: Add to Agency Billing tells its owner hal, its chosen
    billing-email recipient (a plain user chosen to get its receipts), its billing user and
    the customer on its last request; not the agency's people, not the older customer."""
    w = harbor_people
    plain = session.scalar(select(User).where(User.email == "plain@harbor.example"))
    session.add(BillingEmailRecipient(account_id=w.harbor.id, user_id=plain.id))
    session.commit()
    expected = sorted(["hal@harbor.example", "plain@harbor.example", "payer@harbor.example",
                       CUSTOMER])
    sign_in_as(client, w.avery)
    dialog = client.get(f"/accounts/{w.agency.id}/sub-accounts/{w.harbor.id}/billing")
    said = " ".join(dialog.get_data(as_text=True).split())
    assert all(email in said for email in expected)

    response = add_to_agency_billing(client, w, w.harbor)
    assert response.status_code == 303
    flash = " ".join(client.get(response.location).get_data(as_text=True).split())
    assert all(email in flash for email in expected)
    sent = messages(session, "billing_mode")
    assert sorted(m.to_address for m in sent) == expected
    keys = [m.dedupe_key for m in sent]
    assert len(set(keys)) == len(keys) and all(k.startswith(f"to-agency:{w.harbor.id}:")
                                               for k in keys)
    assert all(m.subject == "Harbor Law is now paid from Northwind Agency's balance "
                            "(agency billing)" for m in sent)


def test_add_to_agency_billing_tells_a_billing_user_who_is_also_the_customer_once(
        client, session, harbor_people):
    w = harbor_people
    f.member(session, f.user(session, email=CUSTOMER.upper()), w.harbor, Role.BILLING)
    session.commit()
    sign_in_as(client, w.avery)
    assert add_to_agency_billing(client, w, w.harbor).status_code == 303
    sent = [m.to_address.lower() for m in messages(session, "billing_mode")]
    assert sorted(sent) == harbor_told()
    assert sent.count(CUSTOMER) == 1


def test_a_refused_add_to_agency_billing_tells_nobody(client, session, harbor_people):
    w = harbor_people
    sign_in_as(client, w.hal)  # the sub-account's owner is no agency admin
    add_to_agency_billing(client, w, w.harbor)
    sign_in_as(client, w.avery)
    add_to_agency_billing(client, w, w.bayside)  # already on agency billing
    assert messages(session, "billing_mode") == []


def test_customer_billed_people_is_people_told_of_a_customer_billed_sub(session, harbor_people):
    w = harbor_people
    assert notices.customer_billed_people(session, w.harbor) == notices.people_told(
        session, w.harbor)


def test_a_long_address_gets_a_key_that_fits_the_outbox(session, w):
    long_email = ("x" * 60 + "@" + "y" * 120 + ".example").lower()
    key = notices._person_key("to-agency:1:20261203T092547.123456", long_email)
    assert len(key) <= 160 and key.startswith("to-agency:1:20261203T092547.123456:")
    assert key == notices._person_key("to-agency:1:20261203T092547.123456", long_email.upper())
