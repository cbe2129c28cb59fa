"""Settings → Billing Settings: Payment Methods, Balance Auto Recharge Settings, Critical
Billing Phone Number, Make a Payment, Opt-in Direct Charge for Plan Subscription, Account
Payment History (and receipts), Billing Logs, Service Address, Users who Receive Billing
Emails. Owners and admins only."""

from flask import Response, abort, current_app, flash, g, request, stream_with_context, url_for
from flask_login import current_user

from portal import clock
from portal.blueprints.billing import bp
from portal.blueprints.security import recent_signin_required
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.models import LEDGER_LABELS, ChargeStatus
from portal.rendering import is_partial, render, see_other
from portal.services import billing, billing_logs, charges, payment_methods, statements
from portal.services.inputs import to_id
from portal.services.money import dollars
from portal.services.paging import parse_page
from portal.tenancy import MAX_ACCOUNT_ID, require_admin

SETTINGS = "billing/settings.html"
ID = f"<int(max={MAX_ACCOUNT_ID}):method_id>"


@bp.before_request
def admins_only():
    require_admin()


def _own_billing():
    billing.check_own_billing(g.account)


def _page_context(**overrides):
    """Everything the Billing Settings page shows."""
    account = g.account
    own = billing.has_own_billing(account)
    context = {"own_billing": own, "errors": {}, "form": {}, "saved": None}
    if own:
        settings = billing.settings_for(db.session, account)
        context.update(
            settings=settings,
            methods=payment_methods.in_use(db.session, account),
            suggestion=billing.suggest(db.session, account),
            payments=charges.history(db.session, account, 1,
                                     current_app.config["PAYMENTS_PER_PAGE"]),
            form_key=charges.new_form_key(),
            recipients=billing.recipients(db.session, account),
            chosen=billing.chosen_recipients(db.session, account),
            users=billing.account_users(db.session, account),
            states=billing.US_STATES,
        )
    else:
        context["agency"] = db.session.get(type(account), account.parent_id)
    context.update(overrides)
    return context


@bp.get("/")
def index():
    return render(SETTINGS, **_page_context())


def _section(block: str, saved: str, status: int = 200, **context):
    """After a section's form: the section again for htmx, else back to the page."""
    if is_partial() or status != 200:
        return render(SETTINGS, block, status=status, **_page_context(saved=saved, **context))
    flash(saved, "success")
    return see_other(url_for("billing.index"))


def _invalid(block: str, e: ValidationFailed):
    db.session.rollback()
    return render(SETTINGS, block, status=422,
                  **_page_context(errors=e.errors, form=request.form, failed=block))


# --------------------------------------------------------------- Payment Methods

@bp.route("/payment-methods/new-card", methods=["GET", "POST"])
@recent_signin_required
def new_card():
    return _new_method("card")


@bp.route("/payment-methods/new-ach", methods=["GET", "POST"])
@recent_signin_required
def new_ach():
    return _new_method("ach")


def _new_method(kind: str):
    _own_billing()
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
    _own_billing()
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
    _own_billing()
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


# --------------------------------------------------------------- the settings sections

@bp.post("/auto-recharge")
def auto_recharge():
    _own_billing()
    enabled = request.form.get("enabled", "on") != "off"
    try:
        settings = billing.set_auto_recharge(db.session, g.account,
                                             request.form.get("threshold", ""),
                                             request.form.get("amount", ""), enabled)
    except ValidationFailed as e:
        return _invalid("recharge_section", e)
    recharge = charges.start_recharge(db.session, g.account)
    db.session.commit()
    if not settings.auto_recharge:
        return _section("recharge_section", "Auto recharge is off.")
    message = (f"Saved: when the balance falls below "
               f"{_dollars(settings.recharge_threshold_cents)}, the Primary method is charged "
               f"to bring it back up to {_dollars(settings.recharge_amount_cents)}.")
    if recharge is not None:
        # Money moved: the balance and the payment history change too, so the whole page.
        charge = charges.run_recharge(db.session, payment_gateway(), recharge)
        message += " " + _charge_outcome(charge, "The balance was below the threshold: ")
        flash(message, "success" if charge.status == ChargeStatus.SUCCEEDED else "error")
        return see_other(url_for("billing.index"))
    return _section("recharge_section", message)


def _dollars(cents: int) -> str:
    return dollars(cents)


