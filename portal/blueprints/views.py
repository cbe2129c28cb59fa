"""What every view shares: the skeleton of a form's answer, the confirmation check, and the
access rules as decorators over the route.

    @bp.post("/")
    @admin_required
    def create():
        return submit(lambda: agents.add(db.session, g.account, ...),
                      invalid=lambda errors: _page("add_form", 422, errors=errors),
                      done=lambda record: back(url_for("agents.index"),
                                               f"Added the status {record.name}."))
"""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, flash, g

from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.rendering import see_other
from portal.services import billing
from portal.tenancy import require_admin

T = TypeVar("T")

CONFIRM = "yes"  # the value of a confirmation dialog's hidden "confirm" field


def confirmed(form) -> bool:
    """The server never trusts that a confirmation dialog was shown: it checks the field."""
    return form.get("confirm") == CONFIRM


def submit(action: Callable[[], T], invalid: Callable[[dict], Any] | None,
           done: Callable[[T], Any], refused: Callable[[str], Any] | None = None):
    """Call the service (`action`). Invalid input (ValidationFailed): roll back and answer
    `invalid(errors)` (the form again, 422). A refusal (NotAllowed), when `refused` is given:
    roll back and answer `refused(message)`. Either without its handler goes on to the
    app's error handlers. Else commit and answer `done(result)` (a flash and see_other, or
    a fragment with an HX-Trigger)."""
    try:
        result = action()
    except ValidationFailed as e:
        if invalid is None:
            raise
        db.session.rollback()
        return invalid(e.errors)
    except NotAllowed as e:
        if refused is None:
            raise
        db.session.rollback()
        return refused(e.message)
    db.session.commit()
    return done(result)


def back(location: str, message: str, category: str = "success"):
    """Flash the outcome and go to `location` (303, or HX-Redirect for a partial request)."""
    flash(message, category)
    return see_other(location)


# --------------------------------------------------------------- the rules, as decorators

def _rule(check: Callable[[], None], doc: str):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            check()
            return view(*args, **kwargs)

        return wrapped

    decorator.__doc__ = doc
    return decorator


def _admin() -> None:
    require_admin()


def _agency() -> None:
    if not g.account.is_agency:
        abort(404)


def _not_agency() -> None:
    if g.account.is_agency:
        abort(404)


def _sub_account() -> None:
    if not g.account.is_sub:
        abort(404)


def _agency_admin() -> None:
    if not g.access.is_agency_admin:
        raise NotAllowed("Only the agency's owners and admins can transfer a sub-account "
                         "out of the agency.")


def _own_billing() -> None:
    billing.check_own_billing(g.account)


admin_required = _rule(_admin, "Owners and admins (of the account or its agency) only: 403.")
agency_only = _rule(_agency, "A page of agencies: 404 on any other account.")
not_agency = _rule(_not_agency, "A page of standalone and sub-accounts: 404 on an agency.")
sub_account_only = _rule(_sub_account, "A page of sub-accounts: 404 on any other account.")
agency_admin_required = _rule(_agency_admin, "The agency's owners and admins only: 403.")
own_billing = _rule(_own_billing, "An account that pays its own bills: 403 on a sub-account "
                                  "paid from its agency's balance.")
