"""Settings → Users (the account's people and invitations, for owners and admins) and the
public invitation page (/invitations/<token>: accept as a new user or as the signed-in one)."""

from flask import Blueprint

from portal.tenancy import account_blueprint

bp = account_blueprint("people", __name__, "/users")
invitations_bp = Blueprint("invitations", __name__)

from portal.blueprints.people import invitations, routes  # noqa: E402,F401
