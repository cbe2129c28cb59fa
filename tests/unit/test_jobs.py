"""The scheduled jobs (`flask jobs run`, portal/jobs.py): recurring statements are emailed
once per period, across runs one after the other and two runs at once (each in its own app
context and database session, on SQLite and PostgreSQL); every job is idempotent, so a second
run in the same period adds nothing to the outbox, the ledger or the charges."""

import io
import json
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portal import clock, jobs
from portal.models import (
    BillingMode,
    Charge,
    LedgerEntry,
    OutboxAttachment,
    OutboxMessage,
    StatementSchedule,
)
from portal.services import billing, ledger, lifecycle, statements, usage
from tests import factories as f
from tests.threads import in_own_session

OCT = datetime(2026, 10, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday
NEXT_WEEK = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # Monday again, still November
NEXT_MONTH = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)  # a Tuesday: the same week


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def statement_mail(session):
    """(schedule id, period start, recipient) of every statement queued by the schedules."""
    session.expire_all()
    found = []
    for key, to in session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.to_address)
                                   .where(OutboxMessage.kind == "statement")
                                   .order_by(OutboxMessage.id)):
        _, schedule_id, start = key.split(":")
        found.append((int(schedule_id), start, to))
    return sorted(found)


def statement_events(session):
    """(schedule id, period start) of every statement.ready webhook event a schedule made
    (issue 18: written in the transaction that claims the period, so once per statement)."""
    from portal.models.webhooks import WebhookEvent

    session.expire_all()
    found = []
    for payload in session.scalars(select(WebhookEvent.payload)
                                   .where(WebhookEvent.type == "statement.ready")):
        statement = json.loads(payload)["data"]["statement"]
        assert statement["source"] == "schedule" and statement["pdf_path"].endswith(
            f"statements.pdf?from={statement['period_from']}&to={statement['period_to']}")
        found.append((statement["schedule_id"], statement["period_from"]))
    return sorted(found)


@pytest.fixture
def world(session):
    """Accounts opened in October (so November's plan fee is due), with October usage:
    - Acme Plumbing (standalone, Pro, CA address, admin ann): a Visa, auto recharge, a
      monthly statement to ann and a weekly one to books@acme.example.
    - Northwind Agency (owner avery): Bayside Dental on agency billing; a monthly statement.
    - Bayside Dental: a schedule made before it moved to agency billing (skipped).
    - Closed Shop (canceled): a weekly schedule (skipped)."""
    clock.freeze(OCT)
    ann, avery = f.user(session, "ann@example.test"), f.user(session, "avery@example.test")
    acme = f.standalone(session, "Acme Plumbing", admin=ann)
    billing.set_service_address(session, acme, {"address_line1": "1 Market St",
                                                 "city": "San Francisco", "region": "CA",
                                                 "postal_code": "94105"})
    f.card(session, acme)
    f.funds(session, acme, 30_000)
    f.recharge_settings(session, acme, threshold="150", amount="300")
    agency = f.agency(session, "Northwind Agency", owner=avery)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    closed = f.standalone(session, "Closed Shop", admin=ann)
    session.commit()
    usage.post(session, acme, {"minutes": 400}, "oct-acme")  # $20.00
    usage.post(session, bayside, {"minutes": 100}, "oct-bayside")  # $5.00 from the agency
    session.commit()
    schedules = {
        "acme_monthly": statements.add_schedule(session, acme, ann, "monthly",
                                                "ann@example.test"),
        "acme_weekly": statements.add_schedule(session, acme, ann, "weekly",
                                               "books@acme.example"),
        "agency_monthly": statements.add_schedule(session, agency, avery, "monthly",
                                                  "avery@example.test"),
        "bayside": statements.add_schedule(session, bayside, avery, "weekly",
                                           "bea@example.test"),
        "closed": statements.add_schedule(session, closed, ann, "weekly", "ann@example.test"),
    }
    lifecycle.close(session, closed, ann, now=OCT + timedelta(days=1))
    session.commit()
    clock.freeze(NOW)
    ids = {name: s.id for name, s in schedules.items()}
    return {"acme": acme, "agency": agency, "bayside": bayside, "closed": closed, **ids}


def run_jobs(app):
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    return dict(line.split(":", 1) for line in result.output.splitlines())


def totals(session):
    return {"outbox": count(session, OutboxMessage),
            "attachments": count(session, OutboxAttachment),
            "ledger": count(session, LedgerEntry), "charges": count(session, Charge),
            "balances": tuple(session.execute(select(LedgerEntry.account_id,
                                                     func.sum(LedgerEntry.amount_cents))
                                              .group_by(LedgerEntry.account_id)
                                              .order_by(LedgerEntry.account_id)))}


