"""Versions (portal/versioning.py): every create, change and delete of a settings record,
driven through the real services (the ORM where no service exists yet), with the exact
fields before and after, who, when and under which account; what never appears in a
version (card numbers, CVCs, tokens, password hashes); and the purge after 7/120 days
(portal/services/history.py and `flask jobs run`)."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import OperationalError

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal import clock, rules, versioning
from portal.extensions import db
from portal.models import (
    Account,
    AccountStatus,
    AgentStatus,
    BillingMode,
    Call,
    CallQueue,
    Cause,
    LedgerKind,
    Membership,
    Preset,
    PresetKind,
    Role,
    TrackingSource,
    User,
    Version,
)
from portal.sandbox import cards
from portal.sandbox.testing import bank_account, paying_card
from portal.services import (
    agency,
    billing,
    history,
    ledger,
    lifecycle,
    numbers,
    payment_methods,
    statements,
)
from portal.services.auth import hash_password
from portal.services.gateway import SandboxGateway
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STAMP = "2026-11-23 12:00:00 UTC"  # NOW as a version writes a time
SYSTEM = (None, "System")
AMEX = "378282246310005"
AMEX_CVC = "7391"
VISA = "4242424242424242"
VISA_CVC = "864"
BANK_ACCOUNT = "000987612345"
ROUTING = "110000000"
LINK_SETTINGS = link_service.LinkSettings(keys=["unit-key"], ttl=timedelta(days=7),
                                          base_url="https://portal.example/")


@pytest.fixture
def w(session):
    """Acme Plumbing (standalone: admin Ann, role-user Vic); Northwind Agency (owner Avery,
    and Ann as admin too) with Bayside Dental on agency billing and Harbor Law on customer
    billing. The clock is frozen at NOW."""
    clock.freeze(NOW)
    ann = f.user(session, "ann@example.test", name="Ann Admin")
    vic = f.user(session, "vic@example.test", name="Vic User")
    avery = f.user(session, "avery@example.test", name="Avery Owner")
    solo = f.standalone(session, "Acme Plumbing", admin=ann)
    f.member(session, vic, solo, Role.USER)
    agency = f.agency(session, "Northwind Agency", owner=avery)
    f.member(session, ann, agency, Role.ADMIN)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    session.commit()
    return SimpleNamespace(ann=ann, vic=vic, avery=avery, solo=solo, agency=agency,
                           bayside=bayside, harbor=harbor)


def as_user(user):
    return versioning.acting_as(user.id, user.name)


def mark(session) -> int:
    """The newest version's id: what a test does is what comes after it."""
    return session.scalar(select(func.coalesce(func.max(Version.id), 0)))


def since(session, after: int, **where) -> list[Version]:
    session.expire_all()
    query = select(Version).where(Version.id > after).order_by(Version.id)
    for name, value in where.items():
        query = query.where(getattr(Version, name) == value)
    return list(session.scalars(query))


def row(v: Version) -> tuple:
    return (v.account_id, v.record_type, v.record_id, v.record_label, v.action, v.changes,
            v.actor_id, v.actor_label, v.at)


def rows(session, after: int, **where) -> list[tuple]:
    return [row(v) for v in since(session, after, **where)]


def all_versions(session) -> list[Version]:
    session.expire_all()
    return list(session.scalars(select(Version).order_by(Version.id)))


# --------------------------------------------------------------- account: status and fields

def test_pausing_swapping_is_a_version_of_the_account_status_core_update(session, w):
    m = mark(session)
    with as_user(w.ann):
        lifecycle.pause_swapping(session, w.solo, w.ann)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["active", "swapping_paused"]}, w.ann.id, "Ann Admin", NOW)]

    later = NOW + timedelta(minutes=5)
    clock.freeze(later)
    m = mark(session)
    with as_user(w.ann):
        lifecycle.resume(session, w.solo, w.ann)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["swapping_paused", "active"]}, w.ann.id, "Ann Admin", later)]


def test_a_refused_status_change_writes_no_version(session, w):
    with as_user(w.ann):
        lifecycle.pause_swapping(session, w.solo, w.ann)
    session.commit()
    m = mark(session)
    with as_user(w.ann), pytest.raises(lifecycle.NotAllowed):
        lifecycle.pause_swapping(session, w.solo, w.ann)  # already paused: no row matches
    session.commit()
    assert rows(session, m) == []


def test_an_orm_change_of_account_settings_is_a_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        w.solo.name = "Acme Plumbing & Heating"
        w.solo.auto_redact = True
        w.solo.require_two_factor = True
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing & Heating", "changed",
         {"name": ["Acme Plumbing", "Acme Plumbing & Heating"], "auto_redact": [False, True],
          "require_two_factor": [False, True]}, w.ann.id, "Ann Admin", NOW)]


def test_billing_pause_by_the_ledger_and_its_lifting_are_by_the_system(session, w):
    m = mark(session)
    ledger.post(session, w.solo, LedgerKind.USAGE, -500, "Calls", "usage-1", Cause.USAGE)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["active", "billing_paused"]}, None, "System", NOW)]

    m = mark(session)
    ledger.post(session, w.solo, LedgerKind.PAYMENT, 700, "Payment", "pay-1", Cause.USER)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["billing_paused", "active"]}, None, "System", NOW)]


def test_a_posting_that_changes_no_status_writes_no_version(session, w):
    f.funds(session, w.solo, 1000)
    session.commit()
    m = mark(session)
    ledger.post(session, w.solo, LedgerKind.USAGE, -300, "Calls", "usage-2", Cause.USAGE)
    session.commit()
    assert rows(session, m) == []  # the balance moved; no versioned field did


def test_close_and_reactivate_are_versions_of_the_status_and_of_each_released_number(
        session, w):
    main = f.number(session, w.solo, label="Main line")
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        lifecycle.close(session, w.solo, w.ann)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["active", "canceled"]}, w.ann.id, "Ann Admin", NOW),
        (w.solo.id, "tracking_number", main.id, main.number, "changed",
         {"status": ["active", "released"], "released_at": [None, STAMP]},
         w.ann.id, "Ann Admin", NOW)]

    later = NOW + timedelta(days=3)
    clock.freeze(later)
    m = mark(session)
    with as_user(w.ann):
        lifecycle.reactivate(session, w.solo, w.ann)
        numbers.restore(session, w.solo, main.id, w.ann)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Plumbing", "changed",
         {"status": ["canceled", "active"]}, w.ann.id, "Ann Admin", later),
        (w.solo.id, "tracking_number", main.id, main.number, "changed",
         {"status": ["released", "active"], "released_at": [STAMP, None]},
         w.ann.id, "Ann Admin", later)]


