"""/api/v1/accounts: the accounts a key reaches, and Settings → Account Settings → Status
over the API: pause number swapping, stop calls, resume, close, reactivate.

Each action calls the service the page's button calls (portal/services/lifecycle.py), with
the key's maker as the actor (the account's event log and the emails name them; Change
History names the key). A state the service refuses (pausing a canceled account, closing
one twice, reactivating past 60 days) is a 409 problem with the page's sentence; a role
without the capability is a 403 (auth.reach: owners close, owners and admins do the rest).
"""

from contextlib import contextmanager

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import func, select

from portal import roles
from portal.blueprints.api_v1 import auth, blueprint, paging
from portal.blueprints.api_v1.schemas import AccountSchema, PageArgsSchema, page_schema
from portal.errors import DomainError, NotAllowed
from portal.extensions import db
from portal.models import Account, AccountKind, AccountStatus, NumberStatus, TrackingNumber
from portal.services import lifecycle
from portal.services.access import Access
from portal.services.paging import contains

bp = blueprint("accounts", "Accounts and sub-accounts: read them, pause, resume, close, "
                           "reactivate.")


# --------------------------------------------------------------- shared by E1's modules

class StateConflict(DomainError):
    """The account's state forbids the action now (a 409 problem, the service's sentence)."""

    status = 409


@contextmanager
def conflicts():
    """A service's NotAllowed inside is the account's state refusing (the role was checked
    by auth.reach before): answered as 409 Conflict."""
    try:
        yield
    except NotAllowed as e:
        raise StateConflict(e.message) from None


def reach(account_id: int, capability: roles.Can, *, write: bool = False,
          when_canceled: bool = False) -> Access:
    """auth.reach with the pages' account guard (portal/tenancy.py): an account canceled
    more than 60 days ago is gone (410); a canceled one is read-only (409) for a write
    unless the action is one a canceled account may take (reactivate)."""
    access = auth.reach(account_id, capability)  # 410 past the 60 days
    account = access.account
    if write and account.is_canceled and not when_canceled:
        raise StateConflict(f"{account.name} is canceled: you can read and export its data, "
                            "but not change it. Reactivate it to make changes.")
    return access


# --------------------------------------------------------------- schemas

class AccountArgsSchema(PageArgsSchema):
    kind = fields.Enum(AccountKind, by_value=True, load_default=None, metadata={
        "description": "Only accounts of this kind."})
    status = fields.Enum(AccountStatus, by_value=True, load_default=None, metadata={
        "description": "Only accounts in this state."})
    q = fields.String(load_default="", validate=validate.Length(max=120), metadata={
        "description": "Only accounts whose name contains this (any case)."})


class AccountDetailSchema(AccountSchema):
    """What Account Settings shows a client needs, besides the list's fields."""

    agency_name = fields.String(allow_none=True, required=True, metadata={
        "description": "The agency's name, for a sub-account."})
    active_numbers = fields.Integer(required=True, metadata={
        "description": "Tracking numbers in use (closing releases them)."})
    actions = fields.List(fields.String(), required=True, metadata={
        "description": "What the Status section offers now, of pause-swapping, "
                       "stop-calls, resume, close, reactivate (the role aside)."})
    reactivate_until = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "A canceled account: reactivate it until then (60 days)."})
    balance_kept_until = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "A canceled account: its balance is kept until then (90 days)."})


class ClosedAccountSchema(AccountDetailSchema):
    released_numbers = fields.List(fields.String(), required=True, metadata={
        "description": "The tracking numbers the close released."})


# Marshmallow formats its messages: the braces are doubled.
CONFIRM_NEEDED = 'Send {{"confirm": true}}: nothing was changed.'


class ConfirmSchema(ma.Schema):
    confirm = fields.Boolean(
        required=True, validate=validate.Equal(True, error=CONFIRM_NEEDED),
        error_messages={"required": CONFIRM_NEEDED},
        metadata={"description": "Must be true: the action can't be undone by the same "
                                 "call, so it is never sent by accident."})


AccountPage = page_schema(AccountSchema, "AccountPage")


def answer(account: Account, **extra) -> dict:
    """The account as AccountDetailSchema answers it (`extra`: a subclass's fields)."""
    windows = lifecycle.windows(account)
    offers = {"pause": "pause-swapping", "stop": "stop-calls", "resume": "resume"}
    actions = sorted(offers[name] for name in lifecycle.status_actions(account))
    if not account.is_agency:
        if account.is_canceled:
            if windows is not None and windows.can_reactivate:
                actions.append("reactivate")
        else:
            actions.append("close")
    active = db.session.scalar(select(func.count()).select_from(TrackingNumber).where(
        TrackingNumber.account_id == account.id, TrackingNumber.status == NumberStatus.ACTIVE))
    return {**{name: getattr(account, name) for name in _ACCOUNT_FIELDS},
            "agency_name": db.session.scalar(select(Account.name).where(
                Account.id == account.parent_id)) if account.parent_id else None,
            "active_numbers": active, "actions": actions,
            "reactivate_until": windows.reactivate_until if windows else None,
            "balance_kept_until": windows.balance_until if windows else None, **extra}


