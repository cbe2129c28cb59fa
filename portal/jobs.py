"""The scheduled jobs, in the order `flask jobs run` runs them (cron: every minute): JOBS,
one entry per job, each a function that does its work on a Session and commits, and the line
the command prints for its result. Every job is idempotent: a second run does nothing more,
and two runs at once do each thing once."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import pdf
from portal.clock import now as clock_now
from portal.extensions import payment_gateway
from portal.mail import delivery, notices
from portal.models import Account, StatementSchedule
from portal.services import (
    billing,
    charges,
    fees,
    guardrails,
    history,
    lifecycle,
    refunds,
    statements,
    webhooks,
)
from portal.transactions import checkpoint


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Session], Any]  # does the work and commits; returns what it did
    report: Callable[[Any], str | None]  # the line `jobs run` prints for it (None: no line)


def retry_charges(session: Session) -> list:
    """Charges left pending (a timeout, a crash) asked again with the same key."""
    return charges.retry_pending(session, payment_gateway())


def retry_refunds(session: Session) -> list:
    return refunds.retry_pending(session, payment_gateway())


def monthly_fees(session: Session):
    """The month's plan fees, taxes, direct charges and the recharges they set off."""
    return fees.run_monthly(session, payment_gateway())


def expire_actions(session: Session) -> list:
    """Issue 16: 3-D Secure challenges nobody finished within ACTION_TIMEOUT (an hour),
    canceled at the processor and their charges failed ("succeeded" when the payer
    finished first: then credited). charges.expire_actions commits."""
    return charges.expire_actions(session, payment_gateway())


def purge_closed_accounts(session: Session) -> list[int]:
    """Call data of accounts closed over 60 days ago."""
    purged = lifecycle.purge_expired(session)
    session.commit()
    return purged


def purge_link_hits(session: Session) -> int:
    """The billing links' rate-limit records past any window."""
    # Here, not at the top: billing_links imported before portal.models is a circular import.
    from billing_links import service as link_service

    removed = link_service.purge_hits(session)
    session.commit()
    return removed


def purge_processor_events(session: Session, now: datetime | None = None) -> int:
    """Issue 16: the processor's webhook events received over 90 days ago (their ids only
    guard against a replay; every effect stays keyed, so a later duplicate changes
    nothing)."""
    from portal.services import processor_events

    removed = processor_events.purge(session, now)
    session.commit()
    return removed


def purge_versions(session: Session) -> int:
    """Versions past their account's retention (7/120 days), in batches committed one by
    one: short write locks."""
    removed_total = 0
    while True:
        removed = history.purge(session, batch=5_000)
        session.commit()
        removed_total += removed
        if not removed:
            return removed_total


def purge_api(session: Session, now: datetime | None = None) -> tuple[int, int]:
    """Issue 18: the API's Idempotency-Key answers over 24 hours old and its rate-limit
    windows over an hour old; returns (answers, windows) removed."""
    from portal.blueprints.api_v1 import idempotency, ratelimit

    answers = idempotency.purge(session, now)
    windows = ratelimit.purge(session, now)
    session.commit()
    return answers, windows


def statement_schedules(session: Session, now: datetime | None = None) -> int:
    """Email each schedule's previous period once: the period is claimed with a conditional
    update in the transaction that queues the statement, so two runs at once send it once.

    The statement is built and its PDF rendered (seconds) before that transaction, with no
    write lock held: on SQLite the claim's lock is the database's one write lock, and every
    other writer (usage, payments, sign-ins) would wait for the rendering. A run that loses
    the claim meanwhile throws its PDF away."""
    now = now or clock_now()
    sent = 0
    for schedule_id in list(session.scalars(select(StatementSchedule.id)
                                            .order_by(StatementSchedule.id))):
        schedule = session.get(StatementSchedule, schedule_id)
        period = None if schedule is None else statements.due_period(session, schedule, now)
        if period is None:
            continue
        account = session.get(Account, schedule.account_id)
        if account.is_canceled or not billing.has_own_billing(account):
            statements.claim_due(session, schedule, now)
            session.commit()  # the period is skipped, not retried forever
            continue
        # Outside a request: the template's links are built against the external address.
        with current_app.test_request_context(base_url=current_app.config["EXTERNAL_BASE_URL"]):
            statement = pdf.statement(session, account, *period, for_pdf=True)
        built, document = statement.statement, statement.pdf
        postings = statements.postings_csv_bytes(session, account, *period)
        if statements.claim_due(session, schedule, now) != period:
            session.rollback()  # another run sent this period meanwhile
            continue
        notices.statement(session, account, built, schedule.recipient, document,
                          dedupe_key=f"statement:{schedule.id}:{period[0]:%Y-%m-%d}",
                          postings=postings)
        webhooks.statement_sent(session, account, schedule, period, document, now)
        session.commit()
        sent += 1
    return sent