def test_closing_a_sub_account_files_its_versions_under_it_only(session, w):
    m = mark(session)
    with as_user(w.avery):
        lifecycle.close(session, w.harbor, w.avery)
    session.commit()
    assert rows(session, m) == [
        (w.harbor.id, "account", w.harbor.id, "Harbor Law", "changed",
         {"status": ["active", "canceled"]}, w.avery.id, "Avery Owner", NOW)]


def test_canceling_an_agency_is_a_version_of_it_and_of_each_sub_account(session, w):
    line = f.number(session, w.bayside, label="Bayside line")
    session.commit()
    m = mark(session)
    with as_user(w.avery):
        agency.cancel(session, w.agency, w.avery, "Other")
    session.commit()
    me = (w.avery.id, "Avery Owner", NOW)
    canceled = {"status": ["active", "canceled"]}
    assert rows(session, m) == [
        (w.agency.id, "account", w.agency.id, "Northwind Agency", "changed", canceled, *me),
        (w.bayside.id, "account", w.bayside.id, "Bayside Dental", "changed", canceled, *me),
        (w.bayside.id, "tracking_number", line.id, line.number, "changed",
         {"status": ["active", "released"], "released_at": [None, STAMP]}, *me),
        (w.harbor.id, "account", w.harbor.id, "Harbor Law", "changed", canceled, *me)]


def test_transferring_a_sub_account_out_is_a_plan_version_and_the_new_owners_role(
        session, w):
    m = mark(session)
    with as_user(w.avery):
        agency.transfer_out(session, w.harbor, w.avery, "ann@example.test", "Pro")
        session.commit()
    membership = session.scalar(select(Membership).where(
        Membership.account_id == w.harbor.id, Membership.user_id == w.ann.id))
    me = (w.avery.id, "Avery Owner", NOW)
    assert rows(session, m) == [
        (w.harbor.id, "account", w.harbor.id, "Harbor Law", "changed",
         {"plan": ["Agency", "Pro"]}, *me),
        (w.harbor.id, "membership", membership.id, "Ann Admin", "created",
         {"user": [None, "Ann Admin"], "role": [None, "owner"]}, *me)]


def test_the_before_of_a_conditional_update_is_the_row_it_changed_despite_a_concurrent_write(
        session, w):
    """Another request commits a status change between the hook's read of the "before" and
    the conditional UPDATE itself: the version must still say what the UPDATE changed from.

    PostgreSQL: the hook's SELECT ... FOR UPDATE holds the row, so the other writer can't get
    in between (it times out here). SQLite: the hook opens the write transaction (BEGIN
    IMMEDIATE) before its read, so the other writer waits (busy_timeout) and gives up, or
    gets in before the read. Either way the version's "before" is what the UPDATE changed."""
    session.commit()  # nothing open: the next statement starts the request's work
    other_status = {}
    table = Account.__table__

    def concurrent_writer(_conn, _cursor, statement, _params, _context, _many):
        if other_status or not statement.lstrip().upper().startswith("UPDATE ACCOUNTS"):
            return
        other_status["status"] = "untouched"
        # A short wait on this connection only, and for this transaction only: the pool
        # keeps the connection for later tests (a busy_timeout of 300 ms left on it once
        # made a 50-thread test give up with "database is locked").
        with db.engine.connect() as other:
            sqlite = other.dialect.name != "postgresql"
            if sqlite:
                before = other.exec_driver_sql("PRAGMA busy_timeout").scalar()
                other.exec_driver_sql("PRAGMA busy_timeout = 300")
            else:
                other.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
            try:
                other.execute(update(table).where(table.c.id == w.solo.id)
                              .values(status=AccountStatus.SWAPPING_PAUSED))
                other.commit()
                other_status["status"] = "swapping_paused"
            except OperationalError:  # the row is held by the request's transaction
                other.rollback()
                other_status["status"] = "active"
            finally:
                if sqlite:
                    other.exec_driver_sql(f"PRAGMA busy_timeout = {before}")

    event.listen(db.engine, "before_cursor_execute", concurrent_writer)
    try:
        with as_user(w.ann):
            lifecycle.stop_calls(session, w.solo, w.ann)  # from active or swapping_paused
        session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", concurrent_writer)
    changed_from = other_status["status"]
    assert changed_from in ("active", "swapping_paused")
    assert [v.changes for v in since(session, 0, record_type="account",
                                     account_id=w.solo.id)][-1] == {
        "status": [changed_from, "calls_stopped"]}


# --------------------------------------------------------------- tracking numbers

def test_a_tracking_number_added_and_relabelled(session, w):
    m = mark(session)
    with as_user(w.ann):
        tracking = numbers.add(session, w.solo, "+1 (415) 555-0101", "Google Ads")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "tracking_number", tracking.id, "+14155550101", "created",
         {"number": [None, "+14155550101"], "label": [None, "Google Ads"],
          "status": [None, "active"]}, w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        tracking.label = "Bing Ads"
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "tracking_number", tracking.id, "+14155550101", "changed",
         {"label": ["Google Ads", "Bing Ads"]}, w.ann.id, "Ann Admin", NOW)]


# --------------------------------------------------------------- payment methods

def test_adding_a_card_keeps_brand_and_last4_only(session, w):
    m = mark(session)
    session.commit()  # the sandbox writes through its own connection
    with as_user(w.ann):
        method = payment_methods.add(session, w.solo, SandboxGateway(),
                                     paying_card(AMEX, exp_month=12, exp_year=2030,
                                                 cvc=AMEX_CVC), "card")
    session.commit()
    brand = cards.brand_of(AMEX)
    assert rows(session, m) == [
        (w.solo.id, "payment_method", method.id, f"{brand} ending 0005", "created",
         {"kind": [None, "card"], "brand": [None, brand], "last4": [None, "0005"],
          "exp_month": [None, 12], "exp_year": [None, 2030], "holder": [None, "Pat Doe"],
          "role": [None, "primary"]}, w.ann.id, "Ann Admin", NOW)]


