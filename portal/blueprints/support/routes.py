"""Support requests (the "ticket portal"): refunds, restoring numbers past 14 days,
reactivating a canceled agency."""

from flask import flash, g, request, url_for
from flask_login import current_user

from portal.blueprints.support import bp
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.models import SUPPORT_LABELS
from portal.rendering import render, see_other
from portal.services import numbers, support
from portal.services.inputs import to_id
from portal.tenancy import allowed_when_canceled, require_admin


def _page(form, errors, status=200):
    return render("support/index.html", "request_form", status=status, form=form,
                  errors=errors, kinds=SUPPORT_LABELS,
                  tickets=support.requests_for(db.session, g.account),
                  released=numbers.released(db.session, g.account))


@bp.get("/")
def index():
    require_admin()
    return _page(form=request.args, errors={})


@bp.post("/")
@allowed_when_canceled
def create():
    require_admin()
    form = request.form
    number_id = form.get("number_id", "")
    try:
        ticket = support.request(
            db.session, g.account, current_user, form.get("kind", ""), form.get("message", ""),
            number_id=to_id(number_id))
    except ValidationFailed as e:
        db.session.rollback()
        return _page(form, e.errors, 422)
    db.session.commit()
    flash(f"Support request #{ticket.id} is sent: {ticket.label}. We'll answer by email.",
          "success")
    return see_other(url_for("support.index"))
