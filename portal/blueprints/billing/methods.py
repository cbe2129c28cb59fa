"""Payment Methods: add a card or a bank account, the pencil (Primary, Backup or neither),
remove. Each a dialog; a page without JavaScript."""

from flask import g, request

from portal.blueprints.billing import bp
from portal.blueprints.billing.settings import changed
from portal.blueprints.security import recent_signin_required
from portal.blueprints.views import CONFIRM, confirmed, own_billing, submit
from portal.errors import ConfirmationNeeded
from portal.extensions import db, payment_gateway
from portal.rendering import render
from portal.services import payment_methods
from portal.services.inputs import to_id

NEW, EDIT, REMOVE = "billing/method_new.html", "billing/method_edit.html", \
    "billing/method_remove.html"
SECRET_FIELDS = ("number", "cvc", "account_number")  # never echoed back into the page


def _to_settings(message: str):
    """Done: the Payment Methods section and Make a Payment's choice of method drawn again
    where they are, the dialog closed (htmx); else back to the page (issue 14)."""
    return changed(message, "methods_section", "payment_section")


@bp.route("/payment-methods/new-card", methods=["GET", "POST"])
@recent_signin_required
@own_billing
def new_card():
    return _new_method("card")


@bp.route("/payment-methods/new-ach", methods=["GET", "POST"])
@recent_signin_required
@own_billing
def new_ach():
    return _new_method("ach")


def _new_method(kind: str):
    if request.method == "GET":
        return render(NEW, "dialog", kind=kind, form={}, errors={})
    form = request.form

    def add():
        if kind == "card":
            return payment_methods.add_card(
                db.session, g.account, payment_gateway(), number=form.get("number", ""),
                exp_month=form.get("exp_month", ""), exp_year=form.get("exp_year", ""),
                cvc=form.get("cvc", ""), holder=form.get("holder", ""))
        return payment_methods.add_bank_account(
            db.session, g.account, payment_gateway(), routing=form.get("routing", ""),
            account_number=form.get("account_number", ""), holder=form.get("holder", ""))

    def added(method):
        role = {"primary": " as the Primary method", "backup": " as the Backup"}.get(
            method.role.value, ": use the pencil to make it Primary or Backup")
        return _to_settings(f"{method.label} was added{role}.")

    safe = {k: v for k, v in form.items() if k not in SECRET_FIELDS}
    return submit(add, lambda errors: render(NEW, "dialog", status=422, kind=kind, form=safe,
                                             errors=errors), added)


@bp.route("/payment-methods/<id:method_id>/edit", methods=["GET", "POST"])
@recent_signin_required
@own_billing
def edit_method(method_id: int):
    """The pencil: Primary, Backup or neither. Making a failing method (declined last time,
    or expired) Primary asks first, saying why."""
    method = payment_methods.get(db.session, g.account, method_id)

    def dialog(status=200, errors=None, warning=None):
        return render(EDIT, "dialog", status=status, errors=errors or {}, warning=warning,
                      method=payment_methods.get(db.session, g.account, method_id),
                      standing=payment_methods.standing(db.session, method))

    if request.method == "GET":
        return dialog()

    def saved(method):
        role = {"primary": "the Primary method", "backup": "the Backup"}.get(
            method.role.value, "neither Primary nor Backup")
        return _to_settings(f"{method.short_label} is now {role}.")

    try:
        return submit(
            lambda: payment_methods.set_role(db.session, g.account, method_id,
                                             request.form.get("role", ""),
                                             confirmed=confirmed(request.form)),
            lambda errors: dialog(422, errors), saved)
    except ConfirmationNeeded as e:
        db.session.rollback()
        return dialog(warning=e.message)


@bp.route("/payment-methods/<id:method_id>/remove", methods=["GET", "POST"])
@recent_signin_required
@own_billing
def remove_method(method_id: int):
    """Confirm; removing the Primary asks which method to promote (and, promoting a failing
    one, asks again saying why)."""
    method = payment_methods.get(db.session, g.account, method_id)
    methods, standing = payment_methods.listed(db.session, g.account)
    others = [m for m in methods if m.id != method.id]
    form = request.form

    def dialog(status=200, errors=None, warning=None):
        return render(REMOVE, "dialog", status=status, method=method, others=others,
                      standing=standing, errors=errors or {}, warning=warning,
                      promote=to_id(form.get("promote", "")))

    if request.method == "GET":
        return dialog()
    if not confirmed(form):
        return dialog(422, {"": "Removing needs the confirmation: nothing was changed."})
    try:
        return submit(
            lambda: payment_methods.remove(db.session, g.account, method_id,
                                           to_id(form.get("promote", "")),
                                           promote_confirmed=form.get("promote_confirm")
                                           == CONFIRM),
            lambda errors: dialog(422, errors),
            lambda _: _to_settings(f"{method.short_label} was removed. Its past "
                                   "payments stay in the payment history."))
    except ConfirmationNeeded as e:
        db.session.rollback()
        return dialog(warning=e.message)