def test_no_version_ever_holds_a_card_number_cvc_token_account_number_or_password_hash(
        session, w):
    gw = SandboxGateway()
    entered = [paying_card(AMEX, exp_month=12, exp_year=2030, cvc=AMEX_CVC),
               paying_card("4242 4242 4242 4242", exp_month=11, exp_year=2031, cvc=VISA_CVC),
               bank_account(BANK_ACCOUNT, routing=ROUTING)]  # on the sandbox's forms
    session.commit()  # the sandbox writes through its own connection
    with as_user(w.ann):
        saved = []
        for pm, kind in zip(entered, ("card", "card", "ach"), strict=True):
            saved.append(payment_methods.add(session, w.solo, gw, pm, kind))
            session.commit()
        amex, visa, bank = saved
        payment_methods.set_role(session, w.solo, visa.id, "backup")
        payment_methods.remove(session, w.solo, bank.id)
        old_hash = w.ann.password_hash
        w.ann.password_hash = hash_password("a brand new passphrase")
        w.ann.name = "Ann Admin-Jones"
        session.commit()
    new_hash = w.ann.password_hash
    secrets = [AMEX, AMEX_CVC, VISA, VISA_CVC, BANK_ACCOUNT, amex.token, visa.token,
               bank.token, old_hash, new_hash]
    kept = all_versions(session)
    assert {v.record_type for v in kept} >= {"payment_method", "user"}
    for v in kept:
        for text in (v.changes_json, v.record_label, v.actor_label):
            for secret in secrets:
                assert secret not in text, (secret, row(v))
        assert not {"token", "password_hash", "number", "cvc"} & set(v.changes)


def test_making_the_backup_primary_records_each_methods_role_once(session, w):
    gw = SandboxGateway()
    first = f.card(session, w.solo, gateway=gw)  # Primary
    second = f.card(session, w.solo, number="5555555555554444", gateway=gw)  # Other
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        payment_methods.set_role(session, w.solo, second.id, "backup")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "payment_method", second.id, "Mastercard ending 4444", "changed",
         {"role": ["other", "backup"]}, w.ann.id, "Ann Admin", NOW)]

    m = mark(session)
    with as_user(w.ann):
        payment_methods.set_role(session, w.solo, second.id, "primary")
    session.commit()
    changes = sorted((v.record_id, v.changes["role"][0], v.changes["role"][1])
                     for v in since(session, m))
    # One version per method, from its role before to its role after: Primary and Backup
    # swapped (the service's intermediate step through "other" is not a change anyone made).
    assert changes == sorted([(first.id, "primary", "backup"),
                              (second.id, "backup", "primary")])


def test_removing_a_method_is_a_version_and_so_is_the_promotion(session, w):
    gw = SandboxGateway()
    first = f.card(session, w.solo, gateway=gw)  # Primary
    second = f.card(session, w.solo, number="5555555555554444", gateway=gw)  # Other
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        payment_methods.remove(session, w.solo, first.id, promote_id=second.id)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "payment_method", first.id, "Visa ending 4242", "changed",
         {"removed_at": [None, STAMP], "role": ["primary", "other"]},
         w.ann.id, "Ann Admin", NOW),
        (w.solo.id, "payment_method", second.id, "Mastercard ending 4444", "changed",
         {"role": ["other", "primary"]}, w.ann.id, "Ann Admin", NOW)]


# --------------------------------------------------------------- billing settings

def test_recharge_settings_set_changed_and_turned_off(session, w):
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")  # the row exists
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "10", "50")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "recharge_settings", w.solo.id, "Balance Auto Recharge Settings",
         "changed", {"recharge_threshold_cents": [None, 1000],
                     "recharge_amount_cents": [None, 5000]}, w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "20.50", "80")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "recharge_settings", w.solo.id, "Balance Auto Recharge Settings",
         "changed", {"recharge_threshold_cents": [1000, 2050],
                     "recharge_amount_cents": [5000, 8000]}, w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "", "", enabled=False)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "recharge_settings", w.solo.id, "Balance Auto Recharge Settings",
         "changed", {"recharge_threshold_cents": [2050, None],
                     "recharge_amount_cents": [8000, None]}, w.ann.id, "Ann Admin", NOW)]


def test_first_recharge_settings_create_only_the_recharge_version_with_its_values(
        session, w):
    """No settings row yet: saving the recharge settings is one version of them, not also
    a version of the phone/address/direct-charge settings nobody touched."""
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "10", "50")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "recharge_settings", w.solo.id, "Balance Auto Recharge Settings",
         "created", {"recharge_threshold_cents": [None, 1000],
                     "recharge_amount_cents": [None, 5000],
                     # issue 17: the daily recharge limit in effect from the start
                     "recharge_daily_limit": [None, 5]}, w.ann.id, "Ann Admin", NOW)]


def test_first_critical_phone_writes_no_empty_recharge_settings_version(session, w):
    """Saving only the phone must not put a "Balance Auto Recharge Settings created" version
    with no values in the recharge settings' Versions panel."""
    m = mark(session)
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
    session.commit()
    assert [v.record_type for v in since(session, m)] == ["billing_settings"]


def test_critical_phone_changed_and_removed(session, w):
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "(415) 555-0199")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "billing_settings", w.solo.id, "Billing settings", "changed",
         {"critical_phone": ["+14155550134", "+14155550199"]}, w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "billing_settings", w.solo.id, "Billing settings", "changed",
         {"critical_phone": ["+14155550199", ""]}, w.ann.id, "Ann Admin", NOW)]


def test_first_critical_phone_is_a_created_version_of_the_billing_settings(session, w):
    m = mark(session)
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
    session.commit()
    [v] = since(session, m, record_type="billing_settings")
    assert row(v) == (w.solo.id, "billing_settings", w.solo.id, "Billing settings",
                      "created", {"critical_phone": [None, "+14155550134"],
                                  "country": [None, "US"], "direct_charge": [None, False]},
                      w.ann.id, "Ann Admin", NOW)


