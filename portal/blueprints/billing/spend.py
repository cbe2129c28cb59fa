"""Billing Settings → Where the money goes (issue 17): spend by day and item over the last
30 or 90 days, the balance at each day's end, upcoming charges, and for an agency its
sub-accounts' spend this month. A page of its own (/billing/spend) whose section Billing
Settings loads after it is drawn (hx-trigger="load"), so the settings page itself runs no
more statements than before; without JavaScript Billing Settings links here."""

from flask import g, request
from sqlalchemy import select

from portal.blueprints.billing import bp
from portal.extensions import db
from portal.models import MethodRole, PaymentMethod
from portal.rendering import render
from portal.services import billing, guardrails, spend

SPEND = "billing/spend.html"


def spend_context(account, period: int) -> dict:
    """What the section shows: the picture and its chart for an account with its own
    balance; for an agency also its sub-accounts' spend this month."""
    if not billing.has_own_billing(account):
        return {"pic": None, "period": period, "agency": account.parent}
    pic = spend.picture(db.session, account, period)
    settings = billing.settings_for(db.session, account)
    primary = None
    if settings.direct_charge:
        primary = db.session.scalar(select(PaymentMethod).where(
            PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None),
            PaymentMethod.role == MethodRole.PRIMARY))
    standing = guardrails.standing_at_once(db.session, account, settings) \
        if settings.auto_recharge else None
    spend.upcoming(account, pic, settings, primary, standing=standing)
    return {"pic": pic, "chart": spend.chart(pic), "period": period,
            "labels": spend.ITEM_LABELS, "periods": spend.PERIODS,
            "subs": spend.by_sub_account(db.session, account) if account.is_agency else None,
            "shown_subs": spend.SHOWN_SUB_ACCOUNTS, "burn_days": spend.BURN_DAYS}


@bp.get("/spend")
def spend_page():
    """The whole page, or (htmx) the section, for Billing Settings to load or to switch
    between 30 and 90 days."""
    period = spend.parse_period(request.args.get("days"))
    return render(SPEND, "spend_section", **spend_context(g.account, period))
