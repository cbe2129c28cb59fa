"""Settings → Developers → Webhooks (issue 18 W), for the account's owners and admins.

GET  /accounts/<id>/developers/webhooks                         endpoints, Add endpoint, the
                                                                delivery log
POST /accounts/<id>/developers/webhooks                         add: the answer shows the
                                                                signing secret once
GET  /accounts/<id>/developers/webhooks/<eid>/rotate            the confirmation dialog
POST /accounts/<id>/developers/webhooks/<eid>/rotate            a new secret (needs
                                                                confirm=yes; shown once, on a
                                                                page of its own); the old one
                                                                signs 24 h more
POST /accounts/<id>/developers/webhooks/<eid>/enabled           enabled=1 or 0
POST /accounts/<id>/developers/webhooks/<eid>/test              Send test event (a ping)
GET  /accounts/<id>/developers/webhooks/<eid>/delete            the confirmation dialog
POST /accounts/<id>/developers/webhooks/<eid>/delete            delete (needs confirm=yes)
POST /accounts/<id>/developers/webhooks/deliveries/<did>/redeliver  pending again, now

Every rule is in portal/services/webhooks.py; the views parse, call it, commit, answer.
"""

from flask import current_app, g, request, url_for
from flask_login import current_user

from portal.blueprints.developers import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.clock import now as clock_now
from portal.extensions import db
from portal.models.webhooks import ALL_EVENTS
from portal.rendering import render, see_other
from portal.services import webhooks

PAGE = "developers/webhooks.html"
SECRET_PAGE = "developers/_webhook_secret.html"


def _short(url: str) -> str:
    """An endpoint's URL in a message: at most 100 characters."""
    return url if len(url) <= 100 else url[:99] + "…"


def _allow_private() -> bool:
    return webhooks.delivery_settings(current_app.config,
                                      current_app.testing or current_app.debug)[1]


def _page(block: str | None = None, status: int = 200, **overrides):
    context = {"endpoints": webhooks.endpoints(db.session, g.account),
               "deliveries": webhooks.log(db.session, g.account),
               "event_types": webhooks.EVENT_TYPES, "all_events": ALL_EVENTS,
               "form": {"events": [ALL_EVENTS]}, "errors": {}, "now": clock_now(),
               "deleting": None, "rotating": None, "retry_window_days": webhooks.RETRY_WINDOW.days,
               "overlap_hours": int(webhooks.ROTATION_OVERLAP.total_seconds() // 3600)}
    context.update(overrides)
    return render(PAGE, block, status=status, **context)


@bp.get("/webhooks", endpoint="webhooks")  # the Developers page links to it by this name
@admin_required
def webhooks_index():
    return _page()


@bp.post("/webhooks")
@admin_required
def webhooks_create():
    form = request.form
    entered = {"url": form.get("url", ""), "description": form.get("description", ""),
               "events": form.getlist("events")}
    return submit(
        lambda: webhooks.create(db.session, g.account, current_user._get_current_object(),
                                entered["url"], entered["description"], entered["events"],
                                allow_private=_allow_private()),
        lambda errors: _page("endpoint_form", 422, form=entered, errors=errors),
        lambda made: _secret_page(made.endpoint, made.secret, rotated=False),
        refused=lambda message: _page("endpoint_form", 403, form=entered,
                                      errors={"": message}))


def _secret_page(endpoint, secret: str, rotated: bool):
    """The signing secret, once, on a short page of its own (on the long page it was drawn
    above the form while the view stayed on the form, out of sight)."""
    return render(SECRET_PAGE, endpoint=endpoint, secret=secret, rotated=rotated)


@bp.route("/webhooks/<id:endpoint_id>/rotate", methods=["GET", "POST"])
@admin_required
def webhooks_rotate(endpoint_id: int):
    endpoint = webhooks.get(db.session, g.account, endpoint_id)
    if request.method == "GET":
        return _page("rotate_dialog", rotating=endpoint)
    if not confirmed(request.form):
        return _page("rotate_dialog", 422, rotating=endpoint,
                     errors={"": "Rotating needs the confirmation: nothing was changed."})
    secret = webhooks.rotate(db.session, endpoint)
    db.session.commit()
    return _secret_page(endpoint, secret, rotated=True)


@bp.post("/webhooks/<id:endpoint_id>/enabled")
@admin_required
def webhooks_enabled(endpoint_id: int):
    endpoint = webhooks.get(db.session, g.account, endpoint_id)
    enabled = request.form.get("enabled") == "1"
    webhooks.set_enabled(db.session, endpoint, enabled)
    db.session.commit()
    return back(url_for("developers.webhooks"),
                f"{'Enabled' if enabled else 'Disabled'} {_short(endpoint.url)}."
                + ("" if enabled else " Its deliveries wait until it is enabled again."))


@bp.post("/webhooks/<id:endpoint_id>/test")
@admin_required
def webhooks_test(endpoint_id: int):
    endpoint = webhooks.get(db.session, g.account, endpoint_id)
    webhooks.send_test(db.session, endpoint)
    db.session.commit()
    if not endpoint.enabled:
        return back(url_for("developers.webhooks"),
                    f"A test event (ping) is queued for {_short(endpoint.url)}, which is disabled: "
                    "it is sent once you enable the endpoint again.")
    return back(url_for("developers.webhooks"),
                f"A test event (ping) is queued for {_short(endpoint.url)}: the delivery log shows "
                "its answer after the next jobs run (within a minute).")


@bp.route("/webhooks/<id:endpoint_id>/delete", methods=["GET", "POST"])
@admin_required
def webhooks_delete(endpoint_id: int):
    endpoint = webhooks.get(db.session, g.account, endpoint_id)
    if request.method == "GET":
        return _page("delete_dialog", deleting=endpoint)
    if not confirmed(request.form):
        return _page("delete_dialog", 422, deleting=endpoint,
                     errors={"": "Deleting needs the confirmation: nothing was changed."})
    url = endpoint.url
    webhooks.remove(db.session, endpoint, request.form.get("confirm"))
    db.session.commit()
    return back(url_for("developers.webhooks"),
                f"Deleted the endpoint {_short(url)}: it gets no more events.")


@bp.post("/webhooks/deliveries/<id:delivery_id>/redeliver")
@admin_required
def webhooks_redeliver(delivery_id: int):
    delivery = webhooks.redeliver(db.session, g.account, delivery_id)
    db.session.commit()
    what = f"{delivery.event.type} ({delivery.event.public_id})"
    if not delivery.endpoint.enabled:
        return back(url_for("developers.webhooks"),
                    f"{what} will be sent again to {_short(delivery.endpoint.url)} once you enable "
                    "that endpoint: it is disabled.")
    return back(url_for("developers.webhooks"),
                f"{what} will be sent again to {_short(delivery.endpoint.url)} at the next "
                "jobs run (within a minute).")


@bp.get("/webhooks/<id:endpoint_id>/test")
@bp.get("/webhooks/<id:endpoint_id>/enabled")
@admin_required
def webhooks_reloaded(endpoint_id: int):
    """A POST's address opened (a reload after the secret was shown): the page."""
    return see_other(url_for("developers.webhooks"))
