"""Billing Settings → Budget (issue 17, B): a sub-account's monthly budget, set by its
agency's owners and admins (POST /billing/budget), with alerts at chosen percentages and
an optional pause of calls when it is reached. Everyone else who opens the sub-account's
Billing Settings (a customer's billing user, say) sees it read-only."""

from flask import g, request, url_for
from flask_login import current_user

from portal.blueprints.billing import bp
from portal.blueprints.views import back, sub_account_only, submit
from portal.errors import NotAllowed
from portal.extensions import db
from portal.rendering import is_partial, render
from portal.services import budgets
from portal.services.money import dollars

SECTION = "billing/_budget.html"


def budget_context() -> dict:
    """What the section shows (Billing Settings of a sub-account): the budget and this
    month's spend against it, the thresholds told this month, and whether the viewer may
    change it."""
    account = g.account
    if not account.is_sub:
        return {}
    return {"budget": budgets.standing(db.session, account),
            "budget_told": budgets.alerted(db.session, account),
            "budget_editable": g.access.is_agency_admin and not account.is_canceled,
            "budget_max": budgets.MAX_BUDGET_CENTS}


def _section(status: int = 200, **context):
    from portal.blueprints.billing.settings import SETTINGS, page_context

    if is_partial():
        return render(SECTION, "budget_section", status=status,
                      **{"account": g.account, "access": g.access, **budget_context(),
                         **context})
    return render(SETTINGS, status=status, **page_context(**context))


def _saved(budget) -> str:
    if budget is None:
        return f"The budget of {g.account.name} is removed."
    text = (f"Saved: {g.account.name}'s budget is {dollars(budget.amount_cents)} a month, "
            f"with alerts at {', '.join(f'{t}%' for t in budget.thresholds)}")
    return text + ("; calls pause when it is reached." if budget.pause_calls else ".")


@bp.post("/budget")
@sub_account_only
def budget():
    """Save the budget (amount, thresholds, pause), or remove it (remove=1)."""
    if not g.access.is_agency_admin:
        raise NotAllowed("Only the agency's owners and admins can set a sub-account's budget.")
    form = request.form
    if form.get("remove"):
        def action():
            return budgets.set_budget(db.session, g.account, current_user, None)
    else:
        def action():
            parsed = budgets.parse_form(form, "amount")
            return budgets.set_budget(db.session, g.account, current_user,
                                      parsed["amount_cents"], parsed["thresholds"],
                                      pause_calls=parsed["pause_calls"])

    def done(result):
        message = _saved(result)
        if is_partial():
            db.session.expire_all()
            return _section(budget_saved=message)
        return back(url_for("billing.index") + "#budget", message)

    return submit(action, lambda errors: _section(422, budget_errors=errors, budget_form=form),
                  done)