def test_service_address_and_direct_charge(session, w):
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        billing.set_service_address(session, w.solo, {
            "address_line1": "1 Market St", "address_line2": "", "city": "San Francisco",
            "region": "ca", "postal_code": "94105"})
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "billing_settings", w.solo.id, "Billing settings", "changed",
         {"address_line1": ["", "1 Market St"], "city": ["", "San Francisco"],
          "region": ["", "CA"], "postal_code": ["", "94105"]}, w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        billing.set_service_address(session, w.solo, {
            "address_line1": "1 Market St", "address_line2": "Suite 400",
            "city": "San Francisco", "region": "CA", "postal_code": "94105"})
        billing.set_direct_charge(session, w.solo, True)
    session.commit()
    # Two saves in one transaction: one version of the record, from first to last.
    assert rows(session, m) == [
        (w.solo.id, "billing_settings", w.solo.id, "Billing settings", "changed",
         {"address_line2": ["", "Suite 400"], "direct_charge": [False, True]},
         w.ann.id, "Ann Admin", NOW)]


def test_saving_the_same_values_again_writes_no_version(session, w):
    address = {"address_line1": "1 Market St", "address_line2": "", "city": "San Francisco",
               "region": "CA", "postal_code": "94105"}
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "10", "50")
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
        billing.set_service_address(session, w.solo, address)
        billing.set_direct_charge(session, w.solo, True)
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "10.00", "$50")
        billing.set_critical_phone(session, w.solo, "+14155550134")
        billing.set_service_address(session, w.solo, dict(address))
        billing.set_direct_charge(session, w.solo, True)
        w.solo.name = "Acme Plumbing"
        w.ann.name = "Ann Admin"
        session.commit()
    assert rows(session, m) == []  # the same billing values, names: nothing
    tracking = f.number(session, w.solo, label="Main")
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        tracking.label = "Main"
        session.commit()
    assert rows(session, m) == []


def test_saving_default_values_with_no_settings_row_yet_writes_no_version(session, w):
    """An account without a billing settings row that saves what it already shows (no
    phone, direct charge off, auto recharge off): the row is made, but no value changed, so
    no "Billing settings created" (Country US, direct charge No) or empty "Balance Auto
    Recharge Settings created" version."""
    m = mark(session)
    with as_user(w.ann):
        billing.set_critical_phone(session, w.solo, "")
        billing.set_direct_charge(session, w.solo, False)
        billing.set_auto_recharge(session, w.solo, "", "", enabled=False)
    session.commit()
    assert rows(session, m) == []


def test_billing_email_recipients_chosen_and_replaced(session, w):
    m = mark(session)
    with as_user(w.ann):
        billing.set_recipients(session, w.solo, [str(w.vic.id)])
    session.commit()
    [chosen] = since(session, m)
    assert row(chosen) == (w.solo.id, "billing_recipient", chosen.record_id, "Vic User",
                           "created", {"user": [None, "Vic User"]}, w.ann.id, "Ann Admin",
                           NOW)
    m = mark(session)
    with as_user(w.ann):
        billing.set_recipients(session, w.solo, [str(w.ann.id)])
    session.commit()
    got = rows(session, m)
    assert sorted(got, key=lambda r: r[4]) == [
        (w.solo.id, "billing_recipient", got[-1][2], "Ann Admin", "created",
         {"user": [None, "Ann Admin"]}, w.ann.id, "Ann Admin", NOW),
        (w.solo.id, "billing_recipient", chosen.record_id, "Vic User", "deleted",
         {"user": ["Vic User", None]}, w.ann.id, "Ann Admin", NOW)]


def test_statement_schedule_added_and_removed(session, w):
    m = mark(session)
    with as_user(w.ann):
        schedule = statements.add_schedule(session, w.solo, w.ann, "monthly",
                                           "books@acme.example")
    session.commit()
    label = "Monthly statement to books@acme.example"
    assert rows(session, m) == [
        (w.solo.id, "statement_schedule", schedule.id, label, "created",
         {"frequency": [None, "monthly"], "recipient": [None, "books@acme.example"]},
         w.ann.id, "Ann Admin", NOW)]
    m = mark(session)
    with as_user(w.ann):
        statements.remove_schedule(session, w.solo, schedule.id)
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "statement_schedule", schedule.id, label, "deleted",
         {"frequency": ["monthly", None], "recipient": ["books@acme.example", None]},
         w.ann.id, "Ann Admin", NOW)]


# --------------------------------------------------------------- billing mode

def test_billing_mode_agency_to_customer_through_the_billing_link_is_by_the_customer(
        app, session, w):
    gw = SandboxGateway()
    with as_user(w.avery):
        _request, url = link_service.request_removal(
            session, LINK_SETTINGS, w.agency, w.bayside, w.avery, "pat@bayside.example",
            "25.00", "Please pay.")
    session.commit()
    token = url.rsplit("/", 1)[1]
    m = mark(session)
    # The public page's request: the app's actor provider names the customer.
    with app.test_request_context(f"/billing-link/{token}", method="POST"):
        payment = link_service.pay(session, gw, LINK_SETTINGS, token, {
            "payment_method": paying_card(VISA, exp_month=12, exp_year=2030, cvc=VISA_CVC),
            "amount": "25.00"})
    session.commit()
    assert payment.switched
    method_id = payment.charge.method_id
    customer = (None, "Customer (billing link)")
    assert rows(session, m, record_type="billing_mode") == [
        (w.bayside.id, "billing_mode", w.bayside.id, "Bayside Dental", "changed",
         {"billing_mode": ["agency", "customer"]}, *customer, NOW)]
    assert [(v.record_id, v.action, v.changes.get("role"), v.actor_label)
            for v in since(session, m, record_type="payment_method")] == [
        (method_id, "created", [None, "other"], customer[1]),
        (method_id, "changed", ["other", "primary"], customer[1])]
    # Filed under the sub-account only: nothing of it under the agency.
    assert since(session, m, account_id=w.agency.id) == []
    for v in all_versions(session):
        assert VISA not in v.changes_json and VISA_CVC not in v.changes_json