def _charge_outcome(charge, prefix: str = "") -> str:
    if charge.status == ChargeStatus.SUCCEEDED:
        return (f"{prefix}{_dollars(charge.amount_cents)} was charged to {charge.method.brand} "
                f"ending {charge.method.last4} (receipt {charge.receipt_number}).")
    if charge.status == ChargeStatus.FAILED:
        return f"{prefix}the charge failed: {charge.failure_message}"
    return f"{prefix}{charges.NO_ANSWER}"


@bp.post("/critical-phone")
def critical_phone():
    _own_billing()
    try:
        settings = billing.set_critical_phone(db.session, g.account,
                                              request.form.get("phone", ""))
    except ValidationFailed as e:
        return _invalid("phone_section", e)
    db.session.commit()
    return _section("phone_section", f"Critical billing texts go to {settings.critical_phone}."
                    if settings.critical_phone else "The critical billing phone number was "
                    "removed.")


@bp.post("/service-address")
def service_address():
    _own_billing()
    try:
        billing.set_service_address(db.session, g.account, request.form)
    except ValidationFailed as e:
        return _invalid("address_section", e)
    db.session.commit()
    return _section("address_section", "The service address is saved.")


@bp.post("/direct-charge")
def direct_charge():
    _own_billing()
    settings = billing.set_direct_charge(db.session, g.account,
                                         request.form.get("direct_charge") == "on")
    db.session.commit()
    return _section("direct_section", "The plan subscription fee will be charged to your "
                    "Primary method." if settings.direct_charge else
                    "The plan subscription fee will be paid from the available balance.")


@bp.post("/recipients")
def recipients():
    """Users who Receive Billing Emails: an agency's page (a standalone account's billing
    emails go to all its owners and admins)."""
    if not g.account.is_agency:
        abort(404)
    try:
        billing.set_recipients(db.session, g.account, request.form.getlist("users"))
    except ValidationFailed as e:
        return _invalid("recipients_section", e)
    db.session.commit()
    return _section("recipients_section", "Saved: these users receive billing emails.")


# --------------------------------------------------------------- Make a Payment

@bp.post("/payments")
def pay():
    _own_billing()
    form = request.form
    try:
        charge = charges.pay(db.session, g.account, current_user, form.get("method", ""),
                             form.get("amount", ""), form.get("form_key", ""))
    except ValidationFailed as e:
        return _invalid("payment_section", e)
    db.session.commit()
    charge = charges.attempt(db.session, payment_gateway(), charge)
    if charge.status == ChargeStatus.FAILED:
        return render(SETTINGS, "payment_section", status=402,
                      trigger={"payments-changed": charge.id}, **_page_context(
                          form=form, failed="payment_section",
                          errors={"": f"The payment failed: {charge.failure_message} Nothing "
                                      "was charged."}))
    if charge.status == ChargeStatus.PENDING:
        flash(f"The payment of {_dollars(charge.amount_cents)} is pending: "
              f"{charges.NO_ANSWER}", "info")
    else:
        flash(f"Thank you: {_dollars(charge.amount_cents)} was charged to {charge.method.brand} "
              f"ending {charge.method.last4}. Receipt {charge.receipt_number} is in the payment "
              "history.", "success")
    return see_other(url_for("billing.index"))


# --------------------------------------------------------------- Payment History, receipts

@bp.get("/payments")
def history():
    _own_billing()
    try:
        number = parse_page(request.args.get("page"))
    except ValidationFailed:
        abort(404)
    payments = charges.history(db.session, g.account, number,
                               current_app.config["PAYMENTS_PER_PAGE"])
    return render("billing/history.html", "results", payments=payments)


@bp.get("/payments/<int(max=2147483647):charge_id>")
def receipt(charge_id: int):
    """The eye icon: the printable receipt of a successful charge, or why one failed."""
    charge = charges.get(db.session, g.account, charge_id)
    return render("billing/receipt.html", charge=charge,
                  settings=billing.settings_for(db.session, g.account))


# --------------------------------------------------------------- Billing Logs

@bp.get("/logs")
def logs():
    _own_billing()
    args = request.args
    try:
        log_filter = billing_logs.parse_filter(args)
        number = parse_page(args.get("page"))
    except ValidationFailed as e:
        return render("billing/logs.html", "results", status=422, entries=None, args=args,
                      errors=e.errors, kinds=LEDGER_LABELS)
    entries = billing_logs.page(db.session, g.account, log_filter, number,
                                current_app.config["BILLING_LOGS_PER_PAGE"])
    return render("billing/logs.html", "results", entries=entries, args=args, errors={},
                  kinds=LEDGER_LABELS, labels=LEDGER_LABELS)


