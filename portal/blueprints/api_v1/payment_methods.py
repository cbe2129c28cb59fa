"""/api/v1: Payment methods: list, Primary/Backup, remove, add through the processor (issue 18
E2).

The portal never sees a card or bank account number: a client creates the payment method
at the processor (what `POST .../payment-methods/setup` answers: the processor's script and
publishable key, or for the sandbox its payment-method endpoint) and sends only its `pm_…`
id, saved as New Credit Card saves it (payment_methods.add: a SetupIntent to the account's
processor customer). A body with a card's number or CVC is refused before anything else.
When the card's bank asks its holder to confirm (3-D Secure), the answer is 202 with what
the challenge needs and a signed `setup_token` (the page keeps the setup's id in its
session; the API signs it, bound to the account, so no client can confirm another's
setup), then `POST .../payment-methods/confirm`."""

import marshmallow as ma
from flask import current_app, jsonify, request, url_for
from flask.views import MethodView
from itsdangerous import BadSignature, URLSafeTimedSerializer
from marshmallow import ValidationError, fields, pre_load, validate

from portal.blueprints.api import problems
from portal.blueprints.api_v1 import blueprint
from portal.blueprints.api_v1.billing_common import fields_named, problem, reach
from portal.blueprints.api_v1.schemas import ProblemSchema
from portal.errors import ConfirmationNeeded, ValidationFailed
from portal.extensions import db, payment_gateway
from portal.models import MethodKind, MethodRole, MethodVerification, PaymentMethod
from portal.services import payment_methods
from portal.services.gateway import Mandate
from portal.services.processor import gateway_name

bp = blueprint("payment_methods", "Payment methods: list, Primary/Backup, remove, add one "
                                  "through the processor (never a card number).")

SETUP_SALT = "api-v1-setup"
SETUP_MAX_AGE = 3600  # seconds a setup_token is good for (the challenge's time)
CARD_FIELDS = frozenset({"number", "card_number", "cvc", "cvv", "card", "exp_month",
                         "exp_year", "account_number", "routing_number"})
CARDS_GO_TO_THE_PROCESSOR = (
    "Card and bank account details go to the payment processor, never to this API: create "
    "the payment method with the processor (POST .../payment-methods/setup says how) and "
    "send its pm_… id as payment_method.")
SETUP_EXPIRED = "This setup_token is not valid or has expired: add the payment method again."


class StandingSchema(ma.Schema):
    last_charge_status = fields.Function(
        lambda s: s.last_status.value if s.last_status else None, allow_none=True,
        required=True, metadata={"type": "string", "enum": ["succeeded", "failed", None],
                                 "description": "null: never charged."})
    last_charge_at = fields.DateTime(attribute="last_at", allow_none=True, required=True)
    declines_in_a_row = fields.Integer(required=True)
    expired = fields.Boolean(required=True)
    expires_this_month = fields.Boolean(required=True)
    expires_in_days = fields.Integer(allow_none=True, required=True)
    usable = fields.Boolean(required=True, metadata={"description": "Verified: it can pay."})
    flagged = fields.Boolean(required=True, metadata={
        "description": "Not to be relied on: auto recharge skips it for a healthy Backup."})
    failing = fields.Boolean(required=True)
    why_failing = fields.String(required=True)


class PaymentMethodSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.Enum(MethodKind, by_value=True, required=True)
    brand = fields.String(required=True)
    last4 = fields.String(required=True)
    exp_month = fields.Integer(allow_none=True, required=True)
    exp_year = fields.Integer(allow_none=True, required=True)
    label = fields.String(required=True, metadata={
        "description": "\"Visa ending 4242, expires 12/2030\"."})
    role = fields.Enum(MethodRole, by_value=True, required=True, metadata={
        "description": "primary, backup or other (neither)."})
    verification = fields.Enum(MethodVerification, by_value=True, required=True, metadata={
        "description": "verified; pending: a bank account waiting for its micro-deposits."})
    created_at = fields.DateTime(required=True)
    standing = fields.Nested(StandingSchema, allow_none=True, required=True)


