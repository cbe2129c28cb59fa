"""Settings → Account Settings → Status, closing, reactivating, transfers, and
Settings → Parent Settings → Status (canceling an agency)."""

from flask import current_app, g, request, url_for
from flask_login import current_user

from portal.blueprints.accounts import bp
from portal.blueprints.security import recent_signin_required
from portal.blueprints.views import (
    admin_required,
    agency_admin_required,
    agency_only,
    back,
    confirmed,
    not_agency,
    sub_account_only,
    submit,
)
from portal.extensions import db
from portal.mail import notices
from portal.rendering import render, see_other
from portal.services import agency, lifecycle
from portal.tenancy import allowed_when_canceled

TRANSFER = "accounts/transfer.html"


def _back(message: str, category: str = "success"):
    return back(url_for("accounts.show"), message, category)


def _refused(message: str):
    return _back(message, "error")


def _status_change(action, done: str):
    return submit(lambda: action(db.session, g.account, current_user), invalid=None,
                  done=lambda _: _back(done), refused=_refused)


@bp.post("/status/pause-swapping")
@admin_required
def pause_swapping():
    return _status_change(lifecycle.pause_swapping,
                          "Number swapping is paused. Calls still connect.")


@bp.post("/status/stop-calls")
@admin_required
def stop_calls():
    return _status_change(lifecycle.stop_calls,
                          "Incoming calls are stopped and number swapping is paused.")


@bp.post("/status/resume")
@admin_required
def resume():
    return _status_change(lifecycle.resume, "Resumed: numbers swap and calls connect.")


@bp.get("/close")
@recent_signin_required
@admin_required
@not_agency
def close_confirm():
    """The confirmation: a screen for a standalone account, a dialog for a sub-account."""
    if g.account.is_canceled:
        return _back(f"{g.account.name} is already canceled.", "error")
    numbers = lifecycle.numbers_to_release(db.session, g.account)
    return render("accounts/close.html", "dialog", numbers=numbers)


@bp.post("/close")
@recent_signin_required
@admin_required
def close():
    if not confirmed(request.form):
        return _back("Closing needs the confirmation: nothing was changed.", "error")
    return submit(lambda: lifecycle.close(db.session, g.account, current_user), None,
                  _closed, refused=_refused)


def _closed(released):
    count = len(released)
    noun = "number was" if count == 1 else "numbers were"
    return _back(f"{g.account.name} is canceled; {count} tracking {noun} released. "
                 "You can reactivate it within 60 days.")


@bp.post("/reactivate")
@allowed_when_canceled
@admin_required
def reactivate():
    return _status_change(
        lifecycle.reactivate, f"{g.account.name} is reactivated. Released numbers can be "
        "restored for 14 days after they were released (Numbers → Tracking Numbers → "
        "Released Numbers).")


@bp.get("/transfer")
@sub_account_only
@agency_admin_required
def transfer_form():
    return render(TRANSFER, "transfer_form", form={}, errors={}, plans=agency.STANDALONE_PLANS)


@bp.post("/transfer")
@sub_account_only
@agency_admin_required
def transfer():
    form = request.form

    def again(status: int, errors: dict):
        return render(TRANSFER, "transfer_form", status=status, form=form, errors=errors,
                      plans=agency.STANDALONE_PLANS)

    if not confirmed(form):
        return again(422, {"": "Transferring needs the confirmation: nothing was changed."})
    agency_id, agency_name = g.account.parent_id, g.account.parent.name

    def transfer_out():
        done = agency.transfer_out(db.session, g.account, current_user,
                                   form.get("email", ""), form.get("plan", ""))
        # The same answer whether or not the email had a user (the email says what to do
        # next).
        notices.new_owner(db.session, done.account, agency_name, done.owner,
                          current_app.config["SECRET_KEY"])
        return done

    return submit(
        transfer_out, lambda errors: again(422, errors),
        lambda done: back(url_for("accounts.parent", account_id=agency_id),
                          f"{g.account.name} is now a standalone account; the agency no "
                          f"longer reaches it. We emailed {done.owner.email} that they own "
                          "it now."),
        refused=lambda message: again(409, {"": message}))


# ----------------------------------------------------------------------------- agency

@bp.get("/parent")
@agency_only
@admin_required
def parent():
    """Settings → Parent Settings."""
    return render("accounts/parent.html", events=lifecycle.events(db.session, g.account),
                  windows=lifecycle.windows(g.account))


@bp.get("/parent/cancel")
@recent_signin_required
@agency_only
@admin_required
def cancel_agency_confirm():
    """The confirmation pop-up (a page without JavaScript)."""
    if g.account.is_canceled:
        return see_other(url_for("accounts.parent"))
    return render("accounts/parent_cancel.html", "dialog")


@bp.get("/parent/cancel/review")
@recent_signin_required
@agency_only
@admin_required
def cancel_agency_review():
    """The next page: sub-accounts still active (transfer them first), and why."""
    if g.account.is_canceled:
        return see_other(url_for("accounts.parent"))
    return _review(form={}, errors={})


def _review(form, errors, status=200):
    return render("accounts/parent_cancel_review.html", status=status, form=form,
                  errors=errors, subs=agency.active_sub_accounts(db.session, g.account),
                  reasons=agency.CANCEL_REASONS)


@bp.post("/parent/cancel")
@recent_signin_required
@agency_only
@admin_required
def cancel_agency():
    form = request.form
    if not confirmed(form):
        return _review(form, {"": "Canceling needs the confirmation: nothing was changed."},
                       422)
    return submit(
        lambda: agency.cancel(db.session, g.account, current_user, form.get("reason", ""),
                              form.get("comments", "")),
        lambda errors: _review(form, errors, 422),
        lambda subs: back(url_for("accounts.parent"),
                          f"{g.account.name} and {len(subs)} "
                          f"sub-account{'s' if len(subs) != 1 else ''} are canceled and their "
                          "numbers released."),
        refused=lambda message: back(url_for("accounts.parent"), message, "error"))

