"""Change History (every version of the account) and the Versions panels' contents."""

from flask import current_app, g, request

from portal.blueprints.history import bp
from portal.blueprints.views import admin_required
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import render
from portal.services import history
from portal.services.paging import Page, parse_page
from portal.versioning import RECORD_TYPES


def _page(result, filters_args, errors, status=200):
    # The filter form is drawn with the results (a partial swaps both, so a history restore
    # shows the filter the rows were drawn from); the user filter's choices are over the
    # versions the page can show.
    actors = history.actors(
        db.session, g.account, g.account.is_agency and bool(filters_args.get("subs")))
    return render("history/index.html", "results", status=status, result=result,
                  args=filters_args, errors=errors, record_types=RECORD_TYPES,
                  actors=actors,
                  names=history.account_names(db.session, g.account),
                  retention_days=history.retention(g.account).days)


@bp.get("/")
@admin_required
def index():
    try:
        filters = history.parse_filters(g.account, request.args)
        page = parse_page(request.args.get("page"))
    except ValidationFailed as e:
        empty = Page(items=[], total=0, number=1, per_page=1)
        return _page(empty, request.args, e.errors, status=422)
    result = history.change_history(db.session, g.account, filters, page=page,
                                    per_page=current_app.config["VERSIONS_PER_PAGE"])
    return _page(result, filters.args(), {})


@bp.get("/versions")
@admin_required
def versions():
    """One record's versions: a feature page's panel (htmx) or a page of its own."""
    record_type = request.args.get("type", "")
    record_id = None
    try:
        record_id = history.parse_record_id(request.args.get("id"))
        items = history.record_versions(db.session, g.account, record_type, record_id)
    except ValidationFailed as e:
        return _versions([], e.errors, record_type, record_id, status=422)
    return _versions(items, {}, record_type, record_id)


def _versions(items, errors, record_type, record_id, status=200):
    return render("history/versions.html", "panel", status=status, items=items,
                  errors=errors, record_type=record_type, record_id=record_id,
                  record_types=RECORD_TYPES,
                  retention_days=history.retention(g.account).days)
