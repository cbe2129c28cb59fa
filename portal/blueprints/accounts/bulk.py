"""Settings → Accounts, bulk actions (issue 17, K): the list's ticked rows (or "all N
matching" its filter) → a confirmation page listing every sub-account and what will happen
to it (GET: nothing is stored; it carries a new key) → POST runs it, each row in its own
transaction → the results page (a row each: done / already / refused and why). Posting the
same confirmation again shows the stored results (the key is UNIQUE per agency).
Agency owners and admins; Close is for owners (as closing one sub-account is)."""

from flask import current_app, g, request, url_for
from flask_login import current_user

import billing_links
from portal import roles, rules
from portal.blueprints.accounts import bp
from portal.blueprints.security import recent_signin_required
from portal.blueprints.views import admin_required, agency_only, back, confirmed
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.mail import notices
from portal.models import BULK_LABELS, BulkKind, RowOutcome
from portal.rendering import render, see_other
from portal.services import accounts, budgets, bulk
from portal.services.money import plain

TEMPLATE = "accounts/bulk.html"
RESULTS = "accounts/bulk_results.html"
ACTION_HINTS = {
    BulkKind.SEND_LINKS: "Each sub-account on agency billing gets its own link: an email "
                         "address and a starting balance for each (or upload a CSV).",
    BulkKind.AGENCY_BILLING: "Each customer-billed sub-account loses its payment methods "
                             "and auto recharge; its balance moves to the agency's.",
    BulkKind.PAUSE: "Numbers stop swapping on web pages; calls still connect.",
    BulkKind.STOP: "Incoming calls are not connected and numbers stop swapping.",
    BulkKind.RESUME: "Numbers swap and calls connect again.",
    BulkKind.SET_BUDGET: "One monthly budget for each: alerts at the percentages you choose, "
                         "and optionally calls paused when it is reached.",
    BulkKind.CLOSE: "Each is canceled and its tracking numbers released; it can be "
                    f"reactivated within {rules.DATA_RETENTION.days} days. The agency and other "
                    "sub-accounts are not affected.",
}


def _list_url(args=None):
    args = args or request.values
    keep = {k: args.get(k) for k in ("q", "status", "sort") if args.get(k)}
    return url_for("accounts.index", **keep)


def _check_close(kind: BulkKind) -> None:
    if kind == BulkKind.CLOSE and not roles.can(g.access.role, roles.Can.CLOSE):
        raise NotAllowed(roles.REFUSED[roles.Can.CLOSE])


def _selection(args):
    """(kind, the sub-accounts) from the list's form, or a flash and the list again."""
    kind = bulk.parse_kind(args.get("action"))
    _check_close(kind)
    all_matching = args.get("all") == "1"
    status = accounts.parse_filter(args.get("status"))
    subs = bulk.resolve(db.session, g.account, args.getlist("ids"), all_matching=all_matching,
                        q=(args.get("q") or "")[:120], status=status)
    return kind, subs


def _page(kind, subs, *, key=None, form=None, errors=None, status=200, filled=None):
    form = form or {}
    params = {}
    if kind == BulkKind.SET_BUDGET and not errors:
        try:
            params = budgets.parse_form(form, "budget", blank_removes=True) \
                if form.get("budget") is not None else {}
        except ValidationFailed:
            params = {}
    row_params = {}
    if kind == BulkKind.SEND_LINKS:
        for sub in subs:
            email = (filled or {}).get(sub.id, {}).get("email", form.get(f"email_{sub.id}", ""))
            row_params[sub.id] = {"email": email.strip().lower()}
    plans = bulk.preview(db.session, kind, subs, params, row_params)
    values = dict(form)
    for sub_id, row in (filled or {}).items():
        values[f"email_{sub_id}"] = row["email"]
        values[f"amount_{sub_id}"] = row["amount"]
    counts = {o: sum(1 for p in plans if p.outcome == o) for o in RowOutcome}
    return render(TEMPLATE, status=status, kind=kind, label=BULK_LABELS[kind],
                  hint=ACTION_HINTS[kind], plans=plans, key=key or bulk.new_key(),
                  form=values, errors=errors or {}, counts=counts,
                  list_url=_list_url(),
                  min_amount=plain(rules.MIN_STARTING_BALANCE_CENTS))


@bp.get("/sub-accounts/bulk")
@agency_only
@admin_required
def bulk_review():
    """The confirmation: every selected sub-account and what will happen to it."""
    try:
        kind, subs = _selection(request.args)
    except ValidationFailed as e:
        return back(_list_url(), " ".join(e.errors.values()), "error")
    if kind == BulkKind.CLOSE:
        return recent_signin_required(lambda: _page(kind, subs))()
    return _page(kind, subs)


@bp.post("/sub-accounts/bulk/csv")
@agency_only
@admin_required
def bulk_csv():
    """Send billing links: a CSV of name,email,amount fills the rows' fields (nothing is
    sent until the confirmation is submitted)."""
    kind, subs = _selection(request.form)
    upload = request.files.get("csv")
    data = upload.read(rules.BULK_CSV_MAX_BYTES + 1) if upload else b""
    try:
        filled = bulk.parse_csv(data, subs)
    except ValidationFailed as e:
        return _page(kind, subs, key=request.form.get("key"), form=request.form,
                     errors=e.errors, status=422)
    return _page(kind, subs, key=request.form.get("key"), form=request.form, filled=filled)


@bp.post("/sub-accounts/bulk")
@agency_only
@admin_required
def bulk_run():
    """Run the confirmed action (or show the stored results of this confirmation)."""
    form = request.form
    kind, subs = _selection(form)
    if kind == BulkKind.CLOSE:
        return recent_signin_required(lambda: _run(kind, subs, form))()
    return _run(kind, subs, form)


def _run(kind, subs, form):
    key = form.get("key", "")
    if not confirmed(form):
        return _page(kind, subs, key=key, form=form, status=422,
                     errors={"": f"{BULK_LABELS[kind]} needs the confirmation: nothing was "
                                 "changed."})
    params, row_params = {}, {}
    try:
        if kind == BulkKind.SET_BUDGET:
            params = budgets.parse_form(form, "budget", blank_removes=True)
        elif kind == BulkKind.SEND_LINKS:
            row_params = bulk.parse_links(form, subs, bulk.preview(db.session, kind, subs))
    except ValidationFailed as e:
        return _page(kind, subs, key=key, form=form, errors=e.errors, status=422)
    try:
        action, new = bulk.start(db.session, g.account, current_user, key, kind, subs,
                                 params, row_params)
    except ValidationFailed as e:
        return _page(kind, subs, form=form, errors=e.errors, status=422)
    if new:
        ctx = bulk.Context(link_settings=billing_links.settings(current_app),
                           on_link=notices.link_request)
        bulk.run(db.session, g.account, current_user, action, ctx)
    return see_other(url_for("accounts.bulk_show", action_id=action.id))


@bp.get("/sub-accounts/bulk/<int:action_id>")
@agency_only
@admin_required
def bulk_show(action_id: int):
    """Each row's result."""
    action = bulk.find(db.session, g.account, action_id)
    return render(RESULTS, action=action, counts=bulk.counts(action),
                  list_url=url_for("accounts.index"))
