"""The scheduled jobs that render templates (statements) or talk to a mail server; run by
`flask jobs run` beside the services' own jobs (charge retries, fees, purges)."""

from datetime import datetime

from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import notices, pdf
from portal.clock import now as clock_now
from portal.models import Account, StatementSchedule
from portal.services import billing, mail, statements


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
        built = statements.build(session, account, *period)
        # Outside a request: the template's links are built against the external address.
        with current_app.test_request_context(base_url=current_app.config["EXTERNAL_BASE_URL"]):
            html = render_template("billing/statement.html", statement=built,
                                   settings=billing.settings_for(session, account))
        document = pdf.render(html)
        if statements.claim_due(session, schedule, now) != period:
            session.rollback()  # another run sent this period meanwhile
            continue
        notices.statement(session, account, built, schedule.recipient, document,
                          dedupe_key=f"statement:{schedule.id}:{period[0]:%Y-%m-%d}")
        session.commit()
        sent += 1
    return sent


def deliver_mail(session: Session, now: datetime | None = None) -> mail.Delivery | None:
    config = mail.MailConfig.from_app(current_app.config)
    if config is None:
        return None  # no SMTP server: the outbox stays readable in the dev outbox page
    return mail.deliver(session, config, now)
