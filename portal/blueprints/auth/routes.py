from flask import current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal import rules
from portal.blueprints.auth import bp
from portal.blueprints.views import back, submit
from portal.clock import now as clock_now
from portal.errors import NotFound, TooManyAttempts, ValidationFailed
from portal.extensions import db
from portal.models import User
from portal.rendering import render, safe_path, see_other
from portal.services import access, auth, security
from portal.services.inputs import to_id
from portal.services.lifecycle import closed_message

PENDING = "two_factor_pending"


def _agent() -> str:
    return request.user_agent.string or ""


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    return render("auth/login.html", "login_form", form={}, errors={},
                  next=safe_path(request.args.get("next")))


@bp.post("/login")
def login_post():
    form = request.form
    next_url = safe_path(form.get("next"))
    try:
        user = auth.sign_in(db.session, form.get("email", ""), form.get("password", ""),
                            address=request.remote_addr or "unknown", user_agent=_agent())
    except ValidationFailed as e:
        db.session.commit()  # keep the failed attempt for throttling
        return render("auth/login.html", "login_form", status=422, form=form,
                      errors=e.errors, next=next_url)
    except TooManyAttempts as e:
        return render("auth/login.html", "login_form", status=429, form=form,
                      errors={"": e.message}, next=next_url)
    closed = access.closed_for_good(db.session, user)
    if closed is not None:
        db.session.commit()
        return render("auth/login.html", "login_form", status=422, form=form,
                      errors={"": closed_message(closed)}, next=next_url)
    db.session.commit()
    session.clear()  # a fresh session on sign-in (no fixation)
    if user.has_two_factor:
        # The password was right; the session holds only "who, since when" until the code.
        session[PENDING] = {"uid": user.id, "v": user.session_version,
                            "at": clock_now().timestamp(), "next": next_url}
        return see_other(url_for("auth.two_factor"))
    return _signed_in(user, next_url)


def _signed_in(user: User, next_url: str | None, notice: str | None = None):
    session.clear()
    if notice:
        flash(notice, "info")  # after the clear: the new session carries it
    login_user(user, remember=False)
    now = clock_now().timestamp()
    session["auth_at"] = now  # when the password was last given (payment methods, closing)
    session["seen_at"] = now  # the inactivity timer
    session["several_accounts"] = access.reaches_several(db.session, user)
    if security.accounts_requiring(db.session, user) and not user.has_two_factor:
        flash("An account you belong to requires two-factor sign-in. Set it up to continue.",
              "info")
        return see_other(url_for("security.two_factor", next=next_url))
    return see_other(next_url or url_for("home.index"))


def _pending_user() -> tuple[User | None, dict]:
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None, {}
    started = pending.get("at")
    uid = to_id(pending.get("uid"))
    if not isinstance(started, int | float) or uid is None or (
            clock_now().timestamp() - started > rules.TWO_FACTOR_PENDING.total_seconds()):
        return None, pending
    user = db.session.get(User, uid)
    if user is None or user.session_version != pending.get("v") or not user.has_two_factor:
        return None, pending
    return user, pending


def _start_over():
    session.pop(PENDING, None)
    flash("That sign-in took too long. Enter your email and password again.", "info")
    return see_other(url_for("auth.login"))


@bp.get("/login/two-factor")
def two_factor():
    user, _pending = _pending_user()
    if user is None:
        return _start_over()
    return render("auth/two_factor.html", "code_form", errors={})


@bp.post("/login/two-factor")
def two_factor_post():
    user, pending = _pending_user()
    if user is None:
        return _start_over()
    try:
        step = auth.second_step(db.session, user, request.form.get("code", ""),
                                address=request.remote_addr or "unknown", user_agent=_agent())
    except ValidationFailed as e:
        db.session.commit()  # the failure counts toward the throttle
        return render("auth/two_factor.html", "code_form", status=422, errors=e.errors)
    except TooManyAttempts as e:
        session.pop(PENDING, None)
        return render("auth/two_factor.html", "code_form", status=429,
                      errors={"": e.message})
    db.session.commit()
    notice = None
    if step == "recovery":
        left = security.recovery_codes_left(db.session, user)
        notice = (f"You signed in with a recovery code; it can't be used again. {left} "
                  f"recovery code{'' if left == 1 else 's'} left.")
    return _signed_in(user, pending.get("next"), notice)


