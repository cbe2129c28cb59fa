"""/api/v1: Payments: make one, list them, receipts (issue 18 E2).

Make a Payment's service (charges.pay, then charges.attempt): the same minimum and maximum,
the charge on record before the processor is asked, a card's bank challenge (3-D Secure)
answered 202 with what the payer needs to complete it, then .../confirm. The history is
the Account Payment History's rows; the receipt the page's receipt, as PDF."""

import hashlib

import marshmallow as ma
from flask import render_template, request, url_for
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal.blueprints.api import problems
from portal.blueprints.api_v1 import auth, blueprint
from portal.blueprints.api_v1.billing_common import (
    PDF,
    cents_text,
    fields_named,
    newest_first,
    pdf_answer,
    problem,
    reach,
)
from portal.blueprints.api_v1.schemas import (
    PAYMENT_FAILED,
    PageArgsSchema,
    ProblemSchema,
    page_schema,
)
from portal.extensions import db, payment_gateway
from portal.models import Charge, ChargePurpose, ChargeStatus, MethodRole, RefundStatus
from portal.services import billing, charges, payment_methods
from portal.services.money import dollars
from portal.services.processor import gateway_name

bp = blueprint("payments", "Payments: make one, list them, receipts.")

# An answer holding a client secret: not to be kept by caches; the Idempotency-Key replay
# store keeps it sealed for its 24 hours (idempotency.py), never readable in the database.
NO_STORE = {"Cache-Control": "no-store"}
NOT_CONFIRMED = ("The payment was not confirmed with the card's bank, so nothing was charged. "
                 "Try again or use another method.")


class NextActionSchema(ma.Schema):
    type = fields.String(required=True, metadata={
        "description": "authenticate: the card's bank asks the payer to confirm (3-D "
                       "Secure)."})
    client_secret = fields.String(required=True, metadata={
        "description": "For the processor's script (Stripe.js handleNextAction); never "
                       "stored by the portal."})
    authenticate_url = fields.String(allow_none=True, required=True, metadata={
        "description": "The processor's challenge page, where the gateway has one (the "
                       "sandbox); else null: run the challenge with client_secret."})
    confirm_url = fields.String(required=True, metadata={
        "description": "POST here once the payer has answered."})


class RefundSchema(ma.Schema):
    id = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)
    status = fields.Function(lambda r: r.status.value, required=True, metadata={
        "type": "string", "enum": [status.value for status in RefundStatus]})
    reason = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ChargeSchema(ma.Schema):
    """A row of the Account Payment History."""

    id = fields.Integer(required=True)
    receipt_number = fields.String(required=True)
    purpose = fields.Enum(ChargePurpose, by_value=True, required=True)
    label = fields.String(required=True, metadata={"description": "Payment, Auto recharge…"})
    description = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    status = fields.Enum(ChargeStatus, by_value=True, required=True)
    requires_action = fields.Function(
        lambda c: c.is_pending and c.processor_status == "requires_action", required=True,
        metadata={"type": "boolean",
                  "description": "Waiting for the payer to confirm with their bank."})
    failure_code = fields.String(required=True)
    failure_message = fields.String(required=True)
    payment_method_id = fields.Integer(attribute="method_id", required=True)
    payment_method = fields.Function(lambda c: c.method.short_label, required=True, metadata={
        "type": "string", "description": "\"Visa ending 4242\"."})
    created_at = fields.DateTime(required=True)
    settled_at = fields.DateTime(allow_none=True, required=True)
    refund = fields.Nested(RefundSchema, allow_none=True, required=True)


class PaymentResultSchema(ChargeSchema):
    message = fields.String(required=True, metadata={"description": "What the page says."})
    next_action = fields.Nested(NextActionSchema, allow_none=True, required=True)


ChargePage = page_schema(ChargeSchema, "ChargePage")


class PaymentArgsSchema(ma.Schema):
    amount_cents = fields.Integer(required=True, strict=True, metadata={
        "description": "What to charge, in cents: more than zero, at most $10,000.00."})
    payment_method_id = fields.Integer(
        load_default=None, allow_none=True, strict=True,
        validate=validate.Range(1, 2**31 - 1), metadata={
            "description": "One of the account's payment methods; the Primary if none."})


PAYMENT_FAILED_RESPONSE = {
    "schema": ProblemSchema, "content_type": problems.MEDIA_TYPE,
    "description": f"Declined, or not confirmed by the payer: type `{PAYMENT_FAILED}`, the "
                   "failed payment in `charge`; nothing was charged."}


@bp.route("/accounts/<id:account_id>/payments")
class Payments(MethodView):
    @bp.doc(operationId="listPayments")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, ChargePage)
    def get(self, args, account_id: int):
        """List the payments (Account Payment History)

        The Account Payment History, newest first (readable on agency billing too: the
        payments made while the account paid its own bills)."""
        account = reach(account_id).account
        query = select(Charge).where(Charge.account_id == account.id)
        return newest_first(db.session, query, Charge.created_at, Charge.id, args["limit"],
                            args["cursor"])

    @bp.doc(operationId="makePayment")
    @bp.arguments(PaymentArgsSchema)
    @bp.response(201, PaymentResultSchema)
    @bp.alt_response(202, schema=PaymentResultSchema, description=(
        "Not settled yet: the card's bank asks the payer to confirm (status pending, "
        "next_action set: then POST confirm_url), or the processor has not answered (it is "
        "retried, never charging twice)."))
    @bp.alt_response(402, **PAYMENT_FAILED_RESPONSE)
    def post(self, args, account_id: int):
        """Make a Payment

        Charge the chosen method (the Primary if none) and credit the balance. A decline
        is 402 with the processor's reason; nothing is charged then."""
        account = reach(account_id, own_billing=True).account
        method_id = args["payment_method_id"]
        if method_id is None:
            primary = next((m for m in payment_methods.usable(db.session, account)
                            if m.role == MethodRole.PRIMARY), None)
            method_id = primary.id if primary is not None else None
        with fields_named({"method": "payment_method_id", "amount": "amount_cents"}):
            charge = charges.pay(db.session, account, auth.actor(),
                                 "" if method_id is None else str(method_id),
                                 cents_text(args["amount_cents"]), _form_key())
        db.session.commit()
        return outcome(account.id, charges.attempt(db.session, payment_gateway(), charge))


