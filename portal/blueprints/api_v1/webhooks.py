"""/api/v1: outgoing webhooks, read-only (issue 18 W): an account's endpoints (never their
secrets), the events about it, and the deliveries to its endpoints (the page's delivery
log). Endpoints are added, rotated and deleted on Settings → Developers → Webhooks, where the
signing secret is shown once. Owner and admin keys (as the page)."""

import json

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal import roles
from portal.blueprints.api_v1 import auth, blueprint, paging
from portal.blueprints.api_v1.schemas import PageArgsSchema, page_schema
from portal.errors import NotFound
from portal.extensions import db
from portal.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.services import webhooks

bp = blueprint("webhooks", (
    "Outgoing webhooks: endpoints, events, deliveries (read-only; endpoints are managed on "
    "Settings → Developers → Webhooks, where each one's signing secret `whsec_…` is shown "
    "once). Each delivery is a POST of the event's JSON with the headers `Portal-Event-Id`, "
    "`Portal-Event-Type` and `Portal-Signature: t=<unix seconds>,v1=<hex>`, where v1 is "
    "HMAC-SHA256 keyed with the whole secret of `<t>.<raw body>` (two v1 values for 24 hours "
    "after a rotation: accept either). Refuse a t more than 5 minutes from now. Any 2xx is "
    "success; anything else is retried after 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, then "
    "daily, for 3 days."))

TYPES = sorted([*webhooks.EVENT_TYPES, webhooks.PING])


class EndpointSchema(ma.Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    description = fields.String(required=True)
    events = fields.List(fields.String(), required=True, metadata={
        "description": '["*"] for every type, else the types it hears.'})
    enabled = fields.Boolean(required=True)
    secret_rotating_until = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "After a rotation: the previous secret also signs until then."})
    created_at = fields.DateTime(required=True)


class EventSchema(ma.Schema):
    id = fields.String(required=True, metadata={"description": "evt_…, as in the payload."})
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    created = fields.Integer(required=True, metadata={"description": "Unix seconds."})
    account_id = fields.Integer(required=True)
    data = fields.Dict(required=True, metadata={
        "description": "As delivered: the account, and the object the event is about "
                       "(money in cents)."})


class DeliverySchema(ma.Schema):
    id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    endpoint_id = fields.Integer(required=True)
    url = fields.String(required=True)
    status = fields.Enum(DeliveryStatus, by_value=True, required=True)
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(allow_none=True, required=True)
    last_error = fields.String(required=True)
    last_attempt_at = fields.DateTime(allow_none=True, required=True)
    next_attempt_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "Pending: when it is tried next."})
    delivered_at = fields.DateTime(allow_none=True, required=True)


class EventArgsSchema(PageArgsSchema):
    type = fields.String(load_default=None, validate=validate.OneOf(TYPES), metadata={
        "description": "Only events of this type."})


class DeliveryArgsSchema(PageArgsSchema):
    status = fields.Enum(DeliveryStatus, by_value=True, load_default=None, metadata={
        "description": "Only deliveries in this state."})


EndpointList = page_schema(EndpointSchema, "WebhookEndpointPage")
EventPage = page_schema(EventSchema, "WebhookEventPage")
DeliveryPage = page_schema(DeliverySchema, "WebhookDeliveryPage")


def _account(account_id: int):
    return auth.reach(account_id, roles.Can.SETTINGS).account


def _endpoint(endpoint: WebhookEndpoint) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "events": ["*"] if endpoint.all_events else endpoint.event_types.split(),
            "enabled": endpoint.enabled,
            "secret_rotating_until": endpoint.previous_secret_expires_at,
            "created_at": endpoint.created_at}


def _event(event: WebhookEvent) -> dict:
    return json.loads(event.payload)


def _delivery(delivery: WebhookDelivery) -> dict:
    return {"id": delivery.id, "event_id": delivery.event.public_id,
            "event_type": delivery.event.type, "endpoint_id": delivery.endpoint_id,
            "url": delivery.endpoint.url, "status": delivery.status,
            "attempts": delivery.attempts, "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error, "last_attempt_at": delivery.last_attempt_at,
            "next_attempt_at": delivery.next_attempt_at
            if delivery.status == DeliveryStatus.PENDING else None,
            "delivered_at": delivery.delivered_at}


def _mapped(page: dict, to) -> dict:
    return {**page, "data": [to(row) for row in page["data"]]}


@bp.route("/accounts/<id:account_id>/webhook-endpoints")
class Endpoints(MethodView):
    @bp.doc(operationId="listWebhookEndpoints")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, EndpointList)
    def get(self, args, account_id: int):
        """List the account's webhook endpoints

        Newest first; never their secrets (shown once on the Developers page)."""
        account = _account(account_id)
        query = select(WebhookEndpoint).where(WebhookEndpoint.account_id == account.id)
        return _mapped(paging.page(db.session, query, WebhookEndpoint.id, args["limit"],
                                   args["cursor"]), _endpoint)


@bp.route("/accounts/<id:account_id>/webhook-events")
class Events(MethodView):
    @bp.doc(operationId="listWebhookEvents")
    @bp.arguments(EventArgsSchema, location="query")
    @bp.response(200, EventPage)
    def get(self, args, account_id: int):
        """List the events about an account

        Newest first, as delivered (kept 30 days). An agency's endpoints also hear its
        sub-accounts' events: list those with the sub-account's id."""
        account = _account(account_id)
        query = webhooks.events_query([account.id], args["type"])
        return _mapped(paging.page(db.session, query, WebhookEvent.id, args["limit"],
                                   args["cursor"]), _event)


@bp.route("/accounts/<id:account_id>/webhook-events/<event_id>")
class EventItem(MethodView):
    @bp.doc(operationId="getWebhookEvent")
    @bp.response(200, EventSchema)
    def get(self, account_id: int, event_id: str):
        """Get one event about an account

        By its `evt_…` id, as a delivery's `Portal-Event-Id` names it: a receiver that
        missed or doubts a delivery reads the event here (kept 30 days)."""
        account = _account(account_id)
        event = db.session.scalar(webhooks.events_query([account.id]).where(
            WebhookEvent.public_id == event_id[:40]))
        if event is None:
            raise NotFound("No such event about this account (events are kept 30 days).")
        return _event(event)


@bp.route("/accounts/<id:account_id>/webhook-deliveries")
class Deliveries(MethodView):
    @bp.doc(operationId="listWebhookDeliveries")
    @bp.arguments(DeliveryArgsSchema, location="query")
    @bp.response(200, DeliveryPage)
    def get(self, args, account_id: int):
        """List the deliveries to the account's endpoints

        The page's delivery log, newest first: status, attempts, the last answer, the
        next try. Redeliver on the Developers page."""
        account = _account(account_id)
        query = (select(WebhookDelivery)
                 .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                 .where(WebhookEndpoint.account_id == account.id))
        if args["status"] is not None:
            query = query.where(WebhookDelivery.status == args["status"])
        return _mapped(paging.page(db.session, query, WebhookDelivery.id, args["limit"],
                                   args["cursor"]), _delivery)