def prepare_statements(session: Session, now: datetime | None = None) -> int:
    """Issue 17 (J): statements past rules.STATEMENT_SYNC_MAX_ENTRIES (statement_files),
    one at a time: each claimed with a conditional UPDATE (two runners never build the same
    one), rendered with the same pdf.statement(..., for_pdf=True) as the request, stored and
    marked ready in the transaction that queues the requester's email with the download link
    (and the statement itself to any Send Statement address). A failure marks the file
    failed with its error. Then the files past their 7 days are purged. Returns how many
    were made."""
    from portal.mail import compose
    from portal.models import User
    from portal.services import statement_files

    made = 0
    while (file := statement_files.claim_next(session, now)) is not None:
        file_id = file.id
        try:
            account = session.get(Account, file.account_id)
            with current_app.test_request_context(
                    base_url=current_app.config["EXTERNAL_BASE_URL"]):
                document = pdf.statement(session, account, file.period_from, file.period_to,
                                         for_pdf=True)
                data = document.pdf
                url = compose.external_url("billing.statement_file", account_id=account.id,
                                           file_id=file.id)
            # The postings CSV for Send Statement addresses, made before the lock (SQLite:
            # the database's write lock); the addresses read again under the row's lock: a
            # Send Statement of this period meanwhile is in them (it appends under it).
            postings = (statements.postings_csv_bytes(session, account, file.period_from,
                                                      file.period_to)
                        if file.send_to else None)
            file = statement_files.lock(session, file_id)
            send_to = [address for address in file.send_to.splitlines() if address]
            if send_to and postings is None:
                postings = statements.postings_csv_bytes(session, account, file.period_from,
                                                         file.period_to)
            statement_files.finish(session, file, data, now)
            requester = (session.get(User, file.requested_by_id)
                         if file.requested_by_id else None)
            if requester is not None:
                notices.statement_ready(session, account, file, requester, url)
            for address in send_to:
                notices.statement(session, account, document.statement, address, data,
                                  dedupe_key=f"statement-file:{file.id}:{address.lower()}",
                                  postings=postings)
            session.commit()
            made += 1
        except Exception as error:  # noqa: BLE001 - any failure is the file's, told on its page
            session.rollback()
            current_app.logger.exception("statement file %s failed", file_id)
            statement_files.fail(session, file_id, f"{type(error).__name__}: {error}")
    statement_files.purge_expired(session, now)
    session.commit()
    return made


def deliver_webhooks(session: Session, now: datetime | None = None):
    """Issue 18 (W): the outgoing webhooks due now, oldest event first, each claimed with a
    conditional UPDATE (two runners send each attempt once), signed, POSTed and its answer
    recorded (2xx succeeded; else retried with backoff for 3 days); then events past 30 days
    purged."""
    timeout, allow_private = webhooks.delivery_settings(
        current_app.config, current_app.testing or current_app.debug)
    run = webhooks.deliver_due(session, now, timeout=timeout, allow_private=allow_private)
    webhooks.purge(session, now)
    session.commit()
    return run


def deliver_mail(session: Session, now: datetime | None = None) -> delivery.Delivery | None:
    return delivery.run(session, current_app.config, now)  # None: no SMTP server


def checkpoint_sqlite(session: Session) -> bool | None:
    """SQLite: the WAL copied into the database file and emptied, so it stays small and what
    a redaction overwrote is in no old page of it (when the redaction's own checkpoint found
    readers still on the log). None on another database."""
    engine = session.get_bind()
    if engine.dialect.name != "sqlite":
        return None
    return checkpoint(engine)


def _fees_line(run) -> str:
    return (f"fees {run.month}: {run.fees} plan fee(s), {run.taxes} tax "
            f"entr{'y' if run.taxes == 1 else 'ies'}, {run.direct_charges} "
            f"direct charge(s), {len(run.recharges)} recharge(s)")


def _mail_line(sent) -> str:
    if sent is None:
        return "mail: no MAIL_SERVER; the outbox stays in the dev outbox page"
    return f"mail: {sent.sent} sent, {sent.retried} to retry, {sent.failed} failed"


def _checkpoint_line(done: bool | None) -> str | None:
    if done is None:
        return None
    return "sqlite: WAL checkpoint " + ("done, log truncated" if done else
                                        "left for the next run (readers on it)")