class MethodList(ma.Schema):
    data = fields.List(fields.Nested(PaymentMethodSchema), required=True)


class SetupSchema(ma.Schema):
    processor = fields.String(required=True, metadata={"description": "sandbox, stripe, …"})
    publishable_key = fields.String(required=True)
    script_url = fields.String(required=True, metadata={
        "description": "The processor's browser script (Stripe.js, or the sandbox's)."})
    payment_methods_url = fields.String(allow_none=True, required=True, metadata={
        "description": "The processor's endpoint that makes a payment method from card "
                       "details with the publishable key (Stripe's POST /v1/payment_methods "
                       "shape), where it has one for servers."})
    kinds = fields.List(fields.String(), required=True)
    save_url = fields.String(required=True, metadata={
        "description": "Then POST {\"payment_method\": \"pm_…\", \"kind\": \"card\"} here."})


class AddArgsSchema(ma.Schema):
    payment_method = fields.String(required=True, validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(r"^[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+$",
                        error=CARDS_GO_TO_THE_PROCESSOR)],
        metadata={"description": "The processor's id (pm_…)."})
    kind = fields.String(load_default="card", validate=validate.OneOf(["card", "ach"]))

    @pre_load
    def no_card_details(self, data, **_kwargs):
        if isinstance(data, dict):
            sent = sorted(CARD_FIELDS.intersection(data))
            if sent:
                raise ValidationError({name: CARDS_GO_TO_THE_PROCESSOR for name in sent})
        return data


class SetupActionSchema(ma.Schema):
    status = fields.String(required=True, metadata={"description": "requires_action"})
    message = fields.String(required=True)
    setup_token = fields.String(required=True, metadata={
        "description": "Send to the confirm URL once the holder has answered."})
    client_secret = fields.String(required=True)
    authenticate_url = fields.String(allow_none=True, required=True)
    confirm_url = fields.String(required=True)


class ConfirmArgsSchema(ma.Schema):
    setup_token = fields.String(required=True, validate=validate.Length(max=1000))


class RoleArgsSchema(ma.Schema):
    confirm = fields.Boolean(load_default=False, metadata={
        "description": "Make it Primary even though it is failing (the 409 said why)."})


class RemoveArgsSchema(ma.Schema):
    promote_id = fields.Integer(load_default=None, validate=validate.Range(1, 2**31 - 1),
                                metadata={"description": "Removing the Primary: the method "
                                                         "that becomes Primary."})
    confirm = fields.Boolean(load_default=False, metadata={
        "description": "Promote it even though it is failing (the 409 said why)."})


def _listed(account) -> list[PaymentMethod]:
    methods, standing = payment_methods.listed(db.session, account)
    for method in methods:
        method.standing = standing[method.id]
    return methods


def _one(account, method_id: int) -> PaymentMethod:
    method = payment_methods.get(db.session, account, method_id)
    method.standing = payment_methods.standing(db.session, method)
    return method


def _asked(e: ConfirmationNeeded):
    db.session.rollback()
    return problem(409, e.message, standing=StandingSchema().dump(e.subject)
                   if e.subject is not None else None)


@bp.route("/accounts/<id:account_id>/payment-methods")
class PaymentMethods(MethodView):
    @bp.doc(operationId="listPaymentMethods")
    @bp.response(200, MethodList)
    def get(self, account_id: int):
        """List the payment methods

        The account's payment methods, Primary first, then Backup; each one's standing
        (its last charge, its expiry). Brand and last 4 digits only."""
        account = reach(account_id, own_billing=True).account
        return {"data": _listed(account)}

    @bp.doc(operationId="addPaymentMethod")
    @bp.arguments(AddArgsSchema)
    @bp.response(201, PaymentMethodSchema)
    @bp.alt_response(202, schema=SetupActionSchema, description=(
        "The card's bank asks its holder to confirm: run the challenge, then POST "
        "confirm_url with setup_token."))
    def post(self, args, account_id: int):
        """Add a payment method

        Save a payment method the processor made (its pm_… id) to the account; the first
        usable one becomes Primary; a bank account waits for its micro-deposits."""
        account = reach(account_id, own_billing=True).account
        mandate = Mandate(request.remote_addr or "", request.headers.get("User-Agent", "")[:300])
        result = payment_methods.add(db.session, account, payment_gateway(),
                                     args["payment_method"], args["kind"], mandate)
        db.session.commit()
        return _added(account.id, result)


