"""Queue emails in the outbox (delivery reads it; the dev outbox page shows it)."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.models import OutboxMessage
from portal.transactions import begin_write

PER_PAGE = 50


def queue(session: Session, *, to: str, subject: str, text: str, html: str = "",
          kind: str, account_id: int | None = None,
          dedupe_key: str | None = None) -> OutboxMessage:
    """Add a message; with a dedupe key, the same notice is queued once (the first one is
    returned again)."""
    begin_write(session)
    if dedupe_key is not None:
        existing = session.scalar(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    message = OutboxMessage(to_address=to, subject=subject[:200], text_body=text,
                            html_body=html, kind=kind, account_id=account_id,
                            dedupe_key=dedupe_key)
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(OutboxMessage).where(
            OutboxMessage.dedupe_key == dedupe_key))
        if existing is None:
            raise
        return existing
    return message


def latest(session: Session, limit: int = PER_PAGE) -> list[OutboxMessage]:
    return list(session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)))
