"""Billing Settings: the page, and its sections' forms (each answers its section again for
htmx, else back to the page)."""

import json

from flask import current_app, flash, g, make_response, request, url_for
from jinja2_fragments.flask import render_block

from portal.blueprints.billing import bp
from portal.blueprints.views import agency_only, back, confirmed, own_billing, submit
from portal.errors import ConfirmationNeeded
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.models import ChargeStatus
from portal.rendering import is_partial, render, see_other
from portal.services import alerts, billing, charges, guardrails, payment_methods
from portal.services.money import dollars

SETTINGS = "billing/settings.html"
RECHARGE_CONFIRM = "billing/recharge_confirm.html"


def page_context(**overrides):
    """Everything the Billing Settings page shows."""
    account = g.account
    own = billing.has_own_billing(account)
    context = {"own_billing": own, "errors": {}, "form": {}, "saved": None}
    if own:
        # Issue 17: the settings, suggestion, guardrails and recent alerts in one query.
        figures = guardrails.page(db.session, account)
        settings, suggestion = figures.settings, figures.suggestion
        people = billing.email_people(db.session, account)
        methods, standing = payment_methods.listed(db.session, account)
        context.update(
            settings=settings,
            methods=methods,
            standing=standing,
            suggestion=suggestion,
            guard=figures.standing,
            recent_alerts=figures.alerts,
            payments=charges.history(db.session, account, 1,
                                     current_app.config["PAYMENTS_PER_PAGE"]),
            form_key=charges.new_form_key(),
            recipients=people.recipients,
            chosen=people.chosen,
            users=people.users,
            states=billing.US_STATES,
        )
    else:
        context["agency"] = db.session.get(type(account), account.parent_id)
        # Its payments from when it paid its own bills: readable, read-only (issue 14).
        context["payments"] = charges.history(db.session, account, 1,
                                              current_app.config["PAYMENTS_PER_PAGE"])
    # Issue 17 (B): a sub-account's Budget section.
    from portal.blueprints.billing.budget import budget_context

    context.update(budget_context())
    context.update(overrides)
    return context


@bp.get("/")
@card_entry_page  # its dialogs and Make a Payment may hold the processor's frame
def index():
    return render(SETTINGS, **page_context())


def _section(block: str, saved: str, status: int = 200, **context):
    """After a section's form: the section again for htmx, else back to the page."""
    if is_partial() or status != 200:
        return render(SETTINGS, block, status=status, **page_context(saved=saved, **context))
    flash(saved, "success")
    return see_other(url_for("billing.index"))


# The page's sections by block, and the id each is swapped by.
SECTION_IDS = {"balance_section": "balance", "methods_section": "payment-methods",
               "payment_section": "make-payment", "history_section": "payment-history"}


def changed(message: str, shown_in: str, *also: str, category: str = "success",
            trigger: dict | None = None):
    """After an action that changed the page (a card added, a payment made): for htmx, the
    section `shown_in` drawn again with the message, and the sections `also` that depend on
    the change, each swapped where it is (out of band, unless it is the request's own target),
    so the reader keeps their place; a dialog that asked is closed (the close-dialog event).
    A full page or a boosted request (no JavaScript): the flash and back to the page (303)."""
    if not is_partial():
        flash(message, category)
        return see_other(url_for("billing.index"))
    context = page_context()
    parts = []
    for block in (shown_in, *also):
        in_place = request.htmx.target == SECTION_IDS[block]
        parts.append(render_block(SETTINGS, block, **{
            **context, "oob": not in_place,
            "saved": message if block == shown_in else None, "saved_category": category}))
    response = make_response("\n".join(parts))
    response.vary.add("HX-Request")
    events = dict(trigger or {})
    if not any(request.htmx.target == SECTION_IDS[b] for b in (shown_in, *also)):
        response.headers["HX-Reswap"] = "none"  # only the out-of-band sections
        events["close-dialog"] = True
    if events:
        response.headers["HX-Trigger"] = json.dumps(events)
    return response


def invalid(block: str):
    """The section's form again with its errors (422); `submit` has rolled back."""
    return lambda errors: render(SETTINGS, block, status=422, **page_context(
        errors=errors, form=request.form, failed=block))


def charge_outcome(charge, prefix: str = "") -> str:
    if charge.status == ChargeStatus.SUCCEEDED:
        return (f"{prefix}{dollars(charge.amount_cents)} was charged to "
                f"{charge.method.short_label} (receipt {charge.receipt_number}).")
    if charge.status == ChargeStatus.FAILED:
        return f"{prefix}the charge failed: {charge.failure_message}"
    return f"{prefix}{charges.NO_ANSWER}"


