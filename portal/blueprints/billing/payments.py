"""Make a Payment, the Account Payment History and its receipts (a page and a PDF)."""

from flask import abort, current_app, g, render_template, request
from flask_login import current_user

from portal.blueprints.billing import bp
from portal.blueprints.billing.settings import SETTINGS, changed, invalid, page_context
from portal.blueprints.views import own_billing, submit
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.models import ChargeStatus
from portal.rendering import pdf_response, render
from portal.services import billing, charges
from portal.services.money import dollars
from portal.services.paging import parse_page


@bp.post("/payments")
@own_billing
@card_entry_page
def pay():
    form = request.form
    return submit(
        lambda: charges.pay(db.session, g.account, current_user, form.get("method", ""),
                            form.get("amount", ""), form.get("form_key", "")),
        invalid("payment_section"),
        _charge)


def _charge(charge):
    """The payment is stored (committed): now ask the processor."""
    return _outcome(charges.attempt(db.session, payment_gateway(), charge))


@bp.post("/payments/<id:charge_id>/confirm")
@own_billing
@card_entry_page
def confirm_payment(charge_id: int):
    """After the card's bank challenge: the payment's answer, from the processor."""
    return _outcome(charges.confirm(db.session, payment_gateway(), g.account, charge_id))


def _outcome(charge):
    if charge.is_pending and getattr(charge, "action", None) is not None:
        # The card's bank asks the payer to confirm (3-D Secure, on session): its challenge.
        return render(SETTINGS, "payment_section", **page_context(
            payment_action=charge, browser=payment_gateway().browser()))
    if charge.is_pending and charge.processor_status == "requires_action":
        return render(SETTINGS, "payment_section", status=402,
                      trigger={"payments-changed": charge.id}, **page_context(
                          form=request.form, failed="payment_section",
                          errors={"": "The payment was not confirmed with the card's bank, so "
                                      "nothing was charged. Try again or use another "
                                      "method."}))
    if charge.status == ChargeStatus.FAILED:
        return render(SETTINGS, "payment_section", status=402,
                      trigger={"payments-changed": charge.id}, **page_context(
                          form=request.form, failed="payment_section",
                          errors={"": f"The payment failed: {charge.failure_message}" + (
                              "" if "not charged" in charge.failure_message
                              else " Nothing was charged.")}))
    # Done: Make a Payment again (a new form key), the balance and the payment history drawn
    # again where they are (htmx); else back to the page.
    if charge.status == ChargeStatus.PENDING:
        return changed(f"The payment of {dollars(charge.amount_cents)} is pending: "
                       f"{charges.NO_ANSWER}", "payment_section", "balance_section",
                       "history_section", category="info")
    return changed(f"Thank you: {dollars(charge.amount_cents)} was charged to "
                   f"{charge.method.short_label}. Receipt {charge.receipt_number} is in the "
                   "payment history.", "payment_section", "balance_section", "history_section")


# Readable on agency billing too: its own past payments (issue 14).
@bp.get("/payments")
def history():
    try:
        number = parse_page(request.args.get("page"))
    except ValidationFailed:
        abort(404)
    payments = charges.history(db.session, g.account, number,
                               current_app.config["PAYMENTS_PER_PAGE"])
    return render("billing/history.html", "results", payments=payments)


@bp.get("/payments/<id:charge_id>")
def receipt(charge_id: int):
    """The eye icon: the printable receipt of a successful charge, or why one failed."""
    charge = charges.get(db.session, g.account, charge_id)
    return render("billing/receipt.html", charge=charge,
                  settings=billing.settings_for(db.session, g.account))


@bp.get("/payments/<id:charge_id>.pdf")
def receipt_pdf(charge_id: int):
    """The receipt as PDF, from the receipt page's template."""
    charge = charges.get(db.session, g.account, charge_id)
    html = render_template("billing/receipt.html", charge=charge,
                           settings=billing.settings_for(db.session, g.account))
    return pdf_response(html, f"receipt-{charge.receipt_number}.pdf")