def card_expiry_notices(session: Session, now: datetime | None = None) -> int:
    """Issue 16: each Primary or Backup card expiring within 30 days, then within 7
    (rules.EXPIRY_NOTICE_DAYS), emails the account's billing recipients once per threshold
    (the outbox's dedupe key card-expiry:<method>:<days>; a missed day catches up, a card
    already past its expiry gets none). A card works through the last day of its expiry
    month. Returns how many notices were queued."""
    import calendar
    from datetime import date

    from portal import rules
    from portal.models import (
        AccountStatus,
        MethodKind,
        MethodRole,
        OutboxMessage,
        PaymentMethod,
    )

    today = (now or clock_now()).date()
    month = today.year * 12 + today.month
    cards = session.scalars(select(PaymentMethod).join(
        Account, Account.id == PaymentMethod.account_id).where(
        PaymentMethod.kind == MethodKind.CARD, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role.in_((MethodRole.PRIMARY, MethodRole.BACKUP)),
        # expiring this month or in the next two (the rest can't be 30 days away)
        (PaymentMethod.exp_year * 12 + PaymentMethod.exp_month).between(month, month + 2),
        Account.status != AccountStatus.CANCELED).order_by(PaymentMethod.id)).all()
    queued = 0
    for card in cards:
        last_day = calendar.monthrange(card.exp_year, card.exp_month)[1]
        expires_on = date(card.exp_year, card.exp_month, last_day)
        left = (expires_on - today).days
        due = [days for days in sorted(rules.EXPIRY_NOTICE_DAYS) if 0 <= left <= days]
        if due and not session.scalar(select(OutboxMessage.id).where(
                OutboxMessage.dedupe_key.startswith(f"card-expiry:{card.id}:{due[0]}:"))
                .limit(1)):
            queued += notices.card_expiring(session, card, due[0], expires_on)
    session.commit()
    return queued


def budgets_month_turn(session: Session, now: datetime | None = None) -> int:
    """Issue 17 (B): sub-accounts budget-paused in an earlier month run again (idempotent:
    one paused this month stays paused)."""
    from portal.services import budgets

    resumed = budgets.month_turn(session, now)
    session.commit()
    return resumed


# In order: money first (answers the processor owes us, then the month's fees), the purges,
# then what is mailed, then the SQLite log.
JOBS: tuple[Job, ...] = (
    Job("charges", retry_charges,
        lambda retried: f"charges: {len(retried)} pending charge(s) asked again"),
    Job("refunds", retry_refunds,
        lambda refunded: f"refunds: {len(refunded)} pending refund(s) asked again"),
    Job("actions", expire_actions,
        lambda expired: (f"actions: {len(expired)} unfinished 3-D Secure challenge(s) "
                         "canceled") if expired else None),
    Job("fees", monthly_fees, _fees_line),
    Job("purge", purge_closed_accounts,
        lambda purged: f"purge: call data removed from {len(purged)} account(s) closed over "
                       "60 days ago"),
    Job("link-hits", purge_link_hits, lambda _removed: None),
    Job("processor-events", purge_processor_events,
        lambda removed: (f"processor-events: {removed} webhook event(s) over 90 days "
                         "removed") if removed else None),
    Job("versions", purge_versions,
        lambda removed: f"versions: {removed} version(s) past 7/120 days removed"),
    Job("api-purge", purge_api,
        lambda removed: (f"api-purge: {removed[0]} idempotency answer(s), {removed[1]} "
                         "rate window(s) removed") if any(removed) else None),
    Job("recharge-caps", lambda session: guardrails.cap_resets(session),
        lambda told: (f"recharge-caps: {told} monthly cap reset(s) told") if told else None),
    Job("budgets-month-turn", lambda session: budgets_month_turn(session),
        lambda resumed: (f"budgets-month-turn: {resumed} budget-paused sub-account(s) "
                         "resumed for the new month") if resumed else None),
    Job("card-expiry", card_expiry_notices,
        lambda queued: f"card-expiry: {queued} expiry notice(s) queued" if queued else None),
    Job("statements", statement_schedules,
        lambda sent: f"statements: {sent} recurring statement(s) queued"),
    Job("statements-prepare", prepare_statements,
        lambda made: (f"statements-prepare: {made} big statement(s) made") if made else None),
    Job("webhooks-deliver", deliver_webhooks,
        lambda run: (f"webhooks-deliver: {run.succeeded} delivered, {run.retried} to retry, "
                     f"{run.failed} failed") if run.sent else None),
    Job("mail", deliver_mail, _mail_line),
    Job("sqlite-checkpoint", checkpoint_sqlite, _checkpoint_line),
)
