"""Account-scoped blueprints: /accounts/<account_id>/... checks login and tenancy once.

Every view of such a blueprint finds the account in g.account and the user's role in
g.access; an account the user does not reach is a 404, whatever its id.
"""

from flask import Blueprint, g, session
from flask_login import current_user

from portal.extensions import db, login_manager
from portal.services import access

# The largest id an Integer primary key holds (PostgreSQL's integer): a larger id in the URL
# is no account, a 404, rather than an out-of-range error from the database.
MAX_ACCOUNT_ID = 2**31 - 1


def account_blueprint(name: str, import_name: str, url_prefix: str = "") -> Blueprint:
    bp = Blueprint(name, import_name,
                   url_prefix=f"/accounts/<int(max={MAX_ACCOUNT_ID}):account_id>{url_prefix}")

    @bp.url_value_preprocessor
    def pull_account_id(endpoint, values):
        g.account_id = values.pop("account_id", None) if values else None

    @bp.url_defaults
    def add_account_id(endpoint, values):
        if "account_id" not in values and g.get("account") is not None:
            values["account_id"] = g.account.id

    @bp.before_request
    def load_account():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        g.access = access.account_for(db.session, current_user, g.account_id)
        g.account = g.access.account
        if session.get("account_id") != g.account.id:  # re-sign the cookie only on change
            session["account_id"] = g.account.id
        return None

    return bp
