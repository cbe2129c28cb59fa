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
    update before the statement is made, so two runs at once send it once."""
    now = now or clock_now()
    sent = 0
    for schedule_id in list(session.scalars(select(StatementSchedule.id)
                                            .order_by(StatementSchedule.id))):
        schedule = session.get(StatementSchedule, schedule_id)
        if schedule is None:
            continue
        period = statements.claim_due(session, schedule, now)
        if period is None:
            session.rollback()
            continue
        account = session.get(Account, schedule.account_id)
        if account.is_canceled or not billing.has_own_billing(account):
            session.commit()  # the period is skipped, not retried forever
            continue
        built = statements.build(session, account, *period)
        # Outside a request: the template's links are built against the external address.
        with current_app.test_request_context(base_url=current_app.config["EXTERNAL_BASE_URL"]):
            html = render_template("billing/statement.html", statement=built,
                                   settings=billing.settings_for(session, account))
        notices.statement(session, account, built, schedule.recipient, pdf.render(html),
                          dedupe_key=f"statement:{schedule.id}:{period[0]:%Y-%m-%d}")
        session.commit()
        sent += 1
    return sent


def deliver_mail(session: Session, now: datetime | None = None) -> mail.Delivery | None:
    config = mail.MailConfig.from_app(current_app.config)
    if config is None:
        return None  # no SMTP server: the outbox stays readable in the dev outbox page
    return mail.deliver(session, config, now)
