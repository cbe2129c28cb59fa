"""Delivering the outbox over SMTP (when MAIL_SERVER is set; otherwise the dev outbox page
shows it): `run` is the jobs' step, `retry` is `flask mail retry`.

Each message is claimed before it is sent: a conditional update moves its next attempt a
lease ahead, so of several job runs (or instances) only one sends it; on PostgreSQL the
candidates are also read with FOR UPDATE SKIP LOCKED. A message that fails is retried with
backoff (1, 2, 4, 8 minutes) and after 5 attempts is marked failed, with the error kept and
shown. A message that can't be composed (an address that is not one valid address, say) is
marked failed at once with the reason: it is never retried, and never stops the messages
after it. Failed messages can be queued again (`flask mail retry`). Every message has a
stable Message-ID, so a receiver can drop a duplicate should a crash come between the
server's acceptance and our record of it.
"""

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from functools import partial

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import MailStatus, OutboxAttachment, OutboxMessage
from portal.services.inputs import clean_email
from portal.transactions import begin_write, retry_when_locked

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
BATCH = 50


@dataclass(frozen=True)
class MailConfig:
    server: str
    port: int = 25
    username: str = ""
    password: str = ""
    use_tls: bool = False
    sender: str = "Account Portal <billing@portal.invalid>"
    timeout: float = 10.0

    @classmethod
    def from_app(cls, config) -> "MailConfig | None":
        if not config.get("MAIL_SERVER"):
            return None
        return cls(config["MAIL_SERVER"], int(config.get("MAIL_PORT") or 25),
                   config.get("MAIL_USERNAME") or "", config.get("MAIL_PASSWORD") or "",
                   bool(config.get("MAIL_USE_TLS")),
                   config.get("MAIL_DEFAULT_SENDER") or cls.sender)


@dataclass
class Delivery:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=2 ** max(0, attempts - 1))


def run(session: Session, app_config, now: datetime | None = None) -> Delivery | None:
    """The jobs' delivery: send what is due with the app's mail settings; None when no SMTP
    server is configured (the outbox stays readable in the dev outbox page)."""
    config = MailConfig.from_app(app_config)
    if config is None:
        return None
    return deliver(session, config, now)


def deliver(session: Session, config: MailConfig, now: datetime | None = None) -> Delivery:
    """Send what is due. Commits after each message."""
    now = now or clock_now()
    due = (select(OutboxMessage.id).where(
        OutboxMessage.status == MailStatus.PENDING,
        or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now))
        .order_by(OutboxMessage.id).limit(BATCH))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    session.commit()
    result = Delivery()
    for message_id in ids:
        # The claim, and the outcome after the mail server answered, are tried again when
        # SQLite's write lock stayed busy (each is a whole transaction, nothing outside the
        # database): a sent message left unmarked would be sent again when its lease ran out.
        if not retry_when_locked(session, partial(_claim, session, message_id, now),
                                 f"outbox message {message_id}: claim"):
            continue
        message = session.get(OutboxMessage, message_id)
        attachments = list(session.scalars(select(OutboxAttachment).where(
            OutboxAttachment.message_id == message_id)))
        try:
            email = compose(message, attachments, config.sender)
        except Exception as e:  # the same message would fail the same way again
            log.warning("outbox message %s can't be composed: %s", message_id, e)
            _unsendable(session, message_id, e)
            session.commit()
            result.failed += 1
            continue
        session.commit()  # nothing held open while talking to the mail server
        try:
            _send(config, email)
        except Exception as e:  # refused, down, or a bug: retried with backoff
            if not isinstance(e, smtplib.SMTPException | OSError):
                log.exception("outbox message %s: unexpected error while sending", message_id)
            attempts = retry_when_locked(
                session, partial(_failed, session, message_id, f"{type(e).__name__}: {e}", now),
                f"outbox message {message_id}: failed")
            if attempts >= MAX_ATTEMPTS:
                result.failed += 1
            else:
                result.retried += 1
        else:
            retry_when_locked(session, partial(_sent, session, message_id, now),
                              f"outbox message {message_id}: sent")
            result.sent += 1
    return result


