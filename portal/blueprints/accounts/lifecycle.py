"""Settings → Account Settings → Status, closing, reactivating, transfers, and
Settings → Parent Settings → Status (canceling an agency)."""

from flask import abort, flash, g, request, url_for
from flask_login import current_user

from portal import owner_mail
from portal.blueprints.accounts import bp
from portal.blueprints.security import recent_signin_required
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.rendering import render, see_other
from portal.services import agency, lifecycle
from portal.tenancy import allowed_when_canceled, require_admin

CONFIRM = "yes"


def _back(message: str, category: str = "success"):
    flash(message, category)
    return see_other(url_for("accounts.show"))


def _status_change(action, done: str):
    require_admin()
    try:
        action(db.session, g.account, current_user)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    return _back(done)


@bp.post("/status/pause-swapping")
def pause_swapping():
    return _status_change(lifecycle.pause_swapping,
                          "Number swapping is paused. Calls still connect.")


@bp.post("/status/stop-calls")
def stop_calls():
    return _status_change(lifecycle.stop_calls,
                          "Incoming calls are stopped and number swapping is paused.")


@bp.post("/status/resume")
def resume():
    return _status_change(lifecycle.resume, "Resumed: numbers swap and calls connect.")


@bp.get("/close")
@recent_signin_required
def close_confirm():
    """The confirmation: a screen for a standalone account, a dialog for a sub-account."""
    require_admin()
    if g.account.is_agency:
        abort(404)
    if g.account.is_canceled:
        return _back(f"{g.account.name} is already canceled.", "error")
    numbers = lifecycle.numbers_to_release(db.session, g.account)
    return render("accounts/close.html", "dialog", numbers=numbers)


@bp.post("/close")
@recent_signin_required
def close():
    require_admin()
    if request.form.get("confirm") != CONFIRM:
        return _back("Closing needs the confirmation: nothing was changed.", "error")
    try:
        released = lifecycle.close(db.session, g.account, current_user)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    count = len(released)
    noun = "number was" if count == 1 else "numbers were"
    return _back(f"{g.account.name} is canceled; {count} tracking {noun} released. "
                 "You can reactivate it within 60 days.")


@bp.post("/reactivate")
@allowed_when_canceled
def reactivate():
    require_admin()
    try:
        lifecycle.reactivate(db.session, g.account, current_user)
    except NotAllowed as e:
        db.session.rollback()
        return _back(e.message, "error")
    db.session.commit()
    return _back(f"{g.account.name} is reactivated. Released numbers can be restored for "
                 "14 days after they were released (Numbers → Tracking Numbers → Released "
                 "Numbers).")


@bp.get("/transfer")
def transfer_form():
    _check_transfer()
    return render("accounts/transfer.html", "transfer_form", form={}, errors={},
                  plans=agency.STANDALONE_PLANS)


@bp.post("/transfer")
def transfer():
    _check_transfer()
    agency_id = g.account.parent_id
    if request.form.get("confirm") != CONFIRM:
        return render("accounts/transfer.html", "transfer_form", status=422, form=request.form,
                      errors={"": "Transferring needs the confirmation: nothing was changed."},
                      plans=agency.STANDALONE_PLANS)
    agency_name = g.account.parent.name
    try:
        done = agency.transfer_out(db.session, g.account, current_user,
                                   request.form.get("email", ""), request.form.get("plan", ""))
    except ValidationFailed as e:
        db.session.rollback()
        return render("accounts/transfer.html", "transfer_form", status=422,
                      form=request.form, errors=e.errors, plans=agency.STANDALONE_PLANS)
    except NotAllowed as e:
        db.session.rollback()
        return render("accounts/transfer.html", "transfer_form", status=409,
                      form=request.form, errors={"": e.message},
                      plans=agency.STANDALONE_PLANS)
    # The same answer whether or not the email had a user (the email says what to do next).
    owner_mail.new_owner(db.session, done.account, agency_name, done.owner)
    db.session.commit()
    flash(f"{g.account.name} is now a standalone account; the agency no longer reaches it. "
          f"We emailed {done.owner.email} that they own it now.", "success")
    return see_other(url_for("accounts.parent", account_id=agency_id))


def _check_transfer() -> None:
    if not g.account.is_sub:
        abort(404)
    if not g.access.is_agency_admin:
        raise NotAllowed("Only the agency's owners and admins can transfer a sub-account "
                         "out of the agency.")


# ----------------------------------------------------------------------------- agency

def _agency_admin() -> None:
    if not g.account.is_agency:
        abort(404)
    require_admin()


@bp.get("/parent")
def parent():
    """Settings → Parent Settings."""
    _agency_admin()
    return render("accounts/parent.html", events=lifecycle.events(db.session, g.account),
                  windows=lifecycle.windows(g.account))


@bp.get("/parent/cancel")
@recent_signin_required
def cancel_agency_confirm():
    """The confirmation pop-up (a page without JavaScript)."""
    _agency_admin()
    if g.account.is_canceled:
        return see_other(url_for("accounts.parent"))
    return render("accounts/parent_cancel.html", "dialog")


@bp.get("/parent/cancel/review")
@recent_signin_required
def cancel_agency_review():
    """The next page: sub-accounts still active (transfer them first), and why."""
    _agency_admin()
    if g.account.is_canceled:
        return see_other(url_for("accounts.parent"))
    return _review(form={}, errors={})


def _review(form, errors, status=200):
    return render("accounts/parent_cancel_review.html", status=status, form=form,
                  errors=errors, subs=agency.active_sub_accounts(db.session, g.account),
                  reasons=agency.CANCEL_REASONS)


@bp.post("/parent/cancel")
@recent_signin_required
def cancel_agency():
    _agency_admin()
    if request.form.get("confirm") != CONFIRM:
        return _review(request.form, {"": "Canceling needs the confirmation: nothing was "
                                          "changed."}, 422)
    try:
        subs = agency.cancel(db.session, g.account, current_user,
                             request.form.get("reason", ""),
                             request.form.get("comments", ""))
    except ValidationFailed as e:
        db.session.rollback()
        return _review(request.form, e.errors, 422)
    except NotAllowed as e:
        db.session.rollback()
        flash(e.message, "error")
        return see_other(url_for("accounts.parent"))
    db.session.commit()
    flash(f"{g.account.name} and {len(subs)} sub-account{'s' if len(subs) != 1 else ''} "
          "are canceled and their numbers released.", "success")
    return see_other(url_for("accounts.parent"))

