"""Account-scoped blueprints: /accounts/<account_id>/... checks login and tenancy once.

Every view of such a blueprint finds the account in g.account and the user's role in
g.access; an account the user does not reach is a 404, whatever its id. An account closed
more than 60 days ago answers every page with "closed" (410). A canceled account is
read-only: a state-changing request is refused unless its view is marked
@allowed_when_canceled (reactivate, support requests). What the user's role may open is the
matrix in portal/roles.py, checked here for every view before it runs (403, or a billing
user sent from the front page to Billing Settings).
"""

from flask import Blueprint, current_app, flash, g, request, session, url_for
from flask_login import current_user

from portal import roles
from portal.errors import NotAllowed
from portal.extensions import db, login_manager
from portal.rendering import is_partial, see_other
from portal.services import access, lifecycle, security

# Ids past a 32-bit integer are not ids (and overflow PostgreSQL's INTEGER): a 404.
MAX_ACCOUNT_ID = 2**31 - 1
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def allowed_when_canceled(view):
    """Mark a state-changing view that a canceled account may still use."""
    view.allowed_when_canceled = True
    return view


def require_admin() -> None:
    """Owners and admins (of the account, or of its agency) only: the matrix's SETTINGS."""
    require(roles.Can.SETTINGS)


def require(capability: roles.Can) -> None:
    """The user's role on g.account has `capability` (portal/roles.py), else 403."""
    if not roles.can(g.access.role, capability):
        raise NotAllowed(roles.REFUSED[capability])


def may(endpoint: str) -> bool:
    """Whether the user's role on g.account opens `endpoint` (the matrix the guard reads):
    a template shows a link or button only when it leads somewhere the user may go."""
    access_ = g.get("access")
    return roles.allows(access_.role if access_ is not None else None, endpoint)


def allowed_links(group):
    """The main menu's (heading, links) with only the links whose page the user's role on
    the account opens; each link is (label, url, current, endpoint). The menu (_nav.html)
    drops a group left empty."""
    head, links = group
    return head, [link for link in links if may(link[3])]


def check_role(endpoint: str | None):
    """The role matrix's guard for an account page: None when the role may open it; a
    redirect to Billing Settings for a billing user on the front page; else NotAllowed."""
    if roles.allows(g.access.role, endpoint):
        return None
    home = roles.HOME[g.access.role]
    if endpoint == "accounts.show" and request.method in SAFE_METHODS and home != endpoint:
        return see_other(url_for(home, account_id=g.account.id))
    raise NotAllowed(roles.refusal(endpoint))


def account_blueprint(name: str, import_name: str, url_prefix: str = "") -> Blueprint:
    bp = Blueprint(
        name, import_name,
        url_prefix=f"/accounts/<id:account_id>{url_prefix}",
    )

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
        # A full page's header shows the agent-status select: its statuses come with the
        # account, in the same query (htmx partials and posts don't render the header).
        g.access = access.account_for(db.session, current_user, g.account_id,
                                      with_statuses=request.method == "GET" and not is_partial())
        g.account = g.access.account
        lifecycle.check_open(g.account)
        refused = check_role(request.endpoint)
        if refused is not None:
            return refused
        if security.account_requires(g.account) and not current_user.has_two_factor:
            flash(f"{g.account.name} requires two-factor sign-in. Set it up to continue.",
                  "info")
            return see_other(url_for("security.two_factor", next=request.full_path.rstrip("?")
                                     if request.method == "GET" else None))
        if request.method not in SAFE_METHODS and g.account.is_canceled:
            view = current_app.view_functions.get(request.endpoint)
            if not getattr(view, "allowed_when_canceled", False):
                raise NotAllowed(
                    f"{g.account.name} is canceled: you can read and export its data, but "
                    "not change it. Reactivate it to make changes."
                )
        if session.get("account_id") != g.account.id:  # re-sign the cookie only on change
            session["account_id"] = g.account.id
        return None

    return bp