# --------------------------------------------------------------- flask jobs run

def test_jobs_run_sends_each_schedules_previous_period_once(app, session, world):
    out = run_jobs(app)
    assert out["statements"].strip() == "3 recurring statement(s) queued"
    assert statement_mail(session) == sorted([
        (world["acme_monthly"], "2026-10-01", "ann@example.test"),
        (world["acme_weekly"], "2026-11-16", "books@acme.example"),
        (world["agency_monthly"], "2026-10-01", "avery@example.test")])
    again = run_jobs(app)
    assert again["statements"].strip() == "0 recurring statement(s) queued"
    assert len(statement_mail(session)) == 3

    clock.freeze(NEXT_WEEK)
    assert run_jobs(app)["statements"].strip() == "1 recurring statement(s) queued"
    assert run_jobs(app)["statements"].strip() == "0 recurring statement(s) queued"
    clock.freeze(NEXT_MONTH)
    assert run_jobs(app)["statements"].strip() == "2 recurring statement(s) queued"
    assert run_jobs(app)["statements"].strip() == "0 recurring statement(s) queued"
    assert statement_mail(session) == sorted([
        (world["acme_monthly"], "2026-10-01", "ann@example.test"),
        (world["acme_monthly"], "2026-11-01", "ann@example.test"),
        (world["acme_weekly"], "2026-11-16", "books@acme.example"),
        (world["acme_weekly"], "2026-11-23", "books@acme.example"),
        (world["agency_monthly"], "2026-10-01", "avery@example.test"),
        (world["agency_monthly"], "2026-11-01", "avery@example.test")])
    # the skipped ones were claimed too (not tried on every run), and sent nothing
    session.expire_all()
    assert session.get(StatementSchedule, world["bayside"]).last_period_start == datetime(
        2026, 11, 23, tzinfo=UTC)
    assert session.get(StatementSchedule, world["closed"]).last_period_start == datetime(
        2026, 11, 23, tzinfo=UTC)
    assert count(session, OutboxMessage, OutboxMessage.to_address == "bea@example.test") == 0


def test_the_recurring_statement_is_the_periods_statement(app, session, world):
    run_jobs(app)
    session.expire_all()
    message = session.scalar(select(OutboxMessage).where(
        OutboxMessage.dedupe_key == f"statement:{world['acme_monthly']}:2026-10-01"))
    assert message.subject == "Statement for Acme Plumbing: Oct 1, 2026 – Oct 31, 2026"
    assert (message.to_address, message.account_id, message.status.value) == (
        "ann@example.test", world["acme"].id, "pending")
    assert "Opening balance: $0.00" in message.text_body
    assert "Closing balance: $280.00" in message.text_body
    attachment, postings = session.scalars(select(OutboxAttachment).where(
        OutboxAttachment.message_id == message.id).order_by(OutboxAttachment.id)).all()
    assert attachment.content_type == "application/pdf"
    assert postings.content_type == "text/csv"  # issue 17: every posting beside the PDF
    assert attachment.filename == f"statement-{world['acme'].id}-20261001-20261031.pdf"
    words = pdf_text(attachment.data)
    for fact in ("October 1, 2026 – October 31, 2026", "Opening balance $0.00",
                 "Payment $300.00", "Usage -$20.00", "Closing balance $280.00",
                 "Minutes (min)", "Oct 10 400 · $20.00 $20.00"):  # usage per day, item
        assert fact in words, (fact, words)
    assert "Plan fee" not in words  # November's, posted by this same run
    # the agency's itemizes its agency-billed sub-account
    agency_message = session.scalar(select(OutboxMessage).where(
        OutboxMessage.dedupe_key == f"statement:{world['agency_monthly']}:2026-10-01"))
    agency_pdf = session.scalar(select(OutboxAttachment.data).where(
        OutboxAttachment.message_id == agency_message.id,
        OutboxAttachment.content_type == "application/pdf"))
    words = pdf_text(agency_pdf)
    assert "Usage by sub-account (agency billing)" in words
    assert "Bayside Dental -$5.00" in words
    # the weekly one covers last Monday to Sunday: nothing happened
    weekly = session.scalar(select(OutboxMessage).where(
        OutboxMessage.dedupe_key == f"statement:{world['acme_weekly']}:2026-11-16"))
    assert weekly.subject == "Statement for Acme Plumbing: Nov 16, 2026 – Nov 22, 2026"
    assert "No activity in this period." in weekly.text_body
    # the dialog says which period went last
    session.refresh(world["acme"])
    listed = {s.id: s.last_period_start for s in statements.schedules(session, world["acme"])}
    assert listed == {world["acme_monthly"]: datetime(2026, 10, 1, tzinfo=UTC),
                      world["acme_weekly"]: datetime(2026, 11, 16, tzinfo=UTC)}