def test_billing_mode_customer_to_agency_and_what_it_clears(session, w):
    gw = SandboxGateway()
    with as_user(w.avery):
        card = f.card(session, w.harbor, gateway=gw)
        settings = billing.set_auto_recharge(session, w.harbor, "10", "50")
        # a direct charge stored before issue 14 (the service refuses it for a sub-account
        # now: no plan fee applies to one); moving to agency billing still clears it
        settings.direct_charge = True
    session.commit()
    m = mark(session)
    with as_user(w.avery):
        link_service.add_to_agency_billing(session, w.agency, w.harbor, w.avery)
    session.commit()
    got = rows(session, m)
    assert got[0] == (w.harbor.id, "billing_mode", w.harbor.id, "Harbor Law", "changed",
                      {"billing_mode": ["customer", "agency"]}, w.avery.id, "Avery Owner",
                      NOW)
    assert sorted(got[1:], key=lambda r: r[1]) == [
        (w.harbor.id, "billing_settings", w.harbor.id, "Billing settings", "changed",
         {"direct_charge": [True, False]}, w.avery.id, "Avery Owner", NOW),
        (w.harbor.id, "payment_method", card.id, "Visa ending 4242", "changed",
         {"removed_at": [None, STAMP], "role": ["primary", "other"]},
         w.avery.id, "Avery Owner", NOW),
        (w.harbor.id, "recharge_settings", w.harbor.id, "Balance Auto Recharge Settings",
         "changed", {"recharge_threshold_cents": [1000, None],
                     "recharge_amount_cents": [5000, None]}, w.avery.id, "Avery Owner",
         NOW)]


# --------------------------------------------------------------- agent statuses, presets

def test_agent_status_created_changed_deleted(session, w):
    m = mark(session)
    with as_user(w.ann):
        status = AgentStatus(account_id=w.solo.id, name="Lunch", color="#ff8800",
                             available=False, position=1)
        session.add(status)
        session.commit()
        status.name, status.available = "Lunch break", True
        session.commit()
        session.delete(status)  # expired by the commit: the version still has its values
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    assert rows(session, m) == [
        (w.solo.id, "agent_status", status.id, "Lunch", "created",
         {"name": [None, "Lunch"], "color": [None, "#ff8800"], "available": [None, False],
          "position": [None, 1]}, *me),
        (w.solo.id, "agent_status", status.id, "Lunch break", "changed",
         {"name": ["Lunch", "Lunch break"], "available": [False, True]}, *me),
        (w.solo.id, "agent_status", status.id, "Lunch break", "deleted",
         {"name": ["Lunch break", None], "color": ["#ff8800", None],
          "available": [True, None], "position": [1, None]}, *me)]


def test_preset_created_changed_deleted(session, w):
    m = mark(session)
    with as_user(w.ann):
        preset = Preset(account_id=w.agency.id, kind=PresetKind.CALL_QUEUE, name="Sales",
                        settings_json='{"ring_seconds": 20}')
        session.add(preset)
        session.commit()
        preset.settings_json = '{"ring_seconds": 30}'
        session.commit()
        session.delete(preset)
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    # The JSON settings as one field per setting, so a version says which setting changed.
    assert rows(session, m) == [
        (w.agency.id, "preset", preset.id, "Sales", "created",
         {"kind": [None, "call_queue"], "name": [None, "Sales"],
          "settings.ring_seconds": [None, 20]}, *me),
        (w.agency.id, "preset", preset.id, "Sales", "changed",
         {"settings.ring_seconds": [20, 30]}, *me),
        (w.agency.id, "preset", preset.id, "Sales", "deleted",
         {"kind": ["call_queue", None], "name": ["Sales", None],
          "settings.ring_seconds": [30, None]}, *me)]


def test_tracking_source_created_changed_deleted(session, w):
    m = mark(session)
    with as_user(w.avery):
        source = TrackingSource(account_id=w.bayside.id, name="Google Ads", channel="paid",
                                referrer_contains="google.", landing_param="gclid",
                                swap_numbers=True)
        session.add(source)
        session.commit()
        source.swap_numbers = False
        session.commit()
        session.delete(source)
        session.commit()
    me = (w.avery.id, "Avery Owner", NOW)
    assert rows(session, m) == [
        (w.bayside.id, "tracking_source", source.id, "Google Ads", "created",
         {"name": [None, "Google Ads"], "channel": [None, "paid"],
          "referrer_contains": [None, "google."], "landing_param": [None, "gclid"],
          "swap_numbers": [None, True]}, *me),
        (w.bayside.id, "tracking_source", source.id, "Google Ads", "changed",
         {"swap_numbers": [True, False]}, *me),
        (w.bayside.id, "tracking_source", source.id, "Google Ads", "deleted",
         {"name": ["Google Ads", None], "channel": ["paid", None],
          "referrer_contains": ["google.", None], "landing_param": ["gclid", None],
          "swap_numbers": [False, None]}, *me)]


def test_call_queue_created_changed_deleted(session, w):
    m = mark(session)
    with as_user(w.ann):
        queue = CallQueue(account_id=w.solo.id, name="Front desk", distribution="ring_all",
                          ring_seconds=20, max_wait_minutes=5, voicemail=True,
                          announce_position=False)
        session.add(queue)
        session.commit()
        queue.ring_seconds, queue.announce_position = 25, True
        session.commit()
        session.delete(queue)
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    assert rows(session, m) == [
        (w.solo.id, "call_queue", queue.id, "Front desk", "created",
         {"name": [None, "Front desk"], "distribution": [None, "ring_all"],
          "ring_seconds": [None, 20], "max_wait_minutes": [None, 5],
          "voicemail": [None, True], "announce_position": [None, False]}, *me),
        (w.solo.id, "call_queue", queue.id, "Front desk", "changed",
         {"ring_seconds": [20, 25], "announce_position": [False, True]}, *me),
        (w.solo.id, "call_queue", queue.id, "Front desk", "deleted",
         {"name": ["Front desk", None], "distribution": ["ring_all", None],
          "ring_seconds": [25, None], "max_wait_minutes": [5, None],
          "voicemail": [True, None], "announce_position": [True, None]}, *me)]


# --------------------------------------------------------------- users and roles

def test_a_users_name_and_email_change_is_filed_under_each_of_their_accounts(session, w):
    m = mark(session)
    with as_user(w.ann):
        w.ann.name = "Ann Jones"
        w.ann.email = "ann.jones@example.test"
        session.commit()
    changes = {"name": ["Ann Admin", "Ann Jones"],
               "email": ["ann@example.test", "ann.jones@example.test"]}
    assert sorted(rows(session, m)) == sorted([
        (w.solo.id, "user", w.ann.id, "Ann Jones", "changed", changes, w.ann.id,
         "Ann Admin", NOW),
        (w.agency.id, "user", w.ann.id, "Ann Jones", "changed", changes, w.ann.id,
         "Ann Admin", NOW)])


