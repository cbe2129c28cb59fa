"""Agent Statuses: the built-in and custom statuses softphone agents set through the day.

Every member sees the list and sets their own status from the page header; owners and
admins add, edit, order and delete the custom ones.
"""

from flask import g, redirect, request, url_for
from flask_login import current_user

from portal import roles
from portal.blueprints.agents import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.extensions import db
from portal.rendering import is_partial, render, safe_path, see_other
from portal.services import agents

INDEX = "agents/index.html"
HEADER = "agents/_header_status.html"
EDIT, DELETE = "agents/edit.html", "agents/delete.html"


@bp.app_context_processor
def _header_statuses():
    """The header's status form: its statuses and the user's current one, read (in one
    query) only when a page on an account renders the form."""

    def agent_statuses_for_header():
        if g.get("account") is None or not current_user.is_authenticated:
            return None
        if g.get("access") is not None and not roles.allows(g.access.role, "agents.set_mine"):
            return None  # a role without agent statuses (billing) gets no status select
        if "agent_header" not in g:
            known = g.get("access")  # read with the account by tenancy, on a full page
            g.agent_header = (agents.header_from(known.statuses, known.agent_status)
                              if known is not None and known.statuses is not None
                              and known.account is g.account
                              else agents.for_header(db.session, current_user, g.account))
        return g.agent_header

    return {"agent_statuses_for_header": agent_statuses_for_header}


def _page(block: str | None = None, status: int = 200, **overrides):
    context = {"statuses": agents.list_statuses(db.session, g.account),
               "builtins": agents.BUILTIN_CHOICES, "form": {"color": agents.NEW_COLOR},
               "errors": {}, "list_errors": {}, "moved": None,
               "max_statuses": agents.MAX_CUSTOM_STATUSES}
    context.update(overrides)
    return render(INDEX, block, status=status, **context)


@bp.get("/")
def index():
    return _page()


@bp.post("/")
@admin_required
def create():
    form = request.form
    return submit(
        lambda: agents.add(db.session, g.account, form.get("name", ""), form.get("color", ""),
                           form.get("available")),
        lambda errors: _page("add_form", 422, form=form, errors=errors),
        lambda record: back(url_for("agents.index"), f"Added the status {record.name}."))


@bp.route("/<id:status_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(status_id: int):
    """The pencil: a dialog (a page of its own without JavaScript)."""
    record = agents.get(db.session, g.account, status_id)
    if request.method == "GET":
        form = {"name": record.name, "color": record.color,
                "available": "on" if record.available else ""}
        return render(EDIT, "dialog", record=record, form=form, errors={})
    form = request.form
    return submit(
        lambda: agents.update(db.session, g.account, status_id, form.get("name", ""),
                              form.get("color", ""), form.get("available")),
        lambda errors: render(EDIT, "dialog", status=422, form=form, errors=errors,
                              record=agents.get(db.session, g.account, status_id)),
        lambda record: back(url_for("agents.index"), f"Saved the status {record.name}."))


@bp.route("/<id:status_id>/delete", methods=["GET", "POST"])
@admin_required
def delete(status_id: int):
    """Confirm; the users on the status go back to Online."""
    record = agents.get(db.session, g.account, status_id)
    users = agents.users_on(db.session, record)
    if request.method == "GET":
        return render(DELETE, "dialog", record=record, users=users, errors={})
    if not confirmed(request.form):
        return render(DELETE, "dialog", status=422, record=record, users=users,
                      errors={"": "Deleting needs the confirmation: nothing was changed."})
    name = record.name
    moved = agents.delete(db.session, g.account, status_id)
    db.session.commit()
    message = f"Deleted the status {name}."
    if moved == 1:
        message += " The 1 user on it is Online now."
    elif moved:
        message += f" The {moved} users on it are Online now."
    return back(url_for("agents.index"), message)


@bp.post("/<id:status_id>/move")
@admin_required
def move(status_id: int):
    """Up or down one place: the list again for htmx (focus stays on the button)."""
    direction = request.form.get("direction", "")

    def moved(record):
        if is_partial():
            return _page("status_list", moved=(record.id, direction),
                         trigger={"agent-statuses-changed": record.id})
        return see_other(url_for("agents.index", _anchor=f"status-{record.id}"))

    return submit(lambda: agents.move(db.session, g.account, status_id, direction),
                  lambda errors: _page("status_list", 422, list_errors=errors), moved)


@bp.get("/mine")
def header_form():
    """The header's form again (htmx, when the statuses changed on the page: the header
    listens for agent-statuses-changed); without htmx, the Agent Statuses page."""
    if not is_partial():
        return redirect(url_for("agents.index"))
    return render(HEADER, next_path=safe_path(request.args.get("next")))


@bp.post("/mine")
def set_mine():
    """The header's form: the signed-in user's own status on this account (any role)."""
    next_path = safe_path(request.form.get("next")) or url_for("agents.index")
    value = request.form.get("status", "")

    def invalid(errors):
        if is_partial():
            return render(HEADER, status=422, status_errors=errors, next_path=next_path)
        return _page(status=422, status_errors=errors)

    def saved(choice):
        if is_partial():
            # No HX-Trigger: nothing else on any page shows the user's own status.
            return render(HEADER, saved=choice, next_path=next_path)
        return back(next_path, f"Your status on {g.account.name} is {choice.name}.")

    return submit(lambda: agents.set_current(db.session, current_user, g.account, value),
                  invalid, saved)
