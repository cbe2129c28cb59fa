"""The 3-D Secure link's public page (issue 16; billing_links/authenticate.py), on the billing
links' blueprint (its rate limit and its no-referrer, no-store headers apply):

GET  /authenticate/<token>           whose account, which card, the recharge its bank asked
                                     about, what is due now, and the button; a used link
                                     says what it did (reloading changes nothing)
POST /authenticate/<token>           use it: what is due is decided now; the bank's
                                     challenge runs on the page when it asks, else 303 back
POST /authenticate/<token>/confirm   back from the challenge: settled from the processor,
                                     303 back to the page

No sign-in (the email's recipients may not be signed in); the forms carry the CSRF token.
"""

from flask import current_app, url_for

import billing_links
from billing_links import authenticate, tokens
from billing_links.task_views import PROBLEMS
from billing_links.views import bp
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.rendering import render, see_other

PAGE = "billing_links/authenticate.html"


@bp.record_once
def _wire(state) -> None:
    """When create_app registers the blueprint: the settlement hook, and the link's URL for
    the emails (notices.authentication_needed)."""
    authenticate.wire()
    state.app.jinja_env.globals["authenticate_url"] = link_url


def link_url(request) -> str:
    return authenticate.link_url(billing_links.settings(current_app), request)


def _settings():
    return billing_links.settings(current_app)


def _problem(error: tokens.LinkError):
    db.session.rollback()
    status, title, message = PROBLEMS[error.reason]
    if error.reason == "revoked":
        message = ("A newer link was sent for this card, or the card was removed, or the "
                   "account was closed. Use the newest email, or update the card in Billing "
                   "Settings.")
    elif error.reason == "expired":
        message = ("These links work for 7 days. The next auto recharge tries the card "
                   "again; to confirm it now, sign in and make a payment with it in Billing "
                   "Settings.")
    return render("billing_links/problem.html", status=status, title=title, message=message,
                  reason=error.reason)


@bp.get("/authenticate/<token>")
@card_entry_page  # the processor's challenge: its CSP
def authenticate_show(token: str):
    try:
        opened = authenticate.open_link(db.session, _settings(), token)
    except authenticate.LinkUsed as e:
        done = authenticate.outcome(db.session, _settings(), token)
        if done is None:
            return _problem(e)
        return render(PAGE, opened=done, token=token)
    except tokens.LinkError as e:
        return _problem(e)
    return render(PAGE, opened=opened, token=token)


@bp.post("/authenticate/<token>")
@card_entry_page
def authenticate_use(token: str):
    try:
        opened, secret = authenticate.use(db.session, payment_gateway(), _settings(), token)
    except authenticate.LinkUsed:
        db.session.rollback()
        return see_other(url_for("billing_links.authenticate_show", token=token))
    except tokens.LinkError as e:
        return _problem(e)
    if secret:  # the bank's challenge, then the confirm form
        return render(PAGE, opened=opened, token=token, action=secret,
                      confirm_url=url_for("billing_links.authenticate_confirm", token=token))
    return see_other(url_for("billing_links.authenticate_show", token=token))


@bp.post("/authenticate/<token>/confirm")
@card_entry_page
def authenticate_confirm(token: str):
    """Back from the bank's challenge (the browser sends nothing but the link and its CSRF
    token): the answer is the processor's."""
    try:
        authenticate.confirm(db.session, payment_gateway(), _settings(), token)
    except tokens.LinkError as e:
        return _problem(e)
    return see_other(url_for("billing_links.authenticate_show", token=token))
