"""Settings → Accounts, the Billing column: the pencil's dialog, Remove from Agency Billing
("Email Client" sends the customer a one-time link), Resend, Cancel request, and Add to
Agency Billing. Agency owners and admins only."""

from flask import current_app, g, request, url_for
from flask_login import current_user

import billing_links
from billing_links import service as link_service
from billing_links import tasks
from billing_links.models import TaskKind
from portal.blueprints.accounts import bp
from portal.blueprints.views import admin_required, agency_only, back, confirmed, submit
from portal.extensions import db
from portal.mail import notices
from portal.rendering import render
from portal.services.money import dollars

SUB = "/sub-accounts/<id:sub_id>/billing"
TEMPLATE = "accounts/billing_mode.html"


def _back(message: str, category: str = "success"):
    return back(url_for("accounts.index"), message, category)


def _refused(message: str):
    return _back(message, "error")


def _dialog(sub, status: int = 200, form=None, errors=None):
    pending = link_service.pending_for(db.session, [sub.id]).get(sub.id)
    move = (None if sub.is_agency_billed or sub.is_canceled
            else link_service.agency_move(db.session, g.account, sub))
    return render(TEMPLATE, "dialog", status=status, sub=sub, pending=pending,
                  form=form or {}, errors=errors or {},
                  balance=sub.balance_cents, move=move,
                  task_links=tasks.pending_for(db.session, sub),
                  client_email=tasks.last_customer_email(db.session, sub) or "")


def _sub(sub_id: int):
    return link_service.sub_of(db.session, g.account, sub_id)


@bp.get(SUB)
@agency_only
@admin_required
def billing_mode(sub_id: int):
    """The pencil in the Billing column (a dialog; a page without JavaScript)."""
    return _dialog(_sub(sub_id))


@bp.post(f"{SUB}/remove")
@agency_only
@admin_required
def remove_from_agency_billing(sub_id: int):
    """"Email Client": a pending request and the email with the secure link."""
    sub = _sub(sub_id)
    form = request.form

    def request_removal():
        billing_request, url = link_service.request_removal(
            db.session, billing_links.settings(current_app), g.account, sub, current_user,
            form.get("email", ""), form.get("amount", ""), form.get("message", ""))
        notices.link_request(db.session, g.account, sub, billing_request, url)
        return billing_request

    return submit(
        request_removal, lambda errors: _dialog(sub, 422, form, errors),
        lambda billing_request: _back(
            f"Emailed {billing_request.email} a secure link to pay at least "
            f"{dollars(billing_request.amount_cents)} and take {sub.name} off agency "
            "billing. It stays on agency billing until they do."),
        refused=_refused)


@bp.post(f"{SUB}/resend")
@agency_only
@admin_required
def resend_billing_link(sub_id: int):
    sub = _sub(sub_id)

    def resend():
        billing_request, url = link_service.resend(
            db.session, billing_links.settings(current_app), g.account, sub, current_user)
        notices.link_request(db.session, g.account, sub, billing_request, url)
        return billing_request

    return submit(resend, None, lambda billing_request: _back(
        f"Sent {billing_request.email} a new link for {sub.name}; the earlier link no "
        "longer works."), refused=_refused)


@bp.post(f"{SUB}/cancel-request")
@agency_only
@admin_required
def cancel_billing_request(sub_id: int):
    sub = _sub(sub_id)
    return submit(
        lambda: link_service.cancel_request(db.session, g.account, sub, current_user), None,
        lambda canceled: _back(f"Canceled the billing request to {canceled.email}: its link "
                               f"no longer works. {sub.name} stays on agency billing."),
        refused=_refused)


@bp.post(f"{SUB}/add")
@agency_only
@admin_required
def add_to_agency_billing(sub_id: int):
    sub = _sub(sub_id)
    if not confirmed(request.form):
        return _dialog(sub, 422, errors={"": "Adding to agency billing needs the "
                                             "confirmation: nothing was changed."})
    told = link_service.agency_move(db.session, g.account, sub).told
    return submit(
        lambda: link_service.add_to_agency_billing(db.session, g.account, sub, current_user),
        None, lambda moved: _added(sub, moved, told), refused=_refused)


def _added(sub, moved: int, told: list[str]):
    agency = g.account.name
    money = dollars(abs(moved))
    detail = (f" {sub.name}'s available balance of {money} moved to {agency}'s balance."
              if moved > 0 else
              f" {agency} took on {sub.name}'s debt of {money}: it was taken from {agency}'s "
              "balance." if moved < 0 else "")
    return _back(f"{sub.name} is on agency billing: its usage is paid from {agency}'s "
                 f"balance. Its payment methods were removed and its auto recharge is off."
                 f"{detail} Its payment history, receipts and billing logs stay readable on "
                 "its Billing Settings."
                 + (f" Emailed {', '.join(told)}." if told else ""))


# --------------------------------------------------------------- single-task links (issue 15)

def _ask(sub_id: int, kind: TaskKind):
    sub = _sub(sub_id)
    form = request.form
    # The form's fields are prefixed (ask_card_email, ask_pay_email, ask_pay_amount): the two
    # forms share the dialog, and an error shows beside the form it belongs to.
    prefix = f"ask_{kind.value}_"
    return submit(
        lambda: tasks.issue(db.session, billing_links.settings(current_app), g.account, sub,
                            current_user, kind, form.get(f"{prefix}email", ""),
                            form.get(f"{prefix}amount"))[0],
        lambda errors: _dialog(sub, 422, form, {f"{prefix}{k}": v for k, v in errors.items()}),
        lambda link: _back(
            f"Emailed {link.email} a secure link to update {sub.name}'s card; the new card "
            "becomes its Primary." if kind == TaskKind.CARD else
            f"Emailed {link.email} a secure link to pay {dollars(link.amount_cents)} into "
            f"{sub.name}'s balance."),
        refused=_refused)


@bp.post(f"{SUB}/ask-card")
@agency_only
@admin_required
def ask_client_card(sub_id: int):
    """"Ask the client to update their card": a one-time card-update link, emailed."""
    return _ask(sub_id, TaskKind.CARD)


@bp.post(f"{SUB}/ask-payment")
@agency_only
@admin_required
def ask_client_payment(sub_id: int):
    """"Ask the client to pay": a one-time payment link for an amount, emailed."""
    return _ask(sub_id, TaskKind.PAY)
