"""The landing redirect, the account switcher and per-user preferences."""

from flask import redirect, request, session, url_for
from flask_login import current_user, login_required

from portal.blueprints.home import bp
from portal.errors import NotFound
from portal.extensions import db
from portal.rendering import render, safe_path, see_other
from portal.services import access, lifecycle


@bp.get("/")
@login_required
def index():
    account_id = session.get("account_id")
    if account_id is not None:
        try:
            reached = access.account_for(db.session, current_user, account_id)
            # not one closed for good since (its pages answer 410, with a link back here)
            if not lifecycle.is_closed_for_good(reached.account):
                return redirect(url_for("accounts.show", account_id=account_id))
        except NotFound:
            pass
        session.pop("account_id", None)
    account = access.default_account(db.session, current_user)
    if account is None:
        return render("home/no_account.html")
    return redirect(url_for("accounts.show", account_id=account.id))


@bp.get("/switch")
@login_required
def switcher():
    """The account switcher's list (an htmx fragment, or a page without JavaScript)."""
    q = request.args.get("q", "")
    accounts = access.switcher_accounts(db.session, current_user, q)
    return render("home/switch.html", "results", accounts=accounts, q=q)


@bp.post("/preferences/dark-mode")
@login_required
def dark_mode():
    current_user.dark_mode = request.form.get("dark_mode") == "on"
    db.session.commit()
    return see_other(safe_path(request.form.get("next")) or url_for("home.index"))
