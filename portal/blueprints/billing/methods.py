"""Payment Methods: add a card or a bank account, the pencil (Primary, Backup or neither),
remove. Each a dialog; a page without JavaScript."""

from flask import flash, g, request, url_for

from portal.blueprints.billing import bp
from portal.blueprints.billing.settings import own_billing
from portal.blueprints.security import recent_signin_required
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.rendering import render, see_other
from portal.services import payment_methods
from portal.services.inputs import to_id
from portal.tenancy import MAX_ACCOUNT_ID

ID = f"<int(max={MAX_ACCOUNT_ID}):method_id>"


@bp.route("/payment-methods/new-card", methods=["GET", "POST"])
@recent_signin_required
def new_card():
    return _new_method("card")


@bp.route("/payment-methods/new-ach", methods=["GET", "POST"])
@recent_signin_required
def new_ach():
    return _new_method("ach")


def _new_method(kind: str):
    own_billing()
    template = "billing/method_new.html"
    if request.method == "GET":
        return render(template, "dialog", kind=kind, form={}, errors={})
    form = request.form
    try:
        if kind == "card":
            method = payment_methods.add_card(
                db.session, g.account, payment_gateway(), number=form.get("number", ""),
                exp_month=form.get("exp_month", ""), exp_year=form.get("exp_year", ""),
                cvc=form.get("cvc", ""), holder=form.get("holder", ""))
        else:
            method = payment_methods.add_bank_account(
                db.session, g.account, payment_gateway(), routing=form.get("routing", ""),
                account_number=form.get("account_number", ""), holder=form.get("holder", ""))
    except ValidationFailed as e:
        db.session.rollback()
        # Never echo the card number or CVC back into the page.
        safe = {k: v for k, v in form.items() if k not in ("number", "cvc", "account_number")}
        return render(template, "dialog", status=422, kind=kind, form=safe, errors=e.errors)
    db.session.commit()
    role = {"primary": " as the Primary method", "backup": " as the Backup"}.get(
        method.role.value, ": use the pencil to make it Primary or Backup")
    flash(f"{method.label} was added{role}.", "success")
    return see_other(url_for("billing.index"))


@bp.route(f"/payment-methods/{ID}/edit", methods=["GET", "POST"])
@recent_signin_required
def edit_method(method_id: int):
    """The pencil: Primary, Backup or neither."""
    own_billing()
    method = payment_methods.get(db.session, g.account, method_id)
    template = "billing/method_edit.html"
    if request.method == "GET":
        return render(template, "dialog", method=method, errors={})
    try:
        method = payment_methods.set_role(db.session, g.account, method_id,
                                          request.form.get("role", ""))
    except ValidationFailed as e:
        db.session.rollback()
        method = payment_methods.get(db.session, g.account, method_id)
        return render(template, "dialog", status=422, method=method, errors=e.errors)
    db.session.commit()
    role = {"primary": "the Primary method", "backup": "the Backup"}.get(
        method.role.value, "neither Primary nor Backup")
    flash(f"{method.brand} ending {method.last4} is now {role}.", "success")
    return see_other(url_for("billing.index"))


@bp.route(f"/payment-methods/{ID}/remove", methods=["GET", "POST"])
@recent_signin_required
def remove_method(method_id: int):
    """Confirm; removing the Primary asks which method to promote."""
    own_billing()
    method = payment_methods.get(db.session, g.account, method_id)
    others = [m for m in payment_methods.in_use(db.session, g.account) if m.id != method.id]
    template = "billing/method_remove.html"
    if request.method == "GET":
        return render(template, "dialog", method=method, others=others, errors={})
    if request.form.get("confirm") != "yes":
        return render(template, "dialog", status=422, method=method, others=others,
                      errors={"": "Removing needs the confirmation: nothing was changed."})
    promote = request.form.get("promote", "")
    try:
        payment_methods.remove(db.session, g.account, method_id,
                               to_id(promote))
    except ValidationFailed as e:
        db.session.rollback()
        return render(template, "dialog", status=422, method=method, others=others,
                      errors=e.errors)
    db.session.commit()
    flash(f"{method.brand} ending {method.last4} was removed. Its past payments stay in the "
          "payment history.", "success")
    return see_other(url_for("billing.index"))