_ACCOUNT_FIELDS = tuple(AccountSchema().fields)


def _committed(result):
    """Commit, once the answer is read in the change's own transaction (a failure reading
    it rolls the change back rather than answer 500 for a change made)."""
    db.session.commit()
    return result


# --------------------------------------------------------------- routes

@bp.route("/accounts")
class Accounts(MethodView):
    @bp.doc(operationId="listAccounts")
    @bp.arguments(AccountArgsSchema, location="query")
    @bp.response(200, AccountPage)
    def get(self, args):
        """List the accounts the key reaches

        The key's account and, for an agency's key, its sub-accounts, newest first;
        filtered by kind, status and name."""
        query = auth.reachable_query()
        if args["kind"] is not None:
            query = query.where(Account.kind == args["kind"])
        if args["status"] is not None:
            query = query.where(Account.status == args["status"])
        if args["q"].strip():
            query = query.where(contains(Account.name, args["q"].strip()))
        return paging.page(db.session, query, Account.id, args["limit"], args["cursor"])


@bp.route("/accounts/<id:account_id>")
class AccountItem(MethodView):
    @bp.doc(operationId="getAccount")
    @bp.response(200, AccountDetailSchema)
    def get(self, account_id: int):
        """Read one account

        As Account Settings shows it: plan, status, billing mode, balance, what the
        Status section offers now, and a canceled account's windows."""
        return answer(reach(account_id, roles.Can.OVERVIEW).account)


def _status_action(account_id: int, action) -> dict:
    account = reach(account_id, roles.Can.SETTINGS, write=True).account
    with conflicts():
        action(db.session, account, auth.actor())
    return _committed(answer(account))


@bp.route("/accounts/<id:account_id>/pause-swapping")
class PauseSwapping(MethodView):
    @bp.doc(operationId="pauseSwapping")
    @bp.response(200, AccountDetailSchema)
    def post(self, account_id: int):
        """Pause number swapping

        Numbers stop swapping on web pages; calls still connect. From active or calls
        stopped; 409 otherwise. Owner and admin keys."""
        return _status_action(account_id, lifecycle.pause_swapping)


@bp.route("/accounts/<id:account_id>/stop-calls")
class StopCalls(MethodView):
    @bp.doc(operationId="stopCalls")
    @bp.response(200, AccountDetailSchema)
    def post(self, account_id: int):
        """Stop incoming calls (and pause number swapping)

        From active or swapping paused; 409 otherwise. Owner and admin keys."""
        return _status_action(account_id, lifecycle.stop_calls)


@bp.route("/accounts/<id:account_id>/resume")
class Resume(MethodView):
    @bp.doc(operationId="resumeAccount")
    @bp.response(200, AccountDetailSchema)
    def post(self, account_id: int):
        """Resume

        Numbers swap and calls connect again. From swapping paused, calls stopped, or a
        budget pause; a billing pause is lifted by a payment (409)."""
        return _status_action(account_id, lifecycle.resume)


@bp.route("/accounts/<id:account_id>/close")
class Close(MethodView):
    @bp.doc(operationId="closeAccount")
    @bp.arguments(ConfirmSchema, location="json")
    @bp.response(200, ClosedAccountSchema)
    def post(self, _body, account_id: int):
        """Close an account

        A standalone account or a sub-account: canceled, every tracking number
        released, its people emailed. Owner keys only (403 for an admin key). Needs
        `{"confirm": true}`. Its data is kept 60 days (reactivate meanwhile), its balance
        90 days. An agency is not closed here (409)."""
        account = reach(account_id, roles.Can.CLOSE).account
        with conflicts():
            released = lifecycle.close(db.session, account, auth.actor())
        return _committed(answer(account, released_numbers=[n.number for n in released]))


@bp.route("/accounts/<id:account_id>/reactivate")
class Reactivate(MethodView):
    @bp.doc(operationId="reactivateAccount")
    @bp.response(200, AccountDetailSchema)
    def post(self, account_id: int):
        """Reactivate a canceled account

        Within 60 days of its close (its released numbers
        can be restored for 14 days after their release). A sub-account of a canceled
        agency, an agency, or past 60 days: 409."""
        account = reach(account_id, roles.Can.SETTINGS, write=True,
                        when_canceled=True).account
        with conflicts():
            lifecycle.reactivate(db.session, account, auth.actor())
        return _committed(answer(account))
