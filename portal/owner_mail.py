"""The email to the new owner of a transferred account: who moved it to them and where to
sign in; when the transfer made their user (the email had none), the one-time link to set a
password first. Queued in the transfer's transaction, whichever of the two it is, so the
agency's answer is the same."""

from flask import current_app, render_template, url_for
from sqlalchemy.orm import Session

from portal import rules
from portal.models import Account, User
from portal.services import auth, outbox


def new_owner(session: Session, account: Account, agency_name: str, owner: User) -> None:
    base = current_app.config["EXTERNAL_BASE_URL"].rstrip("/")  # never the request's Host
    link = None
    if not auth.has_password(owner):
        token = auth.password_link_token(current_app.config["SECRET_KEY"], owner)
        link = base + url_for("auth.set_password", token=token)
    context = {"account": account, "agency_name": agency_name, "owner": owner,
               "link": link, "sign_in": base + url_for("auth.login"),
               "days": rules.PASSWORD_LINK_TTL.days}
    outbox.queue(session, to=owner.email, kind="transfer",
                 subject=f"You are now the owner of {account.name}",
                 text=render_template("mail/new_owner.txt", **context),
                 html=render_template("mail/new_owner.html", **context),
                 account_id=account.id)