@bp.post("/logout")
@login_required
def logout():
    # Ended on the server, not only in this browser: the cookie is signed, not stored, so a
    # copy of it would still sign in. A new session version makes every cookie issued before
    # it worthless (this user's other browsers and devices are signed out too).
    security.end_all_sessions(current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return see_other(url_for("auth.login"))


# --- a new owner's first password (portal/mail/notices.py sends the link) ----------------

def _private(response):
    """The token is in the URL: never sent on as a referrer, never cached."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    try:
        user = auth.user_for_password_link(db.session, current_app.config["SECRET_KEY"], token)
    except NotFound as e:
        return _private(render("auth/set_password.html", status=410, problem=e.message,
                               form={}, errors={}, token=token))
    if request.method == "GET":
        return _private(render("auth/set_password.html", "password_form", user=user,
                               form={"name": user.name}, errors={}, token=token))
    form = request.form
    return submit(
        lambda: auth.set_password(db.session, user, form.get("password", ""),
                                  form.get("again", ""), form.get("name", "")),
        lambda errors: _private(render("auth/set_password.html", "password_form", status=422,
                                       user=user, form={"name": form.get("name", "")},
                                       errors=errors, token=token)),
        lambda _: back(url_for("auth.login"), "Your password is set. Sign in with your email "
                       "and the new password."))


# --- "Forgot password?" -------------------------------------------------------------------

@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link. The answer is the same page, status and words whether or not a
    user has the email (only a typo in the address itself, or the throttle, differ, and
    neither depends on the user existing)."""
    if request.method == "GET":
        return render("auth/forgot_password.html", "forgot_form", form={}, errors={},
                      sent=None)
    form = request.form
    try:
        email = auth.request_reset(db.session, current_app.config["SECRET_KEY"],
                                   form.get("email", ""),
                                   address=request.remote_addr or "unknown",
                                   user_agent=_agent())
    except ValidationFailed as e:
        db.session.rollback()
        return render("auth/forgot_password.html", "forgot_form", status=422, form=form,
                      errors=e.errors, sent=None)
    except TooManyAttempts as e:
        db.session.rollback()
        return render("auth/forgot_password.html", "forgot_form", status=429, form=form,
                      errors={"": e.message}, sent=None)
    db.session.commit()
    return render("auth/forgot_password.html", "forgot_form", form={}, errors={},
                  sent=auth.RESET_SENT.format(email=email))


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        user = auth.user_for_reset(db.session, current_app.config["SECRET_KEY"], token)
    except NotFound as e:
        return _private(render("auth/reset_password.html", status=410, problem=e.message,
                               errors={}, token=token))
    if request.method == "GET":
        return _private(render("auth/reset_password.html", "reset_form", user=user,
                               errors={}, token=token))
    form = request.form

    def done(_):
        # Every session of the user ended with the new password (a new session version),
        # this browser's too: it signs in afresh, with two-factor when the user has it.
        logout_user()
        session.clear()
        return back(url_for("auth.login"), "Your password is changed and every session is "
                    "signed out. Sign in with your email and the new password.")

    try:
        return submit(
            lambda: auth.reset_password(db.session, user, form.get("password", ""),
                                        form.get("again", "")),
            lambda errors: _private(render("auth/reset_password.html", "reset_form",
                                           status=422, user=user, errors=errors,
                                           token=token)),
            done)
    except NotFound as e:  # used by a request that raced this one
        db.session.rollback()
        return _private(render("auth/reset_password.html", status=410, problem=e.message,
                               errors={}, token=token))
