from flask import abort, current_app, g, request

from billing_links import service as link_service
from portal.blueprints.accounts import bp
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.models import BULK_LABELS
from portal.rendering import render
from portal.services import accounts, lifecycle
from portal.services.paging import parse_page


@bp.get("/")
def show():
    """Settings → Account Settings: the account, its Status section and its activity."""
    return render("accounts/show.html", agency=g.account.parent,
                  windows=lifecycle.windows(g.account),
                  status_actions=lifecycle.status_actions(g.account),
                  events=lifecycle.events(db.session, g.account))


@bp.get("/sub-accounts")
def index():
    """Settings → Accounts: the agency's sub-accounts, searchable and filtered."""
    if not g.account.is_agency or not g.access.is_admin:
        abort(404)
    q = request.args.get("q", "")[:120]
    errors = {}
    try:
        status = accounts.parse_filter(request.args.get("status"))
    except ValidationFailed as e:
        errors.update(e.errors)
        status = accounts.SubAccountFilter.ACTIVE
    try:
        page = parse_page(request.args.get("page"))
    except ValidationFailed as e:
        errors.update(e.errors)
        page = 1
    sort = request.args.get("sort", "name")
    if sort not in accounts.SORTS:
        sort = "name"  # a link's parameter: an unknown one sorts by name
    result = accounts.list_sub_accounts(
        db.session, g.account, q=q, status=status, page=page,
        per_page=current_app.config["ACCOUNTS_PER_PAGE"], sort=sort,
    )
    pending = link_service.pending_for(db.session, [row.id for row in result.items])
    return render("accounts/index.html", "results", status=422 if errors else 200,
                  **index_context(result, q=q, status=status, errors=errors, pending=pending,
                                  sort=sort))


def index_context(result, *, q: str, status, errors: dict, pending: dict,
                  sort: str = "name") -> dict:
    """What accounts/index.html renders besides g and current_user: the page of rows, the
    search and filter as asked, and each row's pending billing request (the Billing
    column). bench/accounts_list.py renders its baseline with it, so the two stay alike."""
    return {"result": result, "q": q, "current_filter": status, "errors": errors,
            "filters": accounts.FILTER_LABELS, "pending": pending, "sort": sort,
            "bulk_labels": BULK_LABELS}  # issue 17 (K): the bulk actions' menu
