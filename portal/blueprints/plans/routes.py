"""Change Plan (owners and admins): the plans and their monthly fees, a confirmation step,
then the change."""

from flask import g, request, url_for

from portal.blueprints.plans import bp
from portal.blueprints.views import back, confirmed, submit
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.models import PLANS
from portal.rendering import render
from portal.services import plans
from portal.services.money import dollars
from portal.tenancy import require_admin


@bp.before_request
def admins_only():
    require_admin()


@bp.get("/")
def index():
    account = g.account
    return render("plans/index.html", options=plans.options(account),
                  current_fee=account.plan_fee_cents,
                  active_subs=plans.active_sub_count(db.session, account),
                  sub_plan=plans.SUB_PLAN)


def _confirm(plan: str, errors: dict, status: int = 200):
    chosen = plans.option(g.account, plan) if plan in PLANS else None
    return render("plans/confirm.html", "dialog", status=status, plan=plan, chosen=chosen,
                  current_fee=plans.fee(g.account.plan), errors=errors)


@bp.get("/confirm")
def confirm():
    """The confirmation step (a dialog; a page without JavaScript)."""
    plan = request.args.get("plan", "")
    try:
        plans.check(db.session, g.account, plan)
    except ValidationFailed as e:
        return _confirm(plan, e.errors, 422)
    return _confirm(plan, {})


@bp.post("/")
def change():
    plan = request.form.get("plan", "")
    if not confirmed(request.form):
        errors = {"": "Changing the plan needs the confirmation: nothing was changed."}
        try:
            plans.check(db.session, g.account, plan)
        except ValidationFailed as e:
            errors = e.errors
        return _confirm(plan, errors, 422)
    return submit(lambda: plans.change(db.session, g.account, plan),
                  lambda errors: _confirm(plan, errors, 422), _changed)


def _changed(chosen):
    kind = {"agency": f" {g.account.name} is an agency now: it can have sub-accounts.",
            "standalone": f" {g.account.name} is a standalone account now."}.get(
        chosen.becomes, "")
    return back(url_for("plans.index"), f"Your plan is now {chosen.name} "
                f"({dollars(chosen.fee_cents)} a month), from the next monthly plan fee.{kind}")
