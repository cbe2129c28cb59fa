"""/api/v1/accounts/<id>/billing-mode: an agency's sub-account on agency or customer billing
(Settings → Accounts, the Billing column's pencil), over the billing links' service.

An agency's key (owner or admin, Can.AGENCY) on one of its sub-accounts:
- remove-from-agency-billing: a pending billing request and the emailed one-time link (the
  customer pays at least the starting balance, never below $25, to switch it); the answer
  is the request, never its link;
- billing-requests: the sub-account's requests from this agency; resend (a new link, the old
  one stops working) and cancel the pending one;
- add-to-agency-billing: its payment methods and recharge go, its balance moves to the
  agency's (needs {"confirm": true}, as the dialog's warning).
A sub-account's own key reaches the account but not its billing mode (403: the agency
decides); a state the service refuses (a canceled account, nothing pending, already on that
billing) is a 409 with the page's sentence.
"""

from contextlib import contextmanager

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

import billing_links
from billing_links import service as link_service
from billing_links.models import BillingRequest, RequestStatus
from portal import roles, rules
from portal.blueprints.api_v1 import auth, blueprint, paging
from portal.blueprints.api_v1.accounts import (
    AccountDetailSchema,
    ConfirmSchema,
    StateConflict,
    answer,
    conflicts,
    reach,
)
from portal.blueprints.api_v1.schemas import PageArgsSchema, page_schema
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.extensions import db
from portal.mail import notices
from portal.models import Account
from portal.services.money import plain

bp = blueprint("billing_mode", "Billing mode: agency or customer billing, the removal "
                               "requests and their links.")

BASE = "/accounts/<id:account_id>/billing-mode"


class BillingRequestSchema(ma.Schema):
    """A Remove from Agency Billing request. Its link is only in the customer's email."""

    id = fields.Integer(required=True)
    sub_account_id = fields.Integer(required=True)
    status = fields.Enum(RequestStatus, by_value=True, required=True, metadata={
        "description": "pending (emailed, waiting), paid (the customer paid: the "
                       "sub-account is on customer billing), canceled, replaced (a newer "
                       "link was sent)."})
    email = fields.String(required=True)
    amount_cents = fields.Integer(required=True, metadata={
        "description": "The starting balance asked: the customer pays at least this."})
    message = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    closed_at = fields.DateTime(allow_none=True, required=True)


class RemovalSchema(ma.Schema):
    email = fields.String(required=True, validate=validate.Length(max=254), metadata={
        "description": "The customer's email: the link is sent there."})
    amount_cents = fields.Integer(required=True, strict=True, metadata={
        "description": f"The starting balance, at least {rules.MIN_STARTING_BALANCE_CENTS} "
                       "($25.00)."})
    message = fields.String(load_default="", metadata={
        "description": "A message to the customer, in the email (at most 2,000 "
                       "characters)."})


class MovedSchema(ma.Schema):
    account = fields.Nested(AccountDetailSchema, required=True)
    moved_cents = fields.Integer(required=True, metadata={
        "description": "The sub-account's balance moved to the agency's (negative: a debt "
                       "the agency took on)."})


BillingRequestPage = page_schema(BillingRequestSchema, "BillingRequestPage")


def _agency_and_sub(account_id: int) -> tuple[Account, Account]:
    """The key's agency and its sub-account `account_id` (404 for any other account the
    key doesn't reach; 403 for a sub-account's own key). A canceled one is refused by the
    services (409), with their sentence."""
    access = reach(account_id, roles.Can.AGENCY)
    if not access.via_agency:
        if access.account.is_sub:
            raise NotAllowed("A sub-account's billing mode is decided by its agency: use a "
                             "key of the agency.")
        raise NotFound("No such sub-account.")
    agency = auth.key().account
    sub = link_service.sub_of(db.session, agency, account_id)
    return agency, sub


@contextmanager
def _amount_field():
    """The service reads the page's dollar field "amount": its errors name amount_cents."""
    try:
        yield
    except ValidationFailed as e:
        errors = {("amount_cents" if k == "amount" else k): v for k, v in e.errors.items()}
        raise ValidationFailed(errors) from None


