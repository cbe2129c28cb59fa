from flask import Response, current_app, g, request, stream_with_context

from portal.blueprints.calls import bp
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import render
from portal.services import calls
from portal.services.paging import Page, parse_page


@bp.get("/")
def index():
    """Call history with a date filter (UTC)."""
    args = request.args
    try:
        when = calls.parse_range(args.get("from"), args.get("to"))
        page = parse_page(args.get("page"))
    except ValidationFailed as e:
        return _invalid(e)
    result = calls.list_calls(db.session, g.account, when, page=page,
                              per_page=current_app.config["CALLS_PER_PAGE"])
    return render("calls/index.html", "results", result=result, args=args, errors={})


@bp.get("/export.csv")
def export():
    """The filtered call history as CSV, streamed row batch by row batch."""
    args = request.args
    try:
        when = calls.parse_range(args.get("from"), args.get("to"))
    except ValidationFailed as e:
        return _invalid(e)
    filename = f"calls-{g.account.id}.csv"
    return Response(
        stream_with_context(calls.export_csv(db.session, g.account, when)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _invalid(e: ValidationFailed):
    """The page again with the filter's errors and no rows: 422."""
    empty = Page(items=[], total=0, number=1, per_page=1)
    return render("calls/index.html", "results", status=422, result=empty,
                  args=request.args, errors=e.errors)
