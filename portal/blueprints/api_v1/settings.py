"""/api/v1: Auto recharge, its guardrails, the low-balance alert, budgets and alerts (issue 18
E2), over the services of Billing Settings' sections: charges.save_auto_recharge (a save
that would charge now asks first: 409 with the charge, then again with its confirmation),
alerts.set_low_balance, guardrails' standing, budgets.parse_form and set_budget (a
sub-account's budget is set by its agency's owners and admins only)."""

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal.blueprints.api import problems
from portal.blueprints.api_v1 import auth, blueprint
from portal.blueprints.api_v1.billing_common import (
    cents_text,
    fields_named,
    newest_first,
    problem,
    reach,
)
from portal.blueprints.api_v1.payments import ChargeSchema
from portal.blueprints.api_v1.schemas import PageArgsSchema, ProblemSchema, page_schema
from portal.errors import ConfirmationNeeded, NotAllowed, NotFound, ValidationFailed
from portal.extensions import db, payment_gateway
from portal.models import Alert
from portal.services import alerts, billing, budgets, charges, guardrails
from portal.services.money import dollars

bp = blueprint("settings", "Auto recharge and its guardrails, the low-balance alert, budgets "
                           "and alerts.")

RECHARGE_FIELDS = {"threshold": "threshold_cents", "amount": "amount_cents",
                   "cap": "monthly_cap_cents", "daily_limit": "daily_limit",
                   "low_balance": "low_balance_alert_cents"}
NO_SETTER = "Only the agency's owners and admins can set a sub-account's budget."


# ------------------------------------------------------------------------ auto recharge

class AutoRechargeSchema(ma.Schema):
    enabled = fields.Boolean(attribute="auto_recharge", required=True)
    threshold_cents = fields.Integer(attribute="recharge_threshold_cents", allow_none=True,
                                     required=True, metadata={
                                         "description": "Below this balance, recharge."})
    amount_cents = fields.Integer(attribute="recharge_amount_cents", allow_none=True,
                                  required=True, metadata={
                                      "description": "The balance a recharge brings back."})
    monthly_cap_cents = fields.Integer(attribute="recharge_cap_cents", allow_none=True,
                                       required=True, metadata={
                                           "description": "At most this much recharged a "
                                                          "UTC month; null: no cap."})
    daily_limit = fields.Integer(required=True, metadata={
        "description": "At most this many recharges a UTC day."})
    low_balance_alert_cents = fields.Integer(attribute="low_balance_cents", allow_none=True,
                                             required=True, metadata={
                                                 "description": "Email the billing contacts "
                                                                "when the balance drops "
                                                                "below this; null: off."})
    low_balance_below = fields.Boolean(required=True, metadata={
        "description": "The balance is below the alert amount now (told on the next drop)."})


class AutoRechargeArgsSchema(ma.Schema):
    enabled = fields.Boolean(load_default=True, metadata={
        "description": "false: auto recharge off (threshold and amount are ignored)."})
    threshold_cents = fields.Integer(strict=True, load_default=None, allow_none=True)
    amount_cents = fields.Integer(strict=True, load_default=None, allow_none=True, metadata={
        "description": "More than the threshold, at most $10,000.00."})
    monthly_cap_cents = fields.Integer(strict=True, allow_none=True, metadata={
        "description": "Absent: unchanged; null: no cap."})
    daily_limit = fields.Integer(strict=True, metadata={"description": "Absent: unchanged."})
    low_balance_alert_cents = fields.Integer(strict=True, allow_none=True, metadata={
        "description": "Absent: unchanged; null: the alert off."})
    confirm_charge = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(max=64), metadata={
                                       "description": "The `confirmation` of the 409 that "
                                                      "asked: charge what it showed."})


class RechargeSavedSchema(ma.Schema):
    settings = fields.Nested(AutoRechargeSchema, required=True)
    message = fields.String(required=True)
    recharge = fields.Nested(ChargeSchema, allow_none=True, required=True, metadata={
        "description": "The recharge the save made (the balance was below the threshold)."})


def _own_settings(account_id: int):
    account = reach(account_id, own_billing=True).account
    return account, billing.settings_for(db.session, account)


