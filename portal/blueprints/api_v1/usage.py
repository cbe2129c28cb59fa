"""/api/v1: Usage: one posting, or batches of up to 1,000 events (issue 18 M).

Both need a key with the `metering` scope. The batch's events are checked by hand
(services/metering.py: a marshmallow schema per event is too slow for 1,000 of them); the
schemas below describe the request and the answer in the OpenAPI document only. The single
posting is the one `/api/accounts/<id>/usage` takes (usage.post_and_recharge), over a key.
"""

import marshmallow as ma
from flask import jsonify, request
from marshmallow import fields, validate

from portal import rules
from portal.blueprints.api_v1 import auth, blueprint
from portal.blueprints.api_v1.accounts import conflicts
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.services import charges, metering, usage

bp = blueprint("usage", "Usage: one posting, or batches of up to 1,000 events.")

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,80}$"


# --------------------------------------------------------------- schemas (the document's)

class UsageEventSchema(ma.Schema):
    id = fields.String(required=True, validate=[validate.Length(1, 80),
                                                validate.Regexp(ID_PATTERN)], metadata={
        "description": "Your id for the event: accepted once per account, forever."})
    account = fields.Integer(required=True, strict=True,
                             validate=validate.Range(1, metering.MAX_ID), metadata={
                                 "description": "The metered account: the key's own, or for "
                                                "an agency's key one of its sub-accounts."})
    item = fields.String(required=True, validate=validate.OneOf(usage.ITEMS))
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(1, rules.MAX_USAGE_QUANTITY))
    timestamp = fields.DateTime(required=True, metadata={
        "description": "When it happened, ISO 8601 with a timezone: from "
                       f"{rules.USAGE_EVENT_MAX_AGE_DAYS} days back to "
                       f"{rules.USAGE_EVENT_MAX_AHEAD_SECONDS // 60} minutes ahead."})


class UsageBatchSchema(ma.Schema):
    events = fields.List(fields.Nested(UsageEventSchema), required=True,
                         validate=validate.Length(1, rules.MAX_USAGE_BATCH_EVENTS))


class RefusedEventSchema(ma.Schema):
    id = fields.String(allow_none=True, required=True)
    index = fields.Integer(required=True, metadata={"description": "From 0."})
    code = fields.String(required=True, validate=validate.OneOf(metering.CODES))
    reason = fields.String(required=True)
    field = fields.String(required=True, metadata={
        "description": "id, account, item, quantity, timestamp, or empty (the event)."})


class BatchEntrySchema(ma.Schema):
    id = fields.Integer(required=True)
    account_id = fields.Integer(required=True, metadata={
        "description": "Whose balance paid: the agency's for agency billing."})
    for_account_id = fields.Integer(required=True, metadata={
        "description": "The metered account."})
    item = fields.String(required=True)
    quantity = fields.Integer(required=True)
    events = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)
    balance_after_cents = fields.Integer(required=True)


class BatchRechargeSchema(ma.Schema):
    id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    status = fields.String(required=True)
    amount_cents = fields.Integer(required=True)


class BatchCountsSchema(ma.Schema):
    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    refused = fields.Integer(required=True)


class BatchResultSchema(ma.Schema):
    batch = fields.String(required=True, metadata={
        "description": "The batch's id (empty when it accepted nothing)."})
    received = fields.Integer(required=True)
    counts = fields.Nested(BatchCountsSchema, required=True)
    accepted = fields.List(fields.String(), required=True)
    duplicates = fields.List(fields.String(), required=True, metadata={
        "description": "Accepted before, by an earlier request: not debited again."})
    refused = fields.List(fields.Nested(RefusedEventSchema), required=True)
    entries = fields.List(fields.Nested(BatchEntrySchema), required=True, metadata={
        "description": "The ledger entries written: one per paying account, metered account "
                       "and item."})
    recharges = fields.List(fields.Nested(BatchRechargeSchema), required=True)


class UsagePostingSchema(ma.Schema):
    idempotency_key = fields.String(validate=[validate.Length(1, 80),
                                              validate.Regexp(ID_PATTERN)], metadata={
        "description": "Required here or as the Idempotency-Key header."})
    items = fields.Dict(keys=fields.String(validate=validate.OneOf(usage.ITEMS)),
                        values=fields.Integer(validate=validate.Range(
                            0, rules.MAX_USAGE_QUANTITY)), required=True)


class UsageRechargeSchema(ma.Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    reason = fields.String(required=True)


class UsagePostedSchema(ma.Schema):
    entry_id = fields.Integer(required=True)
    account_id = fields.Integer(required=True)
    paid_by_account_id = fields.Integer(required=True)
    amount_cents = fields.Integer(required=True)
    balance_after_cents = fields.Integer(required=True)
    duplicate = fields.Boolean(required=True)
    recharge = fields.Nested(UsageRechargeSchema, allow_none=True, required=True)


def _body(schema: type[ma.Schema]) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _json():
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


# --------------------------------------------------------------- routes

@bp.route("/usage/batches", methods=["POST"])
@bp.doc(operationId="postUsageBatch", requestBody=_body(UsageBatchSchema))
@bp.response(200, BatchResultSchema, description="Every event accepted or a duplicate.")
@bp.alt_response(207, schema=BatchResultSchema,
                 description="Some events refused (each with its reason); the others are "
                             "accepted or duplicates.")
@auth.requires("metering")
def post_batch():
    """Post a batch of usage events

    Up to 1,000 events, each accepted once per account forever, a duplicate, or refused
    with its reason (never the whole batch). Accepted events are debited as one ledger entry
    per paying account, metered account and item; recharges, low-balance alerts and budgets
    are evaluated once per batch."""
    key = auth.key()
    try:
        received = metering.receive(db.session, key.account, _json(), api_key_id=key.id,
                                    actor=None)
        body = received.as_json()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if received.recharges:
        gateway = payment_gateway()
        ran = [charges.run_recharge(db.session, gateway, charge)
               for charge in received.recharges]
        body["recharges"] = received.as_json(ran)["recharges"]
    return jsonify(body), 207 if received.refused else 200


@bp.route("/accounts/<id:account_id>/usage", methods=["POST"])
@bp.doc(operationId="postUsage", requestBody=_body(UsagePostingSchema))
@bp.response(201, UsagePostedSchema, description="Posted (and the recharge it started, run).")
@bp.alt_response(200, schema=UsagePostedSchema,
                 description="This key was posted before: nothing more was debited.")
@auth.requires("metering")
def post_usage(account_id: int):
    """Post usage for one account

    The single posting (as `/api/accounts/{id}/usage`): several items under one
    idempotency key, debited once from whoever pays for the account."""
    account = auth.reach(account_id).account
    data = _json()
    if not isinstance(data, dict):
        raise ValidationFailed({"items": "Send a JSON object: {\"idempotency_key\": ..., "
                                         "\"items\": {\"minutes\": 12, ...}}."})
    key = data.get("idempotency_key") or request.headers.get("Idempotency-Key", "")
    try:
        with conflicts():
            received = usage.post_and_recharge(db.session, payment_gateway(), account,
                                               data.get("items"), key)
    except Exception:
        db.session.rollback()
        raise
    return jsonify(received.as_json()), 200 if received.duplicate else 201