def test_jobs_run_runs_the_registry_in_order(app, session):
    """`flask jobs run` is the registry (portal/jobs.py JOBS), one line per job that reports."""
    assert [job.name for job in jobs.JOBS] == [
        "charges", "refunds", "actions", "fees", "purge", "link-hits", "processor-events",
        "versions", "api-purge", "recharge-caps", "budgets-month-turn", "card-expiry", "statements",
        "statements-prepare", "webhooks-deliver", "mail", "sqlite-checkpoint"]
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    printed = [line.split(":")[0].split(" ")[0] for line in result.output.splitlines()]
    sqlite = session.get_bind().dialect.name == "sqlite"
    assert printed == ["charges", "refunds", "fees", "purge", "versions", "statements", "mail",
                       *(["sqlite"] if sqlite else [])]


def test_every_job_run_twice_in_the_same_period_does_nothing_more(app, session, world):
    agency = world["agency"]
    f.card(session, agency)
    billing.set_direct_charge(session, agency, True)  # its plan fee is charged to the card
    session.commit()
    before = totals(session)
    first = run_jobs(app)
    assert first["fees 2026-11"].strip() == ("2 plan fee(s), 1 tax entry, 1 direct "
                                             "charge(s), 1 recharge(s)")
    assert first["statements"].strip() == "3 recurring statement(s) queued"
    after_first = totals(session)
    assert after_first != before
    # the agency's fee charged to its card; Acme's fee and tax took it below its threshold
    assert after_first["charges"] == before["charges"] + 2
    assert ledger.check(session) == []
    for _ in range(2):
        again = run_jobs(app)
        assert again["charges"].strip() == "0 pending charge(s) asked again"
        assert again["fees 2026-11"].strip() == ("0 plan fee(s), 0 tax entries, 0 direct "
                                                 "charge(s), 0 recharge(s)")
        assert again["statements"].strip() == "0 recurring statement(s) queued"
        assert again["mail"].strip() == "no MAIL_SERVER; the outbox stays in the dev outbox page"
        assert totals(session) == after_first
    # later the same month: still nothing more
    clock.freeze(NOW + timedelta(days=5, hours=3))  # Saturday Nov 28
    run_jobs(app)
    assert totals(session) == after_first
    assert ledger.check(session) == []


def test_a_removed_schedule_sends_nothing_more(app, session, world):
    run_jobs(app)
    statements.remove_schedule(session, world["acme"], world["acme_weekly"])
    session.commit()
    clock.freeze(NEXT_WEEK)
    assert run_jobs(app)["statements"].strip() == "0 recurring statement(s) queued"


def test_a_new_schedule_sends_the_period_that_just_ended(app, session, world):
    run_jobs(app)
    user = f.user(session)
    late = statements.add_schedule(session, world["acme"], user, "monthly",
                                   "late@example.test")
    session.commit()
    assert run_jobs(app)["statements"].strip() == "1 recurring statement(s) queued"
    assert (late.id, "2026-10-01", "late@example.test") in statement_mail(session)


# --------------------------------------------------------------- two runs at once


def concurrent_statement_runs(app, n=2):
    barrier = threading.Barrier(n, timeout=20)

    def run(s):
        barrier.wait()
        return jobs.statement_schedules(s)

    runs = [in_own_session(app, run) for _ in range(n)]
    for thread, _ in runs:
        thread.start()
    for thread, _ in runs:
        thread.join(120)
    assert [r.get("error") for _, r in runs] == [None] * n
    return sorted(r["value"] for _, r in runs)