@bp.get("/logs.csv")
def logs_csv():
    _own_billing()
    try:
        log_filter = billing_logs.parse_filter(request.args)
    except ValidationFailed as e:
        return render("billing/logs.html", "results", status=422, entries=None,
                      args=request.args, errors=e.errors, kinds=LEDGER_LABELS)
    return Response(
        stream_with_context(billing_logs.export_csv(db.session, g.account, log_filter)),
        mimetype="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="billing-logs-{g.account.id}.csv"'})



# --------------------------------------------------------------- PDFs, Printable Statements

def _pdf(html: str, filename: str):
    from flask import make_response

    from portal import pdf

    response = make_response(pdf.render(html))
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@bp.get("/payments/<int(max=2147483647):charge_id>.pdf")
def receipt_pdf(charge_id: int):
    """The receipt as PDF, from the receipt page's template."""
    from flask import render_template

    charge = charges.get(db.session, g.account, charge_id)
    html = render_template("billing/receipt.html", charge=charge,
                           settings=billing.settings_for(db.session, g.account))
    return _pdf(html, f"receipt-{charge.receipt_number}.pdf")


def _statement_dialog(status: int = 200, form=None, errors=None):
    today = clock.now().date()
    return render("billing/statements.html", "dialog", status=status, form=form or {},
                  errors=errors or {},
                  choices=statements.recipient_choices(db.session, g.account),
                  schedules=statements.schedules(db.session, g.account),
                  default_from=today.replace(day=1).isoformat(), default_to=today.isoformat())


@bp.get("/statements")
def statements_dialog():
    """Payment History → Printable Statements (a dialog; a page without JavaScript)."""
    _own_billing()
    return _statement_dialog()


def _statement_html(start, end) -> tuple:
    from flask import render_template

    built = statements.build(db.session, g.account, start, end)
    html = render_template("billing/statement.html", statement=built,
                           settings=billing.settings_for(db.session, g.account))
    return built, html


@bp.get("/statements.pdf")
def statement_pdf():
    """Download the statement for ?from=&to= directly."""
    _own_billing()
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    _, html = _statement_html(start, end)
    return _pdf(html, f"statement-{g.account.id}-{start:%Y%m%d}-{end:%Y%m%d}.pdf")


@bp.get("/statements/view")
def statement_view():
    """The statement as a page (what the PDF is made from)."""
    _own_billing()
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    _, html = _statement_html(start, end)
    return html


@bp.post("/statements")
def send_statement():
    """Send Statement: the PDF emailed to the chosen address."""
    _own_billing()
    form = request.form
    errors = {}
    try:
        start, end = statements.parse_period(form.get("from"), form.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        recipient = statements.parse_recipient(form.get("recipient"), form.get("other"))
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        return _statement_dialog(422, form, errors)
    from portal import notices, pdf

    built, html = _statement_html(start, end)
    notices.statement(db.session, g.account, built, recipient, pdf.render(html))
    db.session.commit()
    flash(f"The statement for {start:%B %-d, %Y} – {end:%B %-d, %Y} was sent to {recipient}.",
          "success")
    return see_other(url_for("billing.index"))


@bp.post("/statements/schedules")
def add_schedule():
    _own_billing()
    form = request.form
    try:
        recipient = statements.parse_recipient(form.get("recipient"), form.get("other"))
        schedule = statements.add_schedule(db.session, g.account, current_user,
                                           form.get("frequency", ""), recipient)
    except ValidationFailed as e:
        db.session.rollback()
        return _statement_dialog(422, form, e.errors)
    db.session.commit()
    flash(f"Saved: the {schedule.frequency.value} statement will be emailed to "
          f"{schedule.recipient}.", "success")
    return see_other(url_for("billing.index"))


@bp.post("/statements/schedules/<int(max=2147483647):schedule_id>/remove")
def remove_schedule(schedule_id: int):
    _own_billing()
    statements.remove_schedule(db.session, g.account, schedule_id)
    db.session.commit()
    flash("The recurring statement was removed.", "success")
    return see_other(url_for("billing.index"))
