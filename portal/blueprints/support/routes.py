"""Support requests (the "ticket portal"): refunds, restoring numbers past 14 days,
reactivating a canceled agency."""

from flask import g, request, url_for
from flask_login import current_user

from portal.blueprints.support import bp
from portal.blueprints.views import admin_required, back, submit
from portal.extensions import db
from portal.models import SUPPORT_LABELS
from portal.rendering import render
from portal.services import numbers, support
from portal.services.inputs import to_id
from portal.tenancy import allowed_when_canceled


def _page(form, errors, status=200):
    return render("support/index.html", "request_form", status=status, form=form,
                  errors=errors, kinds=SUPPORT_LABELS,
                  tickets=support.requests_for(db.session, g.account),
                  released=numbers.released(db.session, g.account))


@bp.get("/")
@admin_required
def index():
    return _page(form=request.args, errors={})


@bp.post("/")
@allowed_when_canceled
@admin_required
def create():
    form = request.form
    return submit(
        lambda: support.request(db.session, g.account, current_user, form.get("kind", ""),
                                form.get("message", ""), number_id=to_id(form.get("number_id"))),
        lambda errors: _page(form, errors, 422),
        lambda ticket: back(url_for("support.index"), f"Support request #{ticket.id} is sent: "
                            f"{ticket.label}. We'll answer by email."))
