"""Account security: the user's own sign-in security (/security) and the account's
"Account Security Features" overview (/accounts/<id>/security)."""

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, flash, request, session, url_for

from portal.rendering import safe_path, see_other
from portal.services import security
from portal.tenancy import account_blueprint

bp = Blueprint("security", __name__, url_prefix="/security")
account_bp = account_blueprint("account_security", __name__, "/security")


def recent_signin_required(view):
    """Ask for the password again before the view when the sign-in is older than
    rules.REAUTH_AFTER (changing a payment method, closing an account). A GET comes back to
    itself afterwards; a POST to the page it was sent from (its form is shown again)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if security.is_recent(session.get("auth_at")):
            return view(*args, **kwargs)
        if request.method == "GET":
            back = request.full_path.rstrip("?")
        else:
            back = None
            referrer = urlsplit(request.referrer or "")
            if referrer.netloc == request.host:
                back = safe_path(referrer.path + (f"?{referrer.query}" if referrer.query
                                                  else ""))
        flash("For your security, enter your password again to continue.", "info")
        return see_other(url_for("security.confirm_password", next=back))

    return wrapped


from portal.blueprints.security import routes  # noqa: E402,F401