@bp.route("/accounts/<id:account_id>/auto-recharge")
class AutoRecharge(MethodView):
    @bp.doc(operationId="getAutoRecharge")
    @bp.response(200, AutoRechargeSchema)
    def get(self, account_id: int):
        """Read the auto recharge settings

        Balance Auto Recharge Settings, its guardrails' limits and the low-balance alert."""
        return _own_settings(account_id)[1]

    @bp.doc(operationId="updateAutoRecharge")
    @bp.arguments(AutoRechargeArgsSchema)
    @bp.response(200, RechargeSavedSchema)
    @bp.alt_response(409, schema=ProblemSchema, content_type=problems.MEDIA_TYPE, description=(
        "Saving would charge the Primary now (the balance is below the new threshold): "
        "the problem's `charge` says what (amount_cents, payment_method, balance_cents, "
        "target_cents) and its `confirmation`; send it back as confirm_charge to save and "
        "charge. Nothing was saved."))
    def put(self, args, account_id: int):
        """Save the auto recharge settings

        Save the settings (as the page's forms: every field's error at once, nothing
        saved then). A save that would charge now asks first (409), and charges only what
        the confirmation showed."""
        account = reach(account_id, own_billing=True).account
        errors: dict[str, str] = {}
        cap = args.get("monthly_cap_cents", ...)
        limit = args.get("daily_limit")
        try:
            with fields_named(RECHARGE_FIELDS):
                saved, recharge = charges.save_auto_recharge(
                    db.session, account, cents_text(args["threshold_cents"]),
                    cents_text(args["amount_cents"]), args["enabled"],
                    confirmed=args["confirm_charge"],
                    cap=None if cap is ... else cents_text(cap),
                    daily_limit=None if limit is None else str(limit))
        except ConfirmationNeeded as e:
            db.session.rollback()  # nothing saved until the charge is confirmed
            due = e.subject
            return problem(409, e.message, charge={
                "amount_cents": due.amount_cents, "payment_method_id": due.method.id,
                "payment_method": due.method.short_label, "balance_cents": due.balance_cents,
                "target_cents": due.target_cents, "confirmation": due.confirmation})
        except ValidationFailed as e:
            errors.update(e.errors)
            saved = recharge = None
        if "low_balance_alert_cents" in args:
            low = args["low_balance_alert_cents"]
            try:
                with fields_named(RECHARGE_FIELDS):
                    alerts.set_low_balance(db.session, account, cents_text(low),
                                           low is not None)
            except ValidationFailed as e:
                errors.update(e.errors)
        if errors:
            db.session.rollback()
            raise ValidationFailed(errors)
        db.session.commit()
        message = "Auto recharge is off." if not saved.auto_recharge else (
            f"Saved: when the balance falls below {dollars(saved.recharge_threshold_cents)}, "
            f"the Primary method is charged to bring it back up to "
            f"{dollars(saved.recharge_amount_cents)}.")
        if recharge is not None:
            recharge = charges.run_recharge(db.session, payment_gateway(), recharge)
        return {"settings": billing.settings_for(db.session, account), "message": message,
                "recharge": recharge}


# ---------------------------------------------------------------------------- guardrails

class StopSchema(ma.Schema):
    reason = fields.String(required=True, validate=validate.OneOf(["declines", "cap",
                                                                   "daily"]))
    title = fields.String(required=True)
    detail = fields.String(required=True)
    clear = fields.String(required=True, metadata={"description": "How to clear it."})


class GuardrailsSchema(ma.Schema):
    stopped = fields.Boolean(required=True, metadata={
        "description": "Auto recharge is held back now."})
    stop = fields.Nested(StopSchema, allow_none=True, required=True)
    recharged_this_month_cents = fields.Integer(attribute="month_cents", required=True)
    recharges_today = fields.Integer(attribute="today", required=True)
    declines_in_a_row = fields.Integer(attribute="declines", required=True)


@bp.route("/accounts/<id:account_id>/guardrails")
class Guardrails(MethodView):
    @bp.doc(operationId="getGuardrails")
    @bp.response(200, GuardrailsSchema)
    def get(self, account_id: int):
        """Read whether auto recharge is held back

        Whether auto recharge is held back now (declined cards, the month's cap, the
        day's limit), why, and how to clear it."""
        account, settings = _own_settings(account_id)
        return guardrails.standing(db.session, account, settings)


# ------------------------------------------------------------------------------- budgets

class BudgetSchema(ma.Schema):
    amount_cents = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The monthly budget; null: none."})
    thresholds = fields.List(fields.Integer(), required=True, metadata={
        "description": "Alert percentages."})
    pause_calls = fields.Boolean(required=True)
    spent_cents = fields.Integer(required=True, metadata={
        "description": "The sub-account's usage this UTC month."})
    left_cents = fields.Integer(allow_none=True, required=True)
    percent = fields.Integer(allow_none=True, required=True)
    reached = fields.Boolean(required=True)
    alerted = fields.List(fields.Integer(), required=True, metadata={
        "description": "The percentages told this month."})
    editable = fields.Boolean(required=True, metadata={
        "description": "This key may set it (the agency's key, owner or admin)."})