def _added(account_id: int, result):
    if isinstance(result, payment_methods.ActionNeeded):
        token = _serializer().dumps({"account": account_id, "setup": result.setup,
                                     "kind": result.kind})
        body = {"status": "requires_action",
                "message": "The card's bank asks its holder to confirm it: the card is saved "
                           "once they have.",
                "setup_token": token, "client_secret": result.client_secret,
                "authenticate_url": _challenge_url(result.setup, result.client_secret),
                "confirm_url": url_for("api_v1_payment_methods.SetupConfirm",
                                       account_id=account_id)}
        response = jsonify(SetupActionSchema().dump(body))
        response.status_code = 202
        response.headers["Cache-Control"] = "no-store"  # a client secret (payments.NO_STORE)
        return response
    result.standing = payment_methods.standing(db.session, result)
    return result, 201


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=SETUP_SALT)


def _challenge_url(intent: str, client_secret: str) -> str | None:
    if gateway_name(payment_gateway()) != "sandbox":
        return None
    return url_for("sandbox.authenticate", intent=intent, client_secret=client_secret,
                   _external=True)


@bp.route("/accounts/<id:account_id>/payment-methods/setup")
class Setup(MethodView):
    @bp.doc(operationId="startPaymentMethodSetup")
    @bp.response(200, SetupSchema)
    def post(self, account_id: int):
        """Start adding a payment method

        How to add a payment method: what the processor's card entry needs (its script
        and publishable key), and where to send the pm_… id it gives."""
        account = reach(account_id, own_billing=True).account
        gateway = payment_gateway()
        browser = gateway.browser()
        name = gateway_name(gateway)
        endpoint = url_for("sandbox.payment_methods", _external=True) if name == "sandbox" \
            else "https://api.stripe.com/v1/payment_methods" if name == "stripe" else None
        script = browser.script_url
        if script.startswith("/"):
            script = request.host_url.rstrip("/") + script
        return {"processor": name, "publishable_key": browser.publishable_key,
                "script_url": script, "payment_methods_url": endpoint,
                "kinds": list(payment_methods.KINDS),
                "save_url": url_for("api_v1_payment_methods.PaymentMethods",
                                    account_id=account.id)}


@bp.route("/accounts/<id:account_id>/payment-methods/confirm")
class SetupConfirm(MethodView):
    @bp.doc(operationId="confirmPaymentMethodSetup")
    @bp.arguments(ConfirmArgsSchema)
    @bp.response(201, PaymentMethodSchema)
    @bp.alt_response(202, schema=SetupActionSchema, description="Still waiting.")
    def post(self, args, account_id: int):
        """Confirm a payment method after the bank's check

        After the holder's challenge: the setup's answer, read from the processor (never
        from the client), saves the method or says why not (422)."""
        account = reach(account_id, own_billing=True).account
        try:
            pending = _serializer().loads(args["setup_token"], max_age=SETUP_MAX_AGE)
        except (BadSignature, UnicodeError, ValueError):
            pending = None
        if not isinstance(pending, dict) or pending.get("account") != account.id:
            raise ValidationFailed({"setup_token": SETUP_EXPIRED})
        with fields_named({"payment_method": "setup_token"}):
            result = payment_methods.confirm_setup(db.session, account, payment_gateway(),
                                                   pending["setup"], pending["kind"])
        db.session.commit()
        return _added(account.id, result)


