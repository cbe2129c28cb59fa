from flask import flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.auth import bp
from portal.errors import TooManyAttempts, ValidationFailed
from portal.extensions import db
from portal.rendering import render, safe_path, see_other
from portal.services import access, auth
from portal.services.lifecycle import closed_message


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
                            address=request.remote_addr or "unknown")
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
    login_user(user, remember=False)
    session["several_accounts"] = access.reaches_several(db.session, user)
    return see_other(next_url or url_for("home.index"))


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return see_other(url_for("auth.login"))
