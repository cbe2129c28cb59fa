"""Settings → Developers: the account's API keys (issue 18 K), for its owners and admins.

GET  /accounts/<id>/developers/                      the keys, Create API key, the links to
                                                     the reference and to Webhooks
POST /accounts/<id>/developers/keys                  create: the answer shows the token once
GET  /accounts/<id>/developers/keys/<key_id>/revoke  the confirmation dialog
POST /accounts/<id>/developers/keys/<key_id>/revoke  revoke (needs confirm=yes)

The token is on the creation's answer only (Cache-Control: no-store, as every page): it is
kept hashed and never shown again. Only an owner makes a key that acts as an owner.
"""

from flask import current_app, g, request, url_for
from flask_login import current_user

from portal.blueprints.developers import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.extensions import db
from portal.models import SCOPE_LABELS, SCOPES, Role
from portal.rendering import render, see_other
from portal.services import api_keys
from portal.tenancy import allowed_when_canceled

INDEX, CREATED, REVOKE = ("developers/index.html", "developers/_keys_created.html",
                          "developers/_keys_revoke.html")
ROLE_LABELS = {Role.OWNER: "Owner", Role.ADMIN: "Admin"}
ROLE_HELP = {Role.OWNER: "Everything an owner may do, closing the account too.",
             Role.ADMIN: "Everything an admin may do; not what only owners may (closing)."}


def _me():
    return current_user._get_current_object()


def key_roles() -> list[Role]:
    """The roles the signed-in user may give a key: an owner either, an admin admin only."""
    return [Role.OWNER, Role.ADMIN] if g.access.role == Role.OWNER else [Role.ADMIN]


def _webhooks_url() -> str | None:
    if "developers.webhooks" in current_app.view_functions:
        return url_for("developers.webhooks")
    return None


def _page(block: str | None = None, status: int = 200, **overrides):
    roles_ = key_roles()
    context = {"keys": api_keys.for_account(db.session, g.account),
               "scopes": SCOPES, "scope_labels": SCOPE_LABELS, "roles": roles_,
               "role_labels": ROLE_LABELS, "role_help": ROLE_HELP,
               "form": {"scopes": ["read"], "role": roles_[-1].value}, "errors": {},
               "webhooks_url": _webhooks_url()}
    context.update(overrides)
    return render(INDEX, block, status=status, **context)


@bp.get("/")
@admin_required
def index():
    return _page()


@bp.post("/keys")
@admin_required
def create_key():
    form = request.form
    entered = {"name": form.get("name", ""), "scopes": form.getlist("scopes"),
               "role": form.get("role", "")}
    try:
        role = Role(entered["role"])
    except ValueError:
        role = Role.USER  # refused by the service with the role's message

    def made(result: api_keys.Made):
        return render(CREATED, made=result, role_labels=ROLE_LABELS,
                      scope_labels=SCOPE_LABELS)

    return submit(
        lambda: api_keys.create(db.session, g.account, _me(), g.access.role, entered["name"],
                                entered["scopes"], role),
        lambda errors: _page("create_form", 422, form=entered, errors=errors),
        made,
        refused=lambda message: _page("create_form", 403, form=entered,
                                      errors={"": message}))


@bp.get("/keys")
@admin_required
def keys_list():
    """The creation's address, opened (a reload after the token was shown): the page."""
    return see_other(url_for("developers.index"))


@bp.route("/keys/<id:key_id>/revoke", methods=["GET", "POST"])
@admin_required
@allowed_when_canceled
def revoke_key(key_id: int):
    key = api_keys.key_of(db.session, g.account, key_id)
    if request.method == "GET" or key.is_revoked:
        if key.is_revoked and request.method == "POST":
            return back(url_for("developers.index"), f"The key “{key.name}” was already "
                                                     "revoked.")
        return render(REVOKE, "dialog", key=key, errors={})
    if not confirmed(request.form):
        return render(REVOKE, "dialog", status=422, key=key,
                      errors={"": "Revoking needs the confirmation: nothing was changed."})
    return submit(
        lambda: api_keys.revoke(db.session, g.account, key_id, _me()),
        None,
        lambda done: back(url_for("developers.index"),
                          f"Revoked the API key “{done.name}”: requests sent with it are "
                          "refused from now on."))
