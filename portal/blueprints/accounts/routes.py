from flask import abort, current_app, g, request

from portal.blueprints.accounts import bp
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import render
from portal.services import accounts
from portal.services.paging import parse_page


@bp.get("/")
def show():
    """Settings → Account Settings."""
    agency = None
    if g.account.is_sub:
        agency = db.session.get(type(g.account), g.account.parent_id)
    return render("accounts/show.html", agency=agency)


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
    result = accounts.list_sub_accounts(
        db.session, g.account, q=q, status=status, page=page,
        per_page=current_app.config["ACCOUNTS_PER_PAGE"],
    )
    return render("accounts/index.html", "results", status=422 if errors else 200,
                  result=result, q=q, current_filter=status, errors=errors,
                  filters=accounts.FILTER_LABELS)