def test_two_runs_at_once_send_each_period_once(app, session, world):
    assert sum(concurrent_statement_runs(app)) == 3
    first = statement_mail(session)
    assert [(s, p) for s, p, _ in first] == sorted([
        (world["acme_monthly"], "2026-10-01"), (world["acme_weekly"], "2026-11-16"),
        (world["agency_monthly"], "2026-10-01")])
    assert count(session, OutboxAttachment) == 3 * 2  # each a PDF and its postings' CSV
    assert concurrent_statement_runs(app) == [0, 0]
    assert statement_mail(session) == first

    clock.freeze(NEXT_WEEK)
    assert sum(concurrent_statement_runs(app)) == 1
    clock.freeze(NEXT_MONTH)
    assert sum(concurrent_statement_runs(app)) == 2
    assert concurrent_statement_runs(app) == [0, 0]
    mail = statement_mail(session)
    assert len(mail) == 6 and len(set((s, p) for s, p, _ in mail)) == 6
    assert count(session, OutboxAttachment) == 6 * 2
    assert statement_events(session) == [(s, p) for s, p, _ in mail]


def test_four_runs_at_once_send_one_statement(app, session):
    clock.freeze(OCT)
    account = f.standalone(session, "Solo")
    user = f.user(session)
    schedule = statements.add_schedule(session, account, user, "weekly", "pat@example.test")
    session.commit()
    clock.freeze(NOW)
    assert concurrent_statement_runs(app, 4) == [0, 0, 0, 1]
    assert statement_mail(session) == [(schedule.id, "2026-11-16", "pat@example.test")]


def test_a_period_already_claimed_is_not_made_again(app, session, world):
    """A run that finds the period already claimed (by a run that sent it, or is queuing it)
    makes no statement."""
    for name in ("acme_monthly", "acme_weekly", "agency_monthly", "bayside", "closed"):
        schedule = session.get(StatementSchedule, world[name])
        assert statements.claim_due(session, schedule, NOW) is not None
        session.commit()
    assert jobs.statement_schedules(session) == 0
    assert statement_mail(session) == []


def another_writer_can_write(database_url: str) -> bool:
    """Whether another instance could write right now, the schedules' rows included, without
    waiting past 0.2 s for a lock: SQLite's one write lock, or PostgreSQL's row locks."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0.2,
                               isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE statement_schedules SET recipient = recipient")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
            conn.execute(text("UPDATE statement_schedules SET recipient = recipient"))
            conn.rollback()
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def test_the_statements_pdf_is_rendered_with_no_write_lock_held(app, session, world,
                                                                database_url, monkeypatch):
    """A statement's PDF takes seconds to render (WeasyPrint). It was rendered after its
    period was claimed, inside the claim's transaction: on SQLite that is the database's one
    write lock, and every usage posting, payment and sign-in of both instances waited for it
    (the SQLite load test's "database is locked"). Now another writer can write meanwhile,
    the schedules' rows included, and each period is still sent once."""
    from portal import pdf

    render = pdf.render
    could_write = []

    def render_while_another_writes(html):
        could_write.append(another_writer_can_write(database_url))
        return render(html)

    monkeypatch.setattr(pdf, "render", render_while_another_writes)
    assert jobs.statement_schedules(session) == 3
    assert could_write == [True, True, True]
    assert len(statement_mail(session)) == 3
    assert jobs.statement_schedules(session) == 0


def test_a_run_that_loses_the_claim_while_rendering_sends_nothing(app, session, world,
                                                                  monkeypatch):
    """Made before the claim, the statement of a period another run claims meanwhile is
    thrown away: each period is sent once."""
    from portal import pdf

    render = pdf.render

    def render_while_another_run_claims(html):
        def claim_all(s):
            for name in ("acme_monthly", "acme_weekly", "agency_monthly"):
                statements.claim_due(s, s.get(StatementSchedule, world[name]), NOW)
                s.commit()

        thread, result = in_own_session(app, claim_all)
        thread.start()
        thread.join(30)
        assert "error" not in result
        return render(html)

    monkeypatch.setattr(pdf, "render", render_while_another_run_claims)
    assert jobs.statement_schedules(session) == 0
    assert statement_mail(session) == []
    assert count(session, OutboxAttachment) == 0
    assert statement_events(session) == []


def test_a_scheduled_statement_carries_the_periods_postings_as_csv(app, session, world):
    """Issue 17: the PDF sums the usage per day and item; the email carries every posting of
    the period beside it, as the statement's CSV download gives it."""
    assert jobs.statement_schedules(session) == 3
    session.expire_all()
    acme = session.get(OutboxMessage, session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == (
            f"statement:{world['acme_monthly']}:2026-10-01"))))
    pdf_file, postings = session.scalars(select(OutboxAttachment).where(
        OutboxAttachment.message_id == acme.id).order_by(OutboxAttachment.id)).all()
    assert pdf_file.content_type == "application/pdf"
    assert (postings.content_type, postings.filename) == (
        "text/csv", f"statement-{world['acme'].id}-20261001-20261031-postings.csv")
    lines = postings.data.decode().splitlines()
    assert lines[0] == ",".join(statements.CSV_HEADER)
    assert len(lines) == 1 + count(session, LedgerEntry,
                                   LedgerEntry.account_id == world["acme"].id,
                                   LedgerEntry.created_at < datetime(2026, 11, 1, tzinfo=UTC))
    assert any(",Usage,Usage: 400 minutes,,-20.00," in line for line in lines)
    assert postings.data == statements.postings_csv_bytes(
        session, world["acme"], date(2026, 10, 1), date(2026, 10, 31))
    # the agency's names the sub-account each usage posting was for
    agency = session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == (
        f"statement:{world['agency_monthly']}:2026-10-01")))
    agency_csv = session.scalar(select(OutboxAttachment.data).where(
        OutboxAttachment.message_id == agency, OutboxAttachment.content_type == "text/csv"))
    assert ",Usage (Bayside Dental): 100 minutes,Bayside Dental,-5.00," in agency_csv.decode()


