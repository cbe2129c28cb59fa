"""bench/loadtest_checks.py, the load test's money checks: they pass on a database the
services wrote, and each one fails on the violation it exists for (a balance off its
ledger, a usage key debited twice, a charge credited twice or taken without a record, mail
delivered twice, an agency-billed sub-account with money of its own)."""

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from portal import clock
from portal.models import (
    Account,
    BillingMode,
    Cause,
    Charge,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    SandboxCharge,
)
from portal.models.mail import MailStatus
from portal.services import charges, ledger, processor, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _module():
    spec = importlib.util.spec_from_file_location("loadtest_checks",
                                                  ROOT / "bench" / "loadtest_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _module()


@pytest.fixture
def world(session):
    """A standalone account that paid once and posted usage once, and an agency with a sub
    on agency billing whose usage the agency paid: what the services write."""
    clock.freeze(NOW)
    gateway = SandboxGateway()
    admin = f.user(session)
    solo = f.standalone(session, "Solo", admin=admin)
    method = f.card(session, solo)
    f.funds(session, solo, 5000)
    charge = charges.pay(session, solo, admin, str(method.id), "25", "a" * 32)
    session.commit()
    charge = charges.attempt(session, gateway, charge)
    assert charge.status == ChargeStatus.SUCCEEDED
    usage.post(session, solo, {"minutes": 10}, "k-1")
    agency = f.agency(session, "Agency", owner=f.user(session))
    f.funds(session, agency, 5000)
    sub = f.sub(session, agency, "Sub")
    usage.post(session, sub, {"minutes": 20}, "k-2")
    session.commit()
    return {"solo": solo, "agency": agency, "sub": sub, "charge": charge, "admin": admin,
            "method": method}


def run(session, tmp_path, usage_log=None, deliveries=None) -> list[str]:
    """Every check; the names of those that failed."""
    failed = []

    class Report(checks.Report):
        def check(self, name, problems, figures):
            super().check(name, problems, figures)
            if problems:
                failed.append(name)

    report = Report()
    log = tmp_path / "usage.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in usage_log or []))
    checks.check_ledger(session, report)
    checks.check_usage(session, report, log)
    checks.check_charges(session, report)
    checks.check_refunds(session, report)
    delivered = None
    if deliveries is not None:
        delivered = tmp_path / "deliveries.jsonl"
        delivered.write_text("".join(json.dumps({"message_id": m, "to": [], "bytes": 1}) + "\n"
                                     for m in deliveries))
    checks.check_outbox(session, report, delivered)
    checks.check_sub_accounts(session, report)
    return failed


def posted(account, key, status=201, amount=50, retry=False):
    return {"account": account.id, "key": key, "status": status, "retry": retry,
            "duplicate": status == 200, "amount": amount}


def test_every_check_passes_on_what_the_services_wrote(session, world, tmp_path):
    log = [posted(world["solo"], "k-1"), posted(world["solo"], "k-1", 200, retry=True),
           posted(world["sub"], "k-2", amount=100)]
    assert run(session, tmp_path, log) == []


def test_a_cached_balance_off_its_ledger_fails_the_ledger_check(session, world, tmp_path):
    session.execute(update(Account).where(Account.id == world["solo"].id)
                    .values(balance_cents=Account.balance_cents + 1))
    assert run(session, tmp_path) == ["ledger"]


def test_a_balance_after_that_is_not_the_running_sum_fails_the_ledger_check(
        session, world, tmp_path):
    first = session.query(LedgerEntry).filter_by(account_id=world["solo"].id) \
        .order_by(LedgerEntry.id).first()
    first.balance_after_cents += 100
    session.flush()
    assert run(session, tmp_path) == ["ledger"]


def test_a_key_created_twice_or_missing_from_the_ledger_fails_the_usage_check(
        session, world, tmp_path):
    twice = [posted(world["solo"], "k-1"), posted(world["solo"], "k-1", retry=True)]
    assert run(session, tmp_path, twice) == ["usage keys"]
    missing = [posted(world["solo"], "never-written")]
    assert run(session, tmp_path, missing) == ["usage keys"]


def test_usage_on_a_ledger_that_did_not_pay_for_it_fails_the_usage_check(
        session, world, tmp_path):
    """The sub's key on the standalone account's ledger: nobody's payer."""
    entry = session.query(LedgerEntry).filter_by(idempotency_key=f"usage:{world['sub'].id}:k-2") \
        .one()
    entry.account_id = world["solo"].id
    session.flush()
    failed = run(session, tmp_path, [posted(world["sub"], "k-2", amount=100)])
    assert "usage keys" in failed


def test_a_charge_credited_twice_fails_the_charge_check(session, world, tmp_path):
    charge = world["charge"]
    ledger.post(session, world["agency"], LedgerKind.PAYMENT, charge.amount_cents, "again",
                f"charge:{charge.id}", Cause.CHARGE)
    assert run(session, tmp_path) == ["charges"]


@pytest.mark.parametrize("violation", ["failed but charged", "pending", "orphan"])
def test_money_at_the_processor_without_a_credit_fails_the_charge_check(
        session, world, tmp_path, violation):
    if violation == "orphan":  # charged by the processor, no charge on record
        session.execute(insert(SandboxCharge).values(
            idempotency_key="nobody-recorded-this", token="tok_approved_x", amount_cents=100,
            succeeded=True, code="approved", reference="ch_x", created_at=NOW))
    else:  # a second payment the processor took, recorded as pending or failed
        charge = charges.pay(session, world["solo"], world["admin"], str(world["method"].id),
                             "30", "b" * 32)
        session.commit()
        SandboxGateway().charge(processor.request_for(charge))  # as charges.attempt asks
        if violation == "failed but charged":
            session.execute(update(Charge).where(Charge.id == charge.id)
                            .values(status=ChargeStatus.FAILED))
    assert run(session, tmp_path) == ["charges"]


def test_mail_delivered_twice_or_never_fails_the_outbox_check(session, world, tmp_path):
    messages = session.query(OutboxMessage).order_by(OutboxMessage.id).all()
    assert messages  # the payment's receipt
    for message in messages:
        message.status = MailStatus.SENT
    session.flush()
    ids = [f"<outbox-{m.id}.{m.created_at:%Y%m%d%H%M%S}@portal.invalid>" for m in messages]
    assert run(session, tmp_path, deliveries=ids) == []
    assert run(session, tmp_path, deliveries=ids + ids[:1]) == ["outbox"]
    assert run(session, tmp_path, deliveries=ids[1:]) == ["outbox"]


def test_an_agency_billed_sub_account_with_money_of_its_own_fails(session, world, tmp_path):
    sub = world["sub"]
    assert sub.billing_mode == BillingMode.AGENCY
    ledger.post(session, sub, LedgerKind.USAGE, -100, "on its own ledger", "own-ledger",
                Cause.USAGE)
    assert run(session, tmp_path) == ["agency-billed sub-accounts"]
