"""The dev outbox (/dev/outbox): the emails the portal queued, readable without a mail
server. Registered only when DEV_OUTBOX is on (`make run`, tests), never in production: it
shows everyone's mail to anyone who can reach the app."""

from flask import Blueprint, abort, make_response

from portal.extensions import db
from portal.models import OutboxMessage
from portal.rendering import render
from portal.services import outbox

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.get("/outbox")
def outbox_index():
    return render("dev/outbox.html", messages=outbox.latest(db.session))


@bp.get("/outbox/<int(max=2147483647):message_id>")
def outbox_show(message_id: int):
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    return render("dev/outbox_message.html", message=message)


@bp.get("/outbox/<int(max=2147483647):message_id>/html")
def outbox_html(message_id: int):
    """The HTML part on its own, for the page's sandboxed iframe."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or not message.html_body:
        abort(404)
    response = make_response(message.html_body)
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'")
    return response