@bp.route("/accounts/<id:account_id>/payment-methods/<id:method_id>")
class PaymentMethodItem(MethodView):
    @bp.doc(operationId="getPaymentMethod")
    @bp.response(200, PaymentMethodSchema)
    def get(self, account_id: int, method_id: int):
        """Read a payment method

        One payment method and its standing."""
        return _one(reach(account_id, own_billing=True).account, method_id)

    @bp.doc(operationId="removePaymentMethod")
    @bp.arguments(RemoveArgsSchema, location="query")
    @bp.response(204)
    @bp.alt_response(409, schema=ProblemSchema, content_type=problems.MEDIA_TYPE,
                     description="The method to promote is failing: confirm=true.")
    def delete(self, args, account_id: int, method_id: int):
        """Remove a payment method

        Remove a method (its payments stay in the history). Removing the Primary while
        others remain needs promote_id: the one that becomes Primary. Removing the only one
        leaves auto recharge and the plan fee with nothing to charge until one is added."""
        account = reach(account_id, own_billing=True).account
        try:
            with fields_named({"promote": "promote_id"}):
                payment_methods.remove(db.session, account, method_id, args["promote_id"],
                                       promote_confirmed=args["confirm"])
        except ConfirmationNeeded as e:
            return _asked(e)
        db.session.commit()


class VerifyArgsSchema(ma.Schema):
    first_cents = fields.Integer(required=True, strict=True, metadata={
        "description": "One of the two small deposits on the bank statement, in cents."})
    second_cents = fields.Integer(required=True, strict=True)


@bp.route("/accounts/<id:account_id>/payment-methods/<id:method_id>/verify")
class Verify(MethodView):
    @bp.doc(operationId="verifyBankAccount")
    @bp.arguments(VerifyArgsSchema)
    @bp.response(200, PaymentMethodSchema)
    def post(self, args, account_id: int, method_id: int):
        """Verify a bank account's micro-deposits

        A bank account's two micro-deposits (either order): right → verified (Primary if
        the account has none); wrong → 422 with the tries left; the last try wrong → 422
        and it can't be verified (remove it and add it again)."""
        account = reach(account_id, own_billing=True).account
        with fields_named({"first": "first_cents", "second": "second_cents"}):
            method = payment_methods.verify(
                db.session, account, payment_gateway(), method_id,
                _deposit(args["first_cents"]), _deposit(args["second_cents"]))
        db.session.commit()  # a failed verification is kept: the processor takes no more
        if method.verification == MethodVerification.FAILED:
            raise ValidationFailed({"": payment_methods.VERIFY_FAILED})
        return _one(account, method_id)


def _deposit(cents: int) -> str:
    """Cents as the page's field takes a deposit ("32"); anything else is refused there."""
    return str(cents) if 0 <= cents <= 99 else "x"


def _set_role(account_id: int, method_id: int, role: MethodRole, confirm: bool):
    account = reach(account_id, own_billing=True).account
    try:
        payment_methods.set_role(db.session, account, method_id, role.value,
                                 confirmed=confirm)
    except ConfirmationNeeded as e:
        return _asked(e)
    db.session.commit()
    return _one(account, method_id)


@bp.route("/accounts/<id:account_id>/payment-methods/<id:method_id>/make-primary")
class MakePrimary(MethodView):
    @bp.doc(operationId="makePrimaryPaymentMethod")
    @bp.arguments(RoleArgsSchema)
    @bp.response(200, PaymentMethodSchema)
    @bp.alt_response(409, schema=ProblemSchema, content_type=problems.MEDIA_TYPE,
                     description="It is failing (declined last, or expired): the problem "
                                 "says why (and its `standing`); send confirm=true to go "
                                 "ahead.")
    def post(self, args, account_id: int, method_id: int):
        """Make a payment method the Primary

        Make it the Primary (the Primary before becomes what this one was)."""
        return _set_role(account_id, method_id, MethodRole.PRIMARY, args["confirm"])


@bp.route("/accounts/<id:account_id>/payment-methods/<id:method_id>/make-backup")
class MakeBackup(MethodView):
    @bp.doc(operationId="makeBackupPaymentMethod")
    @bp.arguments(RoleArgsSchema)
    @bp.response(200, PaymentMethodSchema)
    def post(self, args, account_id: int, method_id: int):
        """Make a payment method the Backup

        Make it the Backup (tried when the Primary declines)."""
        return _set_role(account_id, method_id, MethodRole.BACKUP, args["confirm"])
