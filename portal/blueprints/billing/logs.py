"""Billing Logs: the ledger, searchable, and its CSV export."""

from flask import Response, current_app, g, request, stream_with_context

from portal.blueprints.billing import bp
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.models import LEDGER_LABELS
from portal.rendering import render
from portal.services import billing_logs
from portal.services.paging import parse_page


# Readable on agency billing too: its own past ledger (issue 14).
@bp.get("/logs")
def logs():
    args = request.args
    try:
        log_filter = billing_logs.parse_filter(args)
        number = parse_page(args.get("page"))
    except ValidationFailed as e:
        return render("billing/logs.html", "results", status=422, entries=None, args=args,
                      errors=e.errors, kinds=LEDGER_LABELS)
    entries = billing_logs.page(db.session, g.account, log_filter, number,
                                current_app.config["BILLING_LOGS_PER_PAGE"])
    return render("billing/logs.html", "results", entries=entries, args=args, errors={},
                  kinds=LEDGER_LABELS, labels=LEDGER_LABELS)


# Readable on agency billing too: its own past ledger (issue 14).
@bp.get("/logs.csv")
def logs_csv():
    try:
        log_filter = billing_logs.parse_filter(request.args)
    except ValidationFailed as e:
        return render("billing/logs.html", "results", status=422, entries=None,
                      args=request.args, errors=e.errors, kinds=LEDGER_LABELS)
    return Response(
        stream_with_context(billing_logs.export_csv(db.session, g.account, log_filter)),
        mimetype="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="billing-logs-{g.account.id}.csv"'})
