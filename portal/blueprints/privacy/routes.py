"""GDPR Tools and Redaction (owners and admins): automatic redaction, one caller's export
and erasure, and redacting one call from Call History."""

from flask import Response, flash, g, request, stream_with_context, url_for

from portal.blueprints.privacy import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import render, safe_path, see_other
from portal.services import privacy
from portal.tenancy import allowed_when_canceled


def _page(status=200, errors=None, number=None, count=None):
    return render("privacy/index.html", "caller", status=status, errors=errors or {},
                  number=number, count=count, raw=request.values.get("number", ""))


@bp.get("/")
@admin_required
def index():
    raw = request.args.get("number", "")
    if not raw:
        return _page()
    try:
        number = privacy.normalize_number(raw)
    except ValidationFailed as e:
        return _page(422, e.errors)
    return _page(number=number, count=privacy.caller_count(db.session, g.account, number))


@bp.post("/auto-redact")
@admin_required
def auto_redact():
    on = request.form.get("auto_redact") == "on"
    privacy.set_auto_redact(db.session, g.account, on)
    db.session.commit()
    flash("New calls' caller name, number and notes will be removed on arrival." if on
          else "Automatic redaction is off: new calls keep the caller's details.", "success")
    return see_other(url_for("privacy.index"))


@bp.get("/export.<any(json, csv):fmt>")
@admin_required
def export(fmt: str):
    try:
        number = privacy.normalize_number(request.args.get("number", ""))
    except ValidationFailed as e:
        return _page(422, e.errors)
    safe = number.lstrip("+")
    # Streamed piece by piece (the query runs inside the response), never built whole.
    if fmt == "json":
        body, mimetype = privacy.export_json(db.session, g.account, number), "application/json"
    else:
        body, mimetype = privacy.export_csv(db.session, g.account, number), "text/csv"
    return Response(stream_with_context(body), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="caller-{safe}.{fmt}"',
        "Cache-Control": "no-store"})


@bp.post("/erase")
@allowed_when_canceled  # a caller's rights hold while the data is kept (60 days)
@admin_required
def erase():
    try:
        number = privacy.normalize_number(request.form.get("number", ""))
    except ValidationFailed as e:
        return _page(422, e.errors)
    return submit(
        lambda: privacy.erase(db.session, g.account, number, confirmed(request.form)),
        lambda errors: _page(422, errors, number=number,
                             count=privacy.caller_count(db.session, g.account, number)),
        lambda erased: back(url_for("privacy.index"), "Erased the caller's personal data from "
                            f"{erased} call{'' if erased == 1 else 's'}. It can't be "
                            "recovered."))


@bp.post("/calls/<id:call_id>/redact")
@allowed_when_canceled
@admin_required
def redact(call_id: int):
    to = safe_path(request.form.get("next")) or url_for("calls.index")
    if not confirmed(request.form):
        # Without JavaScript there was no confirmation dialog: ask on a page of its own.
        call = privacy.account_call(db.session, g.account, call_id)
        return render("privacy/redact_confirm.html", call=call, back=to)
    return submit(
        lambda: privacy.redact_call(db.session, g.account, call_id),
        lambda errors: back(to, errors.get("", "That call can't be redacted."), "error"),
        lambda _: back(to, "The caller's name, number and notes were removed from that call."))