@bp.post("/auto-recharge")
@own_billing
def auto_recharge():
    """Save; a save that would charge the card now asks first (the charge due, computed by
    the service that will make it), and charges only what the confirmation showed."""
    form = request.form

    def save():
        return charges.save_auto_recharge(
            db.session, g.account, form.get("threshold", ""), form.get("amount", ""),
            form.get("enabled", "on") != "off",
            confirmed=form.get("charge") if confirmed(form) else None,
            cap=form.get("cap"), daily_limit=form.get("daily_limit"))

    try:
        return submit(save, invalid("recharge_section"), lambda saved: _recharge_saved(*saved))
    except ConfirmationNeeded as e:
        db.session.rollback()  # nothing saved until the charge is confirmed
        return confirm_recharge(e.subject, stale=confirmed(form))


def confirm_recharge(due, stale: bool = False):
    """The confirmation dialog: in #dialog-slot for htmx (whichever form asked), a page of
    its own otherwise."""
    response = render(RECHARGE_CONFIRM, "dialog", due=due, stale=stale, form=request.form)
    if is_partial():
        response.headers["HX-Retarget"] = "#dialog-slot"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def _recharge_saved(settings, recharge):
    # Asked from the confirmation dialog: back to the page whatever happened (the dialog
    # closes; the balance may have moved since it was drawn).
    asked = confirmed(request.form)
    if not settings.auto_recharge:
        if asked:
            return back(url_for("billing.index"), "Auto recharge is off.")
        return _section("recharge_section", "Auto recharge is off.")
    message = (f"Saved: when the balance falls below "
               f"{dollars(settings.recharge_threshold_cents)}, the Primary method is charged "
               f"to bring it back up to {dollars(settings.recharge_amount_cents)}.")
    if recharge is not None:
        # Money moved: the balance and the payment history change too, so the whole page.
        charge = charges.run_recharge(db.session, payment_gateway(), recharge)
        message += " " + charge_outcome(charge, "The balance was below the threshold: ")
        flash(message, "success" if charge.status == ChargeStatus.SUCCEEDED else "error")
        return see_other(url_for("billing.index"))
    if asked:
        return back(url_for("billing.index"), message + " Nothing was charged: the balance is "
                    "no longer below the threshold, or a recharge is already under way.")
    return _section("recharge_section", message)


@bp.post("/critical-phone")
@own_billing
def critical_phone():
    return submit(
        lambda: billing.set_critical_phone(db.session, g.account, request.form.get("phone", "")),
        invalid("phone_section"),
        lambda settings: _section(
            "phone_section", f"Critical billing texts go to {settings.critical_phone}."
            if settings.critical_phone else "The critical billing phone number was removed."))


@bp.post("/service-address")
@own_billing
def service_address():
    return submit(lambda: billing.set_service_address(db.session, g.account, request.form),
                  invalid("address_section"),
                  lambda _: _section("address_section", "The service address is saved."))


@bp.post("/direct-charge")
@own_billing
def direct_charge():
    settings = billing.set_direct_charge(db.session, g.account,
                                         request.form.get("direct_charge") == "on")
    db.session.commit()
    return _section("direct_section", "The plan subscription fee will be charged to your "
                    "Primary method." if settings.direct_charge else
                    "The plan subscription fee will be paid from the available balance.")


@bp.post("/recipients")
@agency_only
def recipients():
    """Users who Receive Billing Emails: an agency's page (a standalone account's billing
    emails go to all its owners and admins)."""
    return submit(
        lambda: billing.set_recipients(db.session, g.account, request.form.getlist("users")),
        invalid("recipients_section"),
        lambda _: _section("recipients_section", "Saved: these users receive billing emails."))


@bp.post("/low-balance-alert")
@own_billing
def low_balance_alert():
    """Issue 17: "email me when the balance drops below $X" (with or without auto
    recharge), or off."""
    form = request.form
    return submit(
        lambda: alerts.set_low_balance(db.session, g.account, form.get("low_balance", ""),
                                       form.get("enabled", "on") != "off"),
        invalid("low_balance_section"),
        lambda settings: _section(
            "low_balance_section",
            f"Saved: the billing contacts are emailed when the balance drops below "
            f"{dollars(settings.low_balance_cents)}."
            + (" It is below that now: the next drop below it is told."
               if settings.low_balance_below else "")
            if settings.low_balance_cents is not None else "The low-balance alert is off."))
