"""Settings → Accounts, the Billing column: the pencil's dialog, Remove from Agency Billing
("Email Client" sends the customer a one-time link), Resend, Cancel request, and Add to
Agency Billing. Agency owners and admins only."""

from flask import abort, current_app, flash, g, request, url_for
from flask_login import current_user

from billing_links import emails, links
from billing_links import service as link_service
from portal.blueprints.accounts import bp
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.rendering import render, see_other
from portal.services.money import dollars
from portal.tenancy import MAX_ACCOUNT_ID, require_admin

SUB = f"/sub-accounts/<int(max={MAX_ACCOUNT_ID}):sub_id>/billing"
TEMPLATE = "accounts/billing_mode.html"


def _sub(sub_id: int):
    if not g.account.is_agency:
        abort(404)
    require_admin()
    return link_service.sub_of(db.session, g.account, sub_id)


def _back(message: str, category: str = "success"):
    flash(message, category)
    return see_other(url_for("accounts.index"))


def _dialog(sub, status: int = 200, form=None, errors=None):
    pending = link_service.pending_for(db.session, [sub.id]).get(sub.id)
    return render(TEMPLATE, "dialog", status=status, sub=sub, pending=pending,
                  form=form or {}, errors=errors or {},
                  balance=sub.balance_cents)


@bp.get(SUB)
def billing_mode(sub_id: int):
    """The pencil in the Billing column (a dialog; a page without JavaScript)."""
    return _dialog(_sub(sub_id))


@bp.post(f"{SUB}/remove")
def remove_from_agency_billing(sub_id: int):
    """"Email Client": a pending request and the email with the secure link."""
    sub = _sub(sub_id)
    form = request.form
    try:
        billing_request, url = link_service.request_removal(
            db.session, links.settings(current_app), g.account, sub, current_user,
            form.get("email", ""), form.get("amount", ""), form.get("message", ""))
        emails.request(db.session, g.account, sub, billing_request, url)
    except ValidationFailed as e:
        db.session.rollback()
        return _dialog(sub, 422, form, e.errors)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    return _back(f"Emailed {billing_request.email} a secure link to pay at least "
                 f"{dollars(billing_request.amount_cents)} and take {sub.name} off agency "
                 "billing. It stays on agency billing until they do.")


@bp.post(f"{SUB}/resend")
def resend_billing_link(sub_id: int):
    sub = _sub(sub_id)
    try:
        billing_request, url = link_service.resend(
            db.session, links.settings(current_app), g.account, sub, current_user)
        emails.request(db.session, g.account, sub, billing_request, url)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    return _back(f"Sent {billing_request.email} a new link for {sub.name}; the earlier link no "
                 "longer works.")


@bp.post(f"{SUB}/cancel-request")
def cancel_billing_request(sub_id: int):
    sub = _sub(sub_id)
    try:
        canceled = link_service.cancel_request(db.session, g.account, sub, current_user)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    return _back(f"Canceled the billing request to {canceled.email}: its link no longer "
                 f"works. {sub.name} stays on agency billing.")


@bp.post(f"{SUB}/add")
def add_to_agency_billing(sub_id: int):
    sub = _sub(sub_id)
    if request.form.get("confirm") != "yes":
        return _dialog(sub, 422, errors={"": "Adding to agency billing needs the "
                                             "confirmation: nothing was changed."})
    try:
        moved = link_service.add_to_agency_billing(db.session, g.account, sub, current_user)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    money = dollars(abs(moved))
    detail = (f" Its available balance of {money} was added to {g.account.name}'s balance."
              if moved > 0 else
              f" Its balance of -{money} was moved to {g.account.name}'s balance."
              if moved < 0 else "")
    return _back(f"{sub.name} is on agency billing: its usage is paid from "
                 f"{g.account.name}'s balance. Its payment methods were removed.{detail}")