def test_a_password_change_alone_writes_no_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        w.ann.password_hash = hash_password("another good passphrase")
        w.ann.session_version += 1  # signed out everywhere, as a password change does
        session.commit()
    assert rows(session, m) == []


def test_a_password_change_with_a_name_change_records_the_name_only(session, w):
    m = mark(session)
    with as_user(w.ann):
        w.ann.password_hash = hash_password("another good passphrase")
        w.ann.name = "Ann Jones"
        session.commit()
    kept = since(session, m)
    assert [v.changes for v in kept] == [{"name": ["Ann Admin", "Ann Jones"]}] * 2
    for v in kept:
        assert "password" not in v.changes_json
        assert w.ann.password_hash not in v.changes_json


def test_membership_added_role_changed_and_removed(session, w):
    newbie = f.user(session, "newbie@example.test", name="Nell New")
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        membership = f.member(session, newbie, w.solo, Role.USER)
        session.commit()
        membership.role = Role.ADMIN
        session.commit()
        session.delete(membership)
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    assert rows(session, m) == [
        (w.solo.id, "membership", membership.id, "Nell New", "created",
         {"user": [None, newbie.name], "role": [None, "user"]}, *me),
        (w.solo.id, "membership", membership.id, "Nell New", "changed",
         {"role": ["user", "admin"]}, *me),
        (w.solo.id, "membership", membership.id, "Nell New", "deleted",
         {"user": [newbie.name, None], "role": ["admin", None]}, *me)]


def test_a_membership_role_change_through_an_orm_update_statement(session, w):
    vic_membership = session.scalar(select(Membership).where(
        Membership.user_id == w.vic.id, Membership.account_id == w.solo.id))
    m = mark(session)
    with as_user(w.ann):
        session.execute(update(Membership).where(Membership.id == vic_membership.id)
                        .values(role=Role.ADMIN))
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "membership", vic_membership.id, "Vic User", "changed",
         {"role": ["user", "admin"]}, w.ann.id, "Ann Admin", NOW)]


# --------------------------------------------------------------- calls (redaction)

def new_call(session, account, notes: str = "") -> Call:
    call = Call(account_id=account.id, caller_number="+12025550100", caller_name="Pat Caller",
                called_number="+14155550000", started_at=NOW - timedelta(hours=1),
                duration_seconds=60, source="Google Ads", notes=notes)
    session.add(call)
    session.commit()
    return call


def test_a_new_call_is_no_version(session, w):
    m = mark(session)
    new_call(session, w.solo, notes="Wants a quote")
    assert rows(session, m) == []


def test_redacting_a_calls_personal_data_names_the_fields_never_the_values(session, w):
    call = new_call(session, w.solo, notes="Wants a quote for 12 Elm St")
    m = mark(session)
    with as_user(w.ann):
        call.caller_name = call.caller_number = call.notes = ""
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "call", call.id, f"Call #{call.id}", "redacted",
         {"caller_name": [None, None], "caller_number": [None, None],
          "notes": [None, None]}, w.ann.id, "Ann Admin", NOW)]
    for v in all_versions(session):
        for value in ("Pat Caller", "+12025550100", "12 Elm St"):
            assert value not in v.changes_json


def test_removing_only_the_notes_is_a_redaction_of_the_notes(session, w):
    call = new_call(session, w.solo, notes="Wants a quote")
    m = mark(session)
    with as_user(w.ann):
        call.notes = ""
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "call", call.id, f"Call #{call.id}", "redacted",
         {"notes": [None, None]}, w.ann.id, "Ann Admin", NOW)]


@pytest.mark.parametrize("field, value", [("notes", "Called back, wants a quote"),
                                          ("caller_name", "Patricia Caller")])
def test_a_call_is_versioned_only_when_its_personal_data_is_removed(session, w, field, value):
    """Adding notes to a call (or correcting the caller's name) is no version: a "changed"
    version of hidden fields would be [null, null], shown as "Notes: removed (not kept)"."""
    call = new_call(session, w.solo)
    m = mark(session)
    with as_user(w.ann):
        setattr(call, field, value)
        session.commit()
    assert rows(session, m) == []


# --------------------------------------------------------------- one transaction, one version

def test_created_then_changed_in_one_transaction_is_one_created_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        tracking = numbers.add(session, w.solo, "+14155550123", "Flyer")
        tracking.label = "Spring flyer"
        session.flush()
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "tracking_number", tracking.id, "+14155550123", "created",
         {"number": [None, "+14155550123"], "label": [None, "Spring flyer"],
          "status": [None, "active"]}, w.ann.id, "Ann Admin", NOW)]


def test_a_change_undone_in_the_same_transaction_is_no_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        w.solo.name = "Acme Co"
        session.flush()
        w.solo.name = "Acme Plumbing"
        session.commit()
    assert rows(session, m) == []


def test_created_then_deleted_in_the_same_transaction_is_no_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        status = AgentStatus(account_id=w.solo.id, name="Tmp", color="#123456",
                             available=False, position=0)
        session.add(status)
        session.flush()
        session.delete(status)
        session.commit()
    assert rows(session, m) == []


def test_changed_then_deleted_in_one_transaction_is_deleted_with_the_values_before(
        session, w):
    queue = CallQueue(account_id=w.solo.id, name="Front desk", distribution="round_robin",
                      ring_seconds=20, max_wait_minutes=5, voicemail=True,
                      announce_position=False)
    session.add(queue)
    session.commit()
    m = mark(session)
    with as_user(w.ann):
        queue.ring_seconds = 45
        session.flush()
        session.delete(queue)
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "call_queue", queue.id, "Front desk", "deleted",
         {"name": ["Front desk", None], "distribution": ["round_robin", None],
          "ring_seconds": [20, None], "max_wait_minutes": [5, None],
          "voicemail": [True, None], "announce_position": [False, None]},
         w.ann.id, "Ann Admin", NOW)]


