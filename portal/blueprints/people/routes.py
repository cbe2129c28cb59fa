"""Settings → Users: the list (name, email, role, two-factor, last sign-in), pending
invitations, who reaches the account through its agency; Invite User, change role, remove,
resend and revoke. Owners and admins only (of the account, or of its agency)."""

from flask import current_app, g, request, url_for
from flask_login import current_user

from portal import rules
from portal.blueprints.people import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.clock import now as clock_now
from portal.errors import TooManyAttempts
from portal.extensions import db
from portal.rendering import render
from portal.services import people

INDEX = "people/index.html"
ROLE, REMOVE, REVOKE = "people/role.html", "people/remove.html", "people/revoke.html"


def link_settings() -> people.LinkSettings:
    """Signed with the billing links' keys (BILLING_LINK_SECRET_KEYS, rotated the same way)
    under the invitations' own salt: an invitation token is no billing link, nor the
    reverse."""
    config = current_app.config
    return people.LinkSettings(keys=list(config["BILLING_LINK_SECRET_KEYS"]),
                               ttl=rules.INVITATION_TTL, base_url=config["EXTERNAL_BASE_URL"])


def _me():
    return current_user._get_current_object()


def _page(block: str | None = None, status: int = 200, **overrides):
    context = {"members": people.members(db.session, g.account),
               "invitations": people.pending_invitations(db.session, g.account),
               "through": people.through_agency(db.session, g.account),
               "roles": people.assignable_roles(g.access.role),
               "labels": people.ROLE_LABELS, "role_help": people.ROLE_HELP,
               "form": {"role": "user"}, "errors": {}, "now": clock_now()}
    context.update(overrides)
    return render(INDEX, block, status=status, **context)


@bp.get("/")
@admin_required
def index():
    return _page()


@bp.post("/invitations")
@admin_required
def invite():
    form = request.form
    try:
        return submit(
            lambda: people.invite(db.session, link_settings(), g.account, _me(),
                                  g.access.role, form.get("email", ""), form.get("role", "")),
            lambda errors: _page("invite_form", 422, form=form, errors=errors),
            lambda done: back(url_for("people.index"),
                              f"Invited {done[0].email} as {people.ROLE_LABELS[done[0].role]}. "
                              f"The link works for {rules.INVITATION_TTL.days} days."),
            refused=lambda message: _page("invite_form", 403, form=form,
                                          errors={"": message}))
    except TooManyAttempts as e:
        db.session.rollback()
        return _page("invite_form", 429, form=form, errors={"": e.message})


@bp.post("/invitations/<id:invitation_id>/resend")
@admin_required
def resend(invitation_id: int):
    try:
        return submit(
            lambda: people.resend(db.session, link_settings(), g.account, _me(),
                                  g.access.role, invitation_id),
            None,
            lambda done: back(url_for("people.index"),
                              f"Sent a new invitation to {done[0].email}; the earlier link "
                              "no longer works."),
            refused=lambda message: back(url_for("people.index"), message, "error"))
    except TooManyAttempts as e:
        db.session.rollback()
        return back(url_for("people.index"), e.message, "error")


@bp.route("/invitations/<id:invitation_id>/revoke", methods=["GET", "POST"])
@admin_required
def revoke(invitation_id: int):
    invitation = people.invitation_of(db.session, g.account, invitation_id)
    if request.method == "GET":
        return render(REVOKE, "dialog", invitation=invitation, errors={})
    if not confirmed(request.form):
        return render(REVOKE, "dialog", status=422, invitation=invitation,
                      errors={"": "Revoking needs the confirmation: nothing was changed."})
    return submit(
        lambda: people.revoke(db.session, g.account, g.access.role, invitation_id),
        None,
        lambda done: back(url_for("people.index"),
                          f"Revoked the invitation to {done.email}: its link no longer works."),
        refused=lambda message: render(REVOKE, "dialog", status=403, invitation=invitation,
                                       errors={"": message}))


@bp.route("/<id:membership_id>/role", methods=["GET", "POST"])
@admin_required
def role(membership_id: int):
    membership, user = people.membership_of(db.session, g.account, membership_id)
    context = {"membership": membership, "user": user, "labels": people.ROLE_LABELS,
               "role_help": people.ROLE_HELP, "roles": people.assignable_roles(g.access.role)}
    if request.method == "GET":
        return render(ROLE, "dialog", form={"role": membership.role.value}, errors={},
                      **context)
    form = request.form
    return submit(
        lambda: people.change_role(db.session, g.account, _me(), g.access.role,
                                   membership_id, form.get("role", "")),
        lambda errors: render(ROLE, "dialog", status=422, form=form, errors=errors,
                              **context),
        lambda done: back(url_for("people.index"),
                          f"{done[1].name} is now {people.ROLE_LABELS[done[0].role]} on "
                          f"{g.account.name}."),
        refused=lambda message: render(ROLE, "dialog", status=403, form=form,
                                       errors={"": message}, **context))


@bp.route("/<id:membership_id>/remove", methods=["GET", "POST"])
@admin_required
def remove(membership_id: int):
    membership, user = people.membership_of(db.session, g.account, membership_id)
    context = {"membership": membership, "user": user, "labels": people.ROLE_LABELS}
    if request.method == "GET":
        return render(REMOVE, "dialog", errors={}, **context)
    if not confirmed(request.form):
        return render(REMOVE, "dialog", status=422,
                      errors={"": "Removing needs the confirmation: nothing was changed."},
                      **context)
    return submit(
        lambda: people.remove(db.session, g.account, _me(), g.access.role, membership_id),
        None,
        lambda removed: back(url_for("people.index") if removed.id != _me().id
                             else url_for("home.index"),
                             f"Removed {removed.name} from {g.account.name}: they can no "
                             "longer open it."),
        refused=lambda message: render(REMOVE, "dialog", status=403, errors={"": message},
                                       **context))