def test_statement_schedules_takes_the_time_it_is_given(app, session, world):
    assert jobs.statement_schedules(session, NEXT_MONTH) == 3
    assert statement_mail(session) == sorted([
        (world["acme_monthly"], "2026-11-01", "ann@example.test"),
        (world["acme_weekly"], "2026-11-23", "books@acme.example"),
        (world["agency_monthly"], "2026-11-01", "avery@example.test")])
    # an earlier moment never sends an older period afterwards
    assert jobs.statement_schedules(session, NOW) == 0
    assert date(2026, 10, 1) not in {date.fromisoformat(p) for _, p, _ in
                                     statement_mail(session)}


# --------------------------------------------------------------- issue 16

def test_the_jobs_cancel_a_challenge_nobody_finished_after_an_hour(app, session):
    """A Make a Payment whose card asked for 3-D Secure and was left waiting: the jobs
    cancel it at the processor after rules.ACTION_TIMEOUT (an hour), once; nothing is
    credited. Before the hour nothing happens."""
    from portal.sandbox.testing import AUTHENTICATE_ALWAYS
    from portal.services import charges
    from portal.services.gateway import SandboxGateway

    clock.freeze(NOW)
    ann = f.user(session, "ann@example.test")
    acme = f.standalone(session, "Acme Plumbing", admin=ann)
    method = f.card(session, acme, AUTHENTICATE_ALWAYS)
    charge = charges.pay(session, acme, ann, str(method.id), "40", charges.new_form_key())
    session.commit()
    charge = charges.attempt(session, SandboxGateway(), charge)
    assert charge.is_pending and charge.processor_status == "requires_action"

    clock.freeze(NOW + timedelta(minutes=59))
    assert jobs.expire_actions(session) == []
    clock.freeze(NOW + timedelta(hours=1))
    assert [c.id for c in jobs.expire_actions(session)] == [charge.id]
    session.expire_all()
    charge = session.get(Charge, charge.id)
    assert charge.is_failed and charge.failure_code == "authentication_abandoned"
    assert count(session, LedgerEntry, LedgerEntry.account_id == acme.id) == 0
    # the next run finds nothing more to do
    assert jobs.expire_actions(session) == []
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "actions:" not in result.output  # nothing canceled: no line


def test_the_jobs_purge_processor_events_over_90_days(app, session):
    """The webhook events' ids are kept 90 days (a replay inside them is recognised), then
    purged; the run after that removes nothing more."""
    from portal.models import ProcessorEventRecord

    clock.freeze(NOW)
    for name, age in (("old", timedelta(days=90, seconds=1)), ("older", timedelta(days=400)),
                      ("edge", timedelta(days=90)), ("recent", timedelta(days=3))):
        session.add(ProcessorEventRecord(id=f"evt_{name}", gateway="stripe",
                                         type="payment_intent.succeeded", object_ref="pi_1",
                                         outcome="applied", received_at=NOW - age))
    session.commit()
    assert jobs.purge_processor_events(session) == 2
    session.expire_all()
    assert sorted(session.scalars(select(ProcessorEventRecord.id))) == ["evt_edge",
                                                                        "evt_recent"]
    assert jobs.purge_processor_events(session) == 0
    clock.freeze(NOW + timedelta(days=1))
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "processor-events: 1 webhook event(s) over 90 days removed" in result.output
    assert sorted(session.scalars(select(ProcessorEventRecord.id))) == ["evt_recent"]
