"""The outbox: the list, one message, its HTML part, its attachments."""

from flask import abort, make_response

from portal.blueprints.dev import bp
from portal.extensions import db
from portal.mail import outbox
from portal.models import OutboxMessage
from portal.rendering import render


@bp.get("/outbox")
def outbox_index():
    from portal.mail import delivery

    return render("dev/outbox.html", messages=outbox.latest(db.session),
                  failed=delivery.failed_count(db.session))


@bp.get("/outbox/<id:message_id>")
def outbox_show(message_id: int):
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    from sqlalchemy import select

    from portal.models import OutboxAttachment

    attachments = db.session.execute(
        select(OutboxAttachment.id, OutboxAttachment.filename, OutboxAttachment.content_type)
        .where(OutboxAttachment.message_id == message.id)).all()
    return render("dev/outbox_message.html", message=message, attachments=attachments)


@bp.get("/outbox/<id:message_id>/html")
def outbox_html(message_id: int):
    """The HTML part on its own, for the page's sandboxed iframe."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or not message.html_body:
        abort(404)
    response = make_response(message.html_body)
    # Emails style themselves inline; nothing in one runs, loads or posts. Only the outbox
    # page (same origin) may frame it.
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/outbox/<id:message_id>/attachments/<id:attachment_id>")
def outbox_attachment(message_id: int, attachment_id: int):
    from portal.models import OutboxAttachment

    attachment = db.session.get(OutboxAttachment, attachment_id)
    if attachment is None or attachment.message_id != message_id:
        abort(404)
    response = make_response(attachment.data)
    response.headers["Content-Type"] = attachment.content_type
    response.headers["Content-Disposition"] = f'inline; filename="{attachment.filename}"'
    return response
