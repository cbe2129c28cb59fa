"""Payment Methods: add a card or a bank account, the pencil (Primary, Backup or neither),
remove. Each a dialog; a page without JavaScript."""

from flask import g, request, session

from portal.blueprints.billing import bp
from portal.blueprints.billing.settings import changed
from portal.blueprints.security import recent_signin_required
from portal.blueprints.views import CONFIRM, confirmed, own_billing, submit
from portal.errors import ConfirmationNeeded
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.models import MethodVerification
from portal.rendering import render
from portal.services import payment_methods
from portal.services.gateway import Mandate
from portal.services.inputs import to_id

NEW, EDIT, REMOVE, VERIFY = "billing/method_new.html", "billing/method_edit.html", \
    "billing/method_remove.html", "billing/method_verify.html"


def _to_settings(message: str):
    """Done: the Payment Methods section and Make a Payment's choice of method drawn again
    where they are, the dialog closed (htmx); else back to the page (issue 14)."""
    return changed(message, "methods_section", "payment_section")


@bp.route("/payment-methods/new-card", methods=["GET", "POST"])
@recent_signin_required
@own_billing
@card_entry_page
def new_card():
    return _new_method("card")


@bp.route("/payment-methods/new-ach", methods=["GET", "POST"])
@recent_signin_required
@own_billing
@card_entry_page
def new_ach():
    return _new_method("ach")


def _new_method(kind: str):
    """The processor's card entry (its frame) gives this page a payment-method id; only that
    id reaches the portal, which saves it to the account's processor customer."""
    if request.method == "GET":
        return _new_dialog(kind)

    def add():
        return payment_methods.add(
            db.session, g.account, payment_gateway(), request.form.get("payment_method", ""),
            kind, Mandate(request.remote_addr or "",
                          request.headers.get("User-Agent", "")[:300]))

    return submit(add, lambda errors: _new_dialog(kind, 422, errors), _added_or_action)


def _new_dialog(kind: str, status: int = 200, errors=None, action=None):
    return render(NEW, "dialog", status=status, kind=kind, errors=errors or {},
                  browser=payment_gateway().browser(), action=action)


def _added_or_action(result):
    if isinstance(result, payment_methods.ActionNeeded):
        # The bank asks to confirm it's the card holder: the page runs the processor's
        # challenge, then posts to confirm_setup. The setup's id stays on the server.
        session.setdefault("pending_setups", {})[str(g.account.id)] = [result.setup,
                                                                       result.kind]
        session.modified = True
        return _new_dialog(result.kind, action=result)
    method = result
    if method.verification == MethodVerification.PENDING:
        return _to_settings(f"{method.short_label} was added. In 1–2 business days two small "
                            "deposits appear on its statement: enter them with Verify to "
                            "use it.")
    role = {"primary": " as the Primary method", "backup": " as the Backup"}.get(
        method.role.value, ": use the pencil to make it Primary or Backup")
    return _to_settings(f"{method.label} was added{role}.")


@bp.post("/payment-methods/confirm")
@recent_signin_required
@own_billing
@card_entry_page
def confirm_setup():
    """After the processor's challenge: its answer for the setup this account started."""
    pending = session.get("pending_setups", {}).pop(str(g.account.id), None)
    session.modified = True
    if not pending:
        return _new_dialog("card", 422, {"payment_method": "Nothing is waiting to be "
                                                           "saved: enter the card again."})
    setup, kind = pending
    return submit(
        lambda: payment_methods.confirm_setup(db.session, g.account, payment_gateway(),
                                              setup, kind),
        lambda errors: _new_dialog(kind, 422, errors), _added_or_action)


@bp.route("/payment-methods/<id:method_id>/verify", methods=["GET", "POST"])
@recent_signin_required
@own_billing
def verify_method(method_id: int):
    """A bank account's two micro-deposits (the amounts on its statement)."""
    method = payment_methods.get(db.session, g.account, method_id)

    def dialog(status=200, errors=None):
        return render(VERIFY, "dialog", status=status, method=method, errors=errors or {},
                      form=request.form)

    if request.method == "GET":
        return dialog()
    return submit(
        lambda: payment_methods.verify(db.session, g.account, payment_gateway(), method_id,
                                       request.form.get("first", ""),
                                       request.form.get("second", "")),
        lambda errors: dialog(422, errors),
        lambda m: dialog(422, {"": payment_methods.VERIFY_FAILED})
        if m.verification == MethodVerification.FAILED else
        _to_settings(f"{m.short_label} is verified" + (
            " and is the Primary method." if m.is_primary else
            ": use the pencil to make it Primary or Backup.")))


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