def _form_key() -> str:
    """Make a Payment's form key (one charge per key): from the request's Idempotency-Key,
    so the same key makes one charge even after the API's replay window; else a new one."""
    given = request.headers.get("Idempotency-Key", "").strip()
    if not given:
        return charges.new_form_key()
    seed = f"{auth.key().id}:{given}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


class Answer:
    """A charge and what the API says of it (the PaymentResult's extra members)."""

    def __init__(self, charge: Charge, message: str, next_action: dict | None = None):
        self.charge, self.message, self.next_action = charge, message, next_action

    def __getattr__(self, name):
        return getattr(self.charge, name)


def outcome(account_id: int, charge: Charge):
    """The payment's answer as the page gives it: 201 charged, 202 waiting (the payer's
    challenge, or the processor), 402 declined or not confirmed."""
    action = getattr(charge, "action", None)
    if charge.is_pending and action is not None:
        return Answer(charge, f"The card's bank asks the payer to confirm the payment of "
                              f"{dollars(charge.amount_cents)}: complete it, then POST "
                              "confirm_url.", {
            "type": "authenticate", "client_secret": action.client_secret,
            "authenticate_url": _challenge_url(action.reference, action.client_secret),
            "confirm_url": url_for("api_v1_payments.PaymentConfirm", account_id=account_id,
                                   charge_id=charge.id)}), 202, NO_STORE
    if charge.is_pending and charge.processor_status == "requires_action":
        return _declined(NOT_CONFIRMED, charge)
    if charge.status == ChargeStatus.FAILED:
        detail = f"The payment failed: {charge.failure_message}" + (
            "" if "not charged" in charge.failure_message else " Nothing was charged.")
        return _declined(detail, charge)
    if charge.is_pending:
        return Answer(charge, f"The payment of {dollars(charge.amount_cents)} is pending: "
                              f"{charges.NO_ANSWER}"), 202
    return Answer(charge, f"Thank you: {dollars(charge.amount_cents)} was charged to "
                          f"{charge.method.short_label}. Receipt {charge.receipt_number} is "
                          "in the payment history."), 201


def _declined(detail: str, charge: Charge):
    """402, with a type of its own: the processor declined, or the payer did not confirm
    (the charge is in the problem's `charge`; nothing was charged)."""
    return problem(402, detail, type=problems.PROBLEM_BASE + PAYMENT_FAILED,
                   title="Payment failed", charge=ChargeSchema().dump(charge))


def _challenge_url(intent: str, client_secret: str) -> str | None:
    """The sandbox's 3-D Secure page (a real processor's challenge runs in its script)."""
    if gateway_name(payment_gateway()) != "sandbox":
        return None
    return url_for("sandbox.authenticate", intent=intent, client_secret=client_secret,
                   _external=True)


@bp.route("/accounts/<id:account_id>/payments/<id:charge_id>/confirm")
class PaymentConfirm(MethodView):
    @bp.doc(operationId="confirmPayment")
    @bp.response(201, PaymentResultSchema)
    @bp.alt_response(202, schema=PaymentResultSchema,
                     description="The processor has not answered yet.")
    @bp.alt_response(402, **PAYMENT_FAILED_RESPONSE)
    def post(self, account_id: int, charge_id: int):
        """Confirm a payment after the bank's check

        After the payer's challenge: the payment's answer, read from the processor (never
        from the client). Not confirmed: 402, nothing charged."""
        account = reach(account_id, own_billing=True).account
        return outcome(account.id, charges.confirm(db.session, payment_gateway(), account,
                                                   charge_id))


@bp.route("/accounts/<id:account_id>/payments/<id:charge_id>")
class PaymentItem(MethodView):
    @bp.doc(operationId="getPayment")
    @bp.response(200, ChargeSchema)
    def get(self, account_id: int, charge_id: int):
        """Read a payment

        One payment of the history."""
        return charges.get(db.session, reach(account_id).account, charge_id)


@bp.route("/accounts/<id:account_id>/payments/<id:charge_id>/receipt.pdf")
class Receipt(MethodView):
    @bp.doc(operationId="getReceiptPdf")
    @bp.response(200, PDF, content_type="application/pdf",
                 description="The receipt (the page's receipt, as PDF).")
    def get(self, account_id: int, charge_id: int):
        """Download a payment's receipt (PDF)

        The receipt of a payment, as PDF (a failed one says why it failed)."""
        from portal import pdf

        account = reach(account_id).account
        charge = charges.get(db.session, account, charge_id)
        html = render_template("billing/receipt.html", charge=charge,
                               settings=billing.settings_for(db.session, account))
        return pdf_answer(pdf.render(html), f"receipt-{charge.receipt_number}.pdf")