def test_a_core_update_and_an_orm_change_of_one_record_in_one_transaction_merge(session, w):
    m = mark(session)
    with as_user(w.ann):
        lifecycle.pause_swapping(session, w.solo, w.ann)  # Core UPDATE
        w.solo.name = "Acme Co"  # unit of work
        session.commit()
    assert rows(session, m) == [
        (w.solo.id, "account", w.solo.id, "Acme Co", "changed",
         {"status": ["active", "swapping_paused"], "name": ["Acme Plumbing", "Acme Co"]},
         w.ann.id, "Ann Admin", NOW)]


def test_a_record_changed_on_both_sides_of_a_savepoint_is_still_one_version(session, w):
    """Found by review (fixed): the merge's memory was dropped on `after_commit`, which
    SQLAlchemy also fires when a savepoint is released (ledger.post, outbox.queue,
    charges.start use one), so such a record got two versions."""
    m = mark(session)
    with as_user(w.ann):
        billing.set_auto_recharge(session, w.solo, "10", "50")
        f.funds(session, w.solo, 2500)  # ledger.post: a savepoint, released
        billing.set_auto_recharge(session, w.solo, "20", "80")
    session.commit()
    assert rows(session, m) == [
        (w.solo.id, "recharge_settings", w.solo.id, "Balance Auto Recharge Settings",
         "created", {"recharge_threshold_cents": [None, 2000],
                     "recharge_amount_cents": [None, 8000],
                     # issue 17: the daily recharge limit in effect from the start
                     "recharge_daily_limit": [None, 5]}, w.ann.id, "Ann Admin", NOW)]


def test_a_savepoint_rolled_back_after_a_merge_leaves_the_earlier_version_as_it_was(
        session, w):
    m = mark(session)
    with as_user(w.ann):
        w.solo.name = "Acme Co"
        session.flush()
        savepoint = session.begin_nested()
        w.solo.name = "Acme Co Ltd"
        session.flush()  # merged into the version above, inside the savepoint
        savepoint.rollback()
        session.commit()
    assert [(v.record_label, v.changes) for v in since(session, m)] == [
        ("Acme Co", {"name": ["Acme Plumbing", "Acme Co"]})]


# --------------------------------------------------------------- through the newer services

def test_agent_statuses_through_their_service(session, w):
    from portal.services import agents

    m = mark(session)
    with as_user(w.ann):
        lunch = agents.add(session, w.solo, "Lunch", "#FF8800", "on")
        meeting = agents.add(session, w.solo, "Meeting", "#1e88e5")
        session.commit()
        agents.update(session, w.solo, lunch.id, "Lunch break", "#ff8800", "on")
        session.commit()
        agents.move(session, w.solo, meeting.id, "up")
        session.commit()
        agents.delete(session, w.solo, lunch.id)
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    got = rows(session, m)
    got[3:5] = sorted(got[3:5], key=lambda r: r[2])  # the swap: one version each
    assert got == [
        (w.solo.id, "agent_status", lunch.id, "Lunch", "created",
         {"name": [None, "Lunch"], "color": [None, "#ff8800"], "available": [None, True],
          "position": [None, 0]}, *me),
        (w.solo.id, "agent_status", meeting.id, "Meeting", "created",
         {"name": [None, "Meeting"], "color": [None, "#1e88e5"], "available": [None, False],
          "position": [None, 1]}, *me),
        (w.solo.id, "agent_status", lunch.id, "Lunch break", "changed",
         {"name": ["Lunch", "Lunch break"]}, *me),
        (w.solo.id, "agent_status", lunch.id, "Lunch break", "changed",
         {"position": [0, 1]}, *me),
        (w.solo.id, "agent_status", meeting.id, "Meeting", "changed",
         {"position": [1, 0]}, *me),
        (w.solo.id, "agent_status", lunch.id, "Lunch break", "deleted",
         {"name": ["Lunch break", None], "color": ["#ff8800", None],
          "available": [True, None], "position": [1, None]}, *me)]


def test_presets_and_their_records_through_their_service(session, w):
    from portal.services import presets

    queue_kind = presets.KINDS[PresetKind.CALL_QUEUE]
    m = mark(session)
    with as_user(w.ann):
        preset = presets.create_preset(session, w.solo, PresetKind.CALL_QUEUE, {
            "name": "Busy line", "distribution": "simultaneous", "ring_seconds": "30",
            "max_wait_minutes": "10", "voicemail": "on"})
        session.commit()
        presets.update_preset(session, w.solo, preset.id, {
            "name": "Busy line", "distribution": "simultaneous", "ring_seconds": "45",
            "max_wait_minutes": "10", "voicemail": "on"})
        session.commit()
        queue = presets.create_record(session, w.solo, queue_kind, {
            "name": "Sales", "distribution": "round_robin", "ring_seconds": "20",
            "max_wait_minutes": "5", "voicemail": "on"})
        session.commit()
    me = (w.ann.id, "Ann Admin", NOW)
    assert rows(session, m) == [
        (w.solo.id, "preset", preset.id, "Busy line", "created",
         {"kind": [None, "call_queue"], "name": [None, "Busy line"],
          "settings.distribution": [None, "simultaneous"], "settings.ring_seconds": [None, 30],
          "settings.max_wait_minutes": [None, 10], "settings.voicemail": [None, True],
          "settings.announce_position": [None, False]}, *me),
        (w.solo.id, "preset", preset.id, "Busy line", "changed",
         {"settings.ring_seconds": [30, 45]}, *me),
        (w.solo.id, "call_queue", queue.id, "Sales", "created",
         {"name": [None, "Sales"], "distribution": [None, "round_robin"],
          "ring_seconds": [None, 20], "max_wait_minutes": [None, 5], "voicemail": [None, True],
          "announce_position": [None, False]}, *me)]


# --------------------------------------------------------------- the mechanism

def test_register_refuses_secret_looking_fields(monkeypatch):
    monkeypatch.setattr(versioning, "_SPECS", {})
    for name in ("password_hash", "token", "gateway_token", "totp_secret", "api_token",
                 "cvc", "cvv", "pan", "card_number", "Password_Hash", "code_hash"):
        with pytest.raises(ValueError, match="looks secret"):
            versioning.register(User, versioning.Spec("user", ("name", name),
                                                      label=lambda _c, v: ""))
    assert versioning._SPECS == {}


