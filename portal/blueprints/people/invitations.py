"""The invitation link's page (no sign-in needed to open it).

GET  /invitations/<token>   who invited you to which account, as which role, and how to
                            accept: a name and password (a new user), "Sign in as <email>"
                            (an existing one), "Join" (signed in as the invited email), or
                            "you are signed in as someone else" (Sign out). Never consumes it.
POST /invitations/<token>   accept: as the signed-in user, or as a new user (then signed in)

Every answer carries Referrer-Policy: no-referrer and Cache-Control: no-store (the token is
in the URL), and each client address is rate-limited with the billing links' counter.
"""


from flask import flash, request, session, url_for
from flask_login import current_user, login_user

from billing_links.views import public_link_pages
from portal.blueprints.people import invitations_bp as bp
from portal.blueprints.people.routes import link_settings
from portal.blueprints.views import submit
from portal.clock import now as clock_now
from portal.extensions import db
from portal.rendering import render, see_other
from portal.services import access, people

PAGE = "people/accept.html"
PROBLEMS = {
    # reason: (status, title, what happened)
    "tampered": (404, "This invitation link isn't valid",
                 "The link is incomplete or was changed. Copy it again from the email, or ask "
                 "whoever invited you to send a new invitation."),
    "expired": (410, "This invitation has expired",
                "Invitations work for 7 days. Ask whoever invited you to send a new one."),
    "used": (410, "This invitation was already used",
             "Someone accepted it already. If that was you, sign in; if not, ask for a new "
             "invitation."),
    "revoked": (410, "This invitation no longer works",
                "It was revoked, or a newer invitation was sent. Use the newest email, or ask "
                "for a new invitation."),
    "closed": (410, "This account is closed", None),  # the error's message names it
}


public_link_pages(bp, "people/problem.html")


def _problem(error: people.InvitationError):
    db.session.rollback()
    status, title, message = PROBLEMS[error.reason]
    message = message or error.message
    return render("people/problem.html", status=status, title=title, message=message,
                  reason=error.reason)


def _page(opened, token: str, status: int = 200, form=None, errors=None):
    return render(PAGE, "accept_form", status=status, opened=opened, token=token,
                  form=form or {}, errors=errors or {}, labels=people.ROLE_LABELS,
                  role_help=people.ROLE_HELP)


@bp.get("/invitations/<token>")
def show(token: str):
    try:
        opened = people.open_invitation(db.session, link_settings(), token)
    except people.InvitationError as e:
        return _problem(e)
    return _page(opened, token)


def _joined(account, user, new: bool):
    """Signed in (a new user: a fresh session), on the account just joined."""
    if new:
        session.clear()
        login_user(user, remember=False)
        now = clock_now().timestamp()
        session["auth_at"] = now
        session["seen_at"] = now
    session["several_accounts"] = access.reaches_several(db.session, user)
    session["account_id"] = account.id
    flash(f"Welcome to {account.name}.", "success")
    return see_other(url_for("home.index"))


@bp.post("/invitations/<token>")
def accept(token: str):
    settings = link_settings()
    try:
        opened = people.open_invitation(db.session, settings, token)
    except people.InvitationError as e:
        return _problem(e)
    form = request.form

    def refused(message):
        return _page(opened, token, 403, form={"name": form.get("name", "")},
                     errors={"": message})

    try:
        if current_user.is_authenticated:
            user = current_user._get_current_object()
            return submit(lambda: people.accept_existing(db.session, settings, token, user),
                          None, lambda _m: _joined(opened.account, user, new=False), refused)
        return submit(
            lambda: people.accept_new(db.session, settings, token, form.get("name", ""),
                                      form.get("password", ""), form.get("again", "")),
            lambda errors: _page(opened, token, 422, form={"name": form.get("name", "")},
                                 errors=errors),
            lambda done: _joined(opened.account, done[0], new=True), refused)
    except people.InvitationError as e:
        return _problem(e)