def _request_of(sub: Account, agency: Account, request_id: int) -> BillingRequest:
    found = db.session.scalar(select(BillingRequest).where(
        BillingRequest.id == request_id, BillingRequest.sub_account_id == sub.id,
        BillingRequest.agency_id == agency.id))
    if found is None:
        raise NotFound("No such billing request.")
    return found


def _pending(sub: Account, agency: Account, request_id: int) -> BillingRequest:
    found = _request_of(sub, agency, request_id)
    if found.status != RequestStatus.PENDING:
        raise StateConflict(f"The billing request to {found.email} is {found.status.value}, "
                            "not pending.")
    return found


@bp.route(f"{BASE}/remove-from-agency-billing")
class RemoveFromAgencyBilling(MethodView):
    @bp.doc(operationId="removeFromAgencyBilling")
    @bp.arguments(RemovalSchema, location="json")
    @bp.response(201, BillingRequestSchema)
    def post(self, body, account_id: int):
        """Remove from agency billing ("Email Client")

        A pending request (replacing any earlier one) and an email to
        the customer with a secure one-time link (7 days). The sub-account stays on agency
        billing until the customer pays."""
        agency, sub = _agency_and_sub(account_id)
        with conflicts(), _amount_field():
            request, url = link_service.request_removal(
                db.session, billing_links.settings(current_app), agency, sub, auth.actor(),
                body["email"], plain(body["amount_cents"]), body["message"])
        notices.link_request(db.session, agency, sub, request, url)
        db.session.commit()
        return request


@bp.route(f"{BASE}/billing-requests")
class BillingRequests(MethodView):
    @bp.doc(operationId="listBillingRequests")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, BillingRequestPage)
    def get(self, args, account_id: int):
        """List the billing requests

        The sub-account's requests from this agency, newest first."""
        agency, sub = _agency_and_sub(account_id)
        query = select(BillingRequest).where(BillingRequest.sub_account_id == sub.id,
                                             BillingRequest.agency_id == agency.id)
        return paging.page(db.session, query, BillingRequest.id, args["limit"],
                           args["cursor"])


@bp.route(f"{BASE}/billing-requests/<id:request_id>/resend")
class ResendBillingRequest(MethodView):
    @bp.doc(operationId="resendBillingRequest")
    @bp.response(201, BillingRequestSchema)
    def post(self, account_id: int, request_id: int):
        """Resend the billing link

        A new link for the same email, amount and message (a new request: its id is
        new); the earlier link stops working. Only the pending request (409 otherwise)."""
        agency, sub = _agency_and_sub(account_id)
        _pending(sub, agency, request_id)
        with conflicts():
            request, url = link_service.resend(
                db.session, billing_links.settings(current_app), agency, sub, auth.actor())
        notices.link_request(db.session, agency, sub, request, url)
        db.session.commit()
        return request


@bp.route(f"{BASE}/billing-requests/<id:request_id>/cancel")
class CancelBillingRequest(MethodView):
    @bp.doc(operationId="cancelBillingRequest")
    @bp.response(200, BillingRequestSchema)
    def post(self, account_id: int, request_id: int):
        """Cancel the billing request

        Its link stops working; the sub-account stays on
        agency billing. Only the pending request (409 otherwise)."""
        agency, sub = _agency_and_sub(account_id)
        _pending(sub, agency, request_id)
        with conflicts():
            canceled = link_service.cancel_request(db.session, agency, sub, auth.actor())
        db.session.commit()
        return canceled


@bp.route(f"{BASE}/add-to-agency-billing")
class AddToAgencyBilling(MethodView):
    @bp.doc(operationId="addToAgencyBilling")
    @bp.arguments(ConfirmSchema, location="json")
    @bp.response(200, MovedSchema)
    def post(self, _body, account_id: int):
        """Add to agency billing

        The sub-account's payment methods and auto recharge are
        removed, its balance moves to the agency's (a pair of ledger entries), its pending
        request is canceled, its owners and admins and last customer are emailed. Needs
        `{"confirm": true}`: its billing information is lost."""
        agency, sub = _agency_and_sub(account_id)
        with conflicts():
            moved = link_service.add_to_agency_billing(db.session, agency, sub, auth.actor())
        result = {"account": answer(sub), "moved_cents": moved}
        db.session.commit()
        return result