def _sent(session: Session, message_id: int, now: datetime) -> None:
    begin_write(session)
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                    .values(status=MailStatus.SENT, sent_at=now, last_error="",
                            attempts=OutboxMessage.attempts + 1))
    session.commit()


def _claim(session: Session, message_id: int, now: datetime) -> bool:
    # The lease runs from the claim, not from the start of a run that may be long.
    now = max(now, clock_now())
    begin_write(session)
    won = session.execute(update(OutboxMessage).where(
        OutboxMessage.id == message_id, OutboxMessage.status == MailStatus.PENDING,
        or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now))
        .values(next_attempt_at=now + LEASE)).rowcount
    session.commit()
    return won == 1


def _failed(session: Session, message_id: int, error: str, now: datetime) -> int:
    """Count a failed attempt (retried later, or failed for good); commits."""
    begin_write(session)
    message = session.get(OutboxMessage, message_id)
    session.refresh(message)
    attempts = message.attempts + 1
    values = {"attempts": attempts, "last_error": error[:300]}
    if attempts >= MAX_ATTEMPTS:
        values["status"] = MailStatus.FAILED
    else:
        values["next_attempt_at"] = now + backoff(attempts)
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                    .values(**values))
    session.commit()
    return attempts


def _unsendable(session: Session, message_id: int, error: Exception) -> None:
    """Failed at once, with the reason: no later attempt could compose it either."""
    begin_write(session)
    reason = error.message if isinstance(error, ValidationFailed) else \
        f"{type(error).__name__}: {error}"
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
        status=MailStatus.FAILED, attempts=OutboxMessage.attempts + 1,
        last_error=f"Could not compose the message: {reason}"[:300]))


def compose(message: OutboxMessage, attachments: list[OutboxAttachment],
            sender: str) -> EmailMessage:
    """The message as sent. Raises when it can't be: ValidationFailed when the recipient is
    not one valid address (it was checked when typed; this is the last line), ValueError for
    a header the email package refuses."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = clean_email(message.to_address, "to", f"{message.to_address!r} is not one "
                                                        "valid email address.")
    email["Subject"] = message.subject
    email["Date"] = formatdate(message.created_at.timestamp(), usegmt=True)
    # Stable: the same message sent again carries the same id.
    email["Message-ID"] = f"<outbox-{message.id}.{message.created_at:%Y%m%d%H%M%S}@portal.invalid>"
    email.set_content(message.text_body)
    if message.html_body:
        email.add_alternative(message.html_body, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        email.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                             filename=attachment.filename)
    return email


def _send(config: MailConfig, email: EmailMessage) -> None:
    with smtplib.SMTP(config.server, config.port, timeout=config.timeout) as smtp:
        if config.use_tls:
            smtp.starttls()
        if config.username:
            smtp.login(config.username, config.password)
        smtp.send_message(email)


# --------------------------------------------------------------- failed mail

def failed_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == MailStatus.FAILED)) or 0


def retry(session: Session, message_id: int | None = None) -> list[int]:
    """Queue failed mail again (`flask mail retry ID` / `--all-failed`): pending, due now,
    with a fresh count of attempts. One message must exist and have failed; without an id,
    every failed message. Returns the ids requeued."""
    begin_write(session)
    if message_id is not None:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            raise NotFound(f"No outbox message #{message_id}.")
        if message.status != MailStatus.FAILED:
            raise NotAllowed(f"Message #{message_id} is {message.status.value}: only failed "
                             "messages are queued again.")
        ids = [message_id]
    else:
        ids = list(session.scalars(select(OutboxMessage.id).where(
            OutboxMessage.status == MailStatus.FAILED).order_by(OutboxMessage.id)))
    if ids:
        session.execute(update(OutboxMessage).where(
            OutboxMessage.id.in_(ids), OutboxMessage.status == MailStatus.FAILED)
            .values(status=MailStatus.PENDING, attempts=0, next_attempt_at=None,
                    last_error=""))
    return ids