class BudgetArgsSchema(ma.Schema):
    amount_cents = fields.Integer(required=True, strict=True, metadata={
        "description": "More than zero, at most $1,000,000.00."})
    thresholds = fields.List(fields.Integer(strict=True), load_default=None,
                             validate=validate.Length(max=20), metadata={
                                 "description": "1 to 5 percentages, 1-100; absent: 50, "
                                                "80, 100."})
    pause_calls = fields.Boolean(load_default=False, metadata={
        "description": "Pause the sub-account's calls when the budget is reached."})


def _budget_access(account_id: int):
    access = reach(account_id)
    if not access.account.is_sub:
        raise NotFound("Budgets are set on an agency's sub-accounts.")
    return access


def _budget(access) -> dict:
    account = access.account
    standing = budgets.standing(db.session, account)
    told = budgets.alerted(db.session, account)
    editable = access.is_agency_admin and not account.is_canceled
    if standing is None:
        return {"amount_cents": None, "thresholds": budgets.parse_thresholds(None),
                "pause_calls": False, "spent_cents": 0, "left_cents": None, "percent": None,
                "reached": False, "alerted": told, "editable": editable}
    return {"amount_cents": standing.amount_cents, "thresholds": standing.budget.thresholds,
            "pause_calls": standing.budget.pause_calls, "spent_cents": standing.spent_cents,
            "left_cents": standing.left_cents, "percent": standing.percent,
            "reached": standing.reached, "alerted": told, "editable": editable}


def _setter(account_id: int):
    access = _budget_access(account_id)
    actor = auth.actor()
    if not access.is_agency_admin or actor is None:
        raise NotAllowed(NO_SETTER)
    return access, actor


@bp.route("/accounts/<id:account_id>/budget")
class BudgetItem(MethodView):
    @bp.doc(operationId="getBudget")
    @bp.response(200, BudgetSchema)
    def get(self, account_id: int):
        """Read a sub-account's budget

        A sub-account's monthly budget and this month's spend against it."""
        return _budget(_budget_access(account_id))

    @bp.doc(operationId="setBudget")
    @bp.arguments(BudgetArgsSchema)
    @bp.response(200, BudgetSchema)
    def put(self, args, account_id: int):
        """Set a sub-account's budget

        Set the budget (the agency's key, owner or admin): thresholds reached already
        this month are told now; with pause_calls and the budget reached, calls pause."""
        access, actor = _setter(account_id)
        form = {"amount": cents_text(args["amount_cents"]), "thresholds": args["thresholds"],
                "pause_calls": args["pause_calls"]}
        with fields_named({"amount": "amount_cents"}):
            parsed = budgets.parse_form(form, "amount")
            budgets.set_budget(db.session, access.account, actor, parsed["amount_cents"],
                               parsed["thresholds"], pause_calls=parsed["pause_calls"])
        db.session.commit()
        return _budget(access)

    @bp.doc(operationId="removeBudget")
    @bp.response(204)
    def delete(self, account_id: int):
        """Remove a sub-account's budget

        Remove the budget (a budget-paused sub-account resumes)."""
        access, actor = _setter(account_id)
        budgets.set_budget(db.session, access.account, actor, None)
        db.session.commit()


# -------------------------------------------------------------------------------- alerts

class AlertSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={
        "description": "low_balance, recharge_cap_reached, recharge_cap_reset, "
                       "recharge_stopped, budget, …"})
    label = fields.String(required=True)
    message = fields.String(required=True)
    for_account_id = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The sub-account it is about (an agency's budget alerts)."})
    created_at = fields.DateTime(required=True)


AlertPage = page_schema(AlertSchema, "AlertPage")


@bp.route("/accounts/<id:account_id>/alerts")
class Alerts(MethodView):
    @bp.doc(operationId="listAlerts")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, AlertPage)
    def get(self, args, account_id: int):
        """List the recent alerts

        What the portal told the account's billing people (Recent alerts), newest first."""
        account = reach(account_id).account
        return newest_first(db.session, select(Alert).where(Alert.account_id == account.id),
                            Alert.created_at, Alert.id, args["limit"], args["cursor"])