def test_register_accepts_a_plain_field_that_merely_contains_a_forbidden_word(
        monkeypatch):
    """"pan" (a card number) as a word, not a substring: "company" or "timespan" are fine."""
    monkeypatch.setattr(versioning, "_SPECS", {})
    monkeypatch.setattr(versioning.event, "listen", lambda *a, **k: None)
    model = type("Firm", (), {"company": None, "timespan": None})
    versioning.register(model, versioning.Spec("account", ("company", "timespan"),
                                               label=lambda _c, v: ""))
    assert versioning.specs_for(model)[0].fields == ("company", "timespan")


@pytest.mark.parametrize("name", ["api_tokens", "recovery_code_hashes", "client_secrets",
                                  "old_passwords"])
def test_register_refuses_the_plural_of_a_secret_word(monkeypatch, name):
    """Found by review (fixed): the check compared whole words with singular forms only, so
    a field holding several tokens, hashes, secrets or passwords could be versioned."""
    monkeypatch.setattr(versioning, "_SPECS", {})
    monkeypatch.setattr(versioning.event, "listen", lambda *a, **k: None)
    model = type("Vault", (), {name: None})
    with pytest.raises(ValueError, match="looks secret"):
        versioning.register(model, versioning.Spec("user", (name,), label=lambda _c, v: ""))


def test_a_rolled_back_transaction_leaves_no_version(session, w):
    m = mark(session)
    with as_user(w.ann):
        lifecycle.pause_swapping(session, w.solo, w.ann)  # a Core UPDATE
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")  # the unit of work
        w.ann.name = "Ann Jones"
        session.flush()
        assert len(since(session, m)) >= 3  # written, in the transaction
    session.rollback()
    assert rows(session, m) == []
    session.expire_all()
    assert session.get(Account, w.solo.id).status == AccountStatus.ACTIVE


def test_a_savepoint_rolled_back_takes_its_versions_with_it(session, w):
    m = mark(session)
    with as_user(w.ann):
        savepoint = session.begin_nested()
        billing.set_critical_phone(session, w.solo, "+1 415 555 0134")
        savepoint.rollback()
        w.solo.name = "Acme Co"
        session.commit()
    assert [(v.record_type, v.changes) for v in since(session, m)] == [
        ("account", {"name": ["Acme Plumbing", "Acme Co"]})]


def test_outside_a_request_and_without_acting_as_the_actor_is_the_system(session, w):
    m = mark(session)
    w.solo.name = "Acme Co"
    session.commit()
    [v] = since(session, m)
    assert (v.actor_id, v.actor_label) == SYSTEM


def test_a_signed_in_request_names_the_user(app, session, w):
    from flask_login import login_user

    m = mark(session)
    with app.test_request_context("/"):
        login_user(w.ann)
        w.solo.name = "Acme Co"
        session.commit()
    [v] = since(session, m)
    assert (v.actor_id, v.actor_label) == (w.ann.id, "Ann Admin")


def test_every_record_type_has_a_registered_spec(app):
    registered = {spec.record_type for specs in versioning._SPECS.values() for spec in specs}
    assert registered == set(versioning.RECORD_TYPES)


def test_the_specs_are_the_models_own_declarations(app):
    """Each versioned model says what it versions next to its columns (__versioned__ in
    portal/models/*); install() registers those and nothing else."""
    assert versioning._SPECS
    for model, specs in versioning._SPECS.items():
        assert specs == list(model.__dict__["__versioned__"]), model.__name__


# --------------------------------------------------------------- retention and purge

def version(session, account, at: datetime, label: str = "") -> Version:
    v = Version(account_id=account.id, record_type="account", record_id=account.id,
                record_label=label or account.name, action="changed",
                changes_json='{"name": ["a", "b"]}', actor_id=None, actor_label="System",
                at=at)
    session.add(v)
    session.flush()
    return v


def kept_labels(session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(Version.record_label).where(
        Version.record_label.like("keep-test %"))))


def test_retention_is_7_days_standalone_and_120_agency_and_sub(session, w):
    assert history.retention(w.solo) == timedelta(days=7) == rules.VERSION_RETENTION_INDIVIDUAL
    assert history.retention(w.agency) == timedelta(days=120)
    assert history.retention(w.bayside) == timedelta(days=120)


@pytest.fixture
def aged(session, w):
    """Versions at the edges of each account's retention (labelled by account and age)."""
    seven, hundred_twenty, second = timedelta(days=7), timedelta(days=120), timedelta(seconds=1)
    for account, key in ((w.solo, "solo"), (w.agency, "agency"), (w.bayside, "sub")):
        limit = seven if key == "solo" else hundred_twenty
        version(session, account, NOW - limit, f"keep-test {key} at limit")
        version(session, account, NOW - limit - second, f"keep-test {key} past limit")
        version(session, account, NOW - timedelta(days=8), f"keep-test {key} 8 days")
        version(session, account, NOW, f"keep-test {key} now")
    session.commit()


KEPT_AFTER_PURGE = {
    "keep-test solo at limit", "keep-test solo now",
    "keep-test agency at limit", "keep-test agency 8 days", "keep-test agency now",
    "keep-test sub at limit", "keep-test sub 8 days", "keep-test sub now",
}


def test_purge_keeps_a_version_exactly_at_the_limit_and_deletes_one_second_older(
        session, aged):
    removed = history.purge(session, NOW)
    session.commit()
    # Removed: the standalone's past the limit and at 8 days; the agency's and the
    # sub-account's past the limit (their 8-day-old versions are kept).
    assert removed == 4
    assert kept_labels(session) == KEPT_AFTER_PURGE


def test_purge_is_idempotent(session, aged):
    first = history.purge(session, NOW)
    session.commit()
    second = history.purge(session, NOW)
    session.commit()
    assert (first, second) == (4, 0)
    assert kept_labels(session) == KEPT_AFTER_PURGE


def test_purge_uses_the_clock_when_not_told_the_time(session, aged):
    assert history.purge(session) == 4
    session.commit()
    assert kept_labels(session) == KEPT_AFTER_PURGE


def test_flask_jobs_run_purges_versions_past_retention(app, session, aged):
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "versions: 4 version(s) past 7/120 days removed" in result.output
    assert kept_labels(session) == KEPT_AFTER_PURGE
    again = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert "versions: 0 version(s) past 7/120 days removed" in again.output
    assert kept_labels(session) == KEPT_AFTER_PURGE
