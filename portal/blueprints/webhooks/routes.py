import logging

from flask import current_app, jsonify, request

from portal.blueprints.webhooks import bp
from portal.extensions import db
from portal.services import charges, processor_events
from portal.services.gateway import BadSignature

log = logging.getLogger("portal.webhooks")


def stripe_gateway():
    """The app's gateway when it is Stripe; else one made from the STRIPE_* settings (an
    app still on the sandbox receiving Stripe's events); None when Stripe isn't set up."""
    gateway = current_app.extensions.get("payment_gateway")
    if getattr(gateway, "name", "") == "stripe":
        return gateway
    made = current_app.extensions.get("stripe_gateway")
    if made is None:
        from portal.services.stripe_gateway import StripeGateway, missing_settings

        if missing_settings(current_app.config):
            return None
        made = current_app.extensions["stripe_gateway"] = StripeGateway.from_config(
            current_app.config)
    return made


@bp.post("/stripe")
def stripe_event():
    gateway = stripe_gateway()
    if gateway is None:
        return jsonify(error="Stripe is not configured here."), 404
    try:
        event = gateway.parse_event(request.get_data(cache=False),
                                    request.headers.get("Stripe-Signature", ""))
    except BadSignature as e:
        log.warning("webhook refused: %s", e)
        return jsonify(error="The signature could not be verified."), 400
    try:
        outcome = processor_events.apply(db.session, gateway, event)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("webhook %s (%s) failed; the processor will deliver it again",
                      event.id, event.type)
        return jsonify(error="Not applied; deliver it again."), 500
    if outcome == "applied":
        _after(gateway, event)
    return jsonify(received=True, outcome=outcome), 200


def _after(gateway, event) -> None:
    """The settled charge's next step (charges.after_event), after the event's commit. The
    event is applied whatever happens here: an error is logged (the jobs' retries and the
    next usage catch up), not answered 500, which would have the processor resend it."""
    try:
        charge = processor_events.settled_charge(db.session, event)
        if charge is not None:
            charges.after_event(db.session, gateway, charge)
    except Exception:
        db.session.rollback()
        log.exception("webhook %s (%s): applied; its next step failed", event.id, event.type)
