"""The dev outbox (/dev/outbox): the emails the portal queued, readable without a mail
server. Registered only when DEV_OUTBOX is on (`make run`, tests), never in production: it
shows everyone's mail to anyone who can reach the app."""

from flask import Blueprint

bp = Blueprint("dev", __name__, url_prefix="/dev")

from portal.blueprints.dev import routes  # noqa: E402,F401
