from flask import flash, g, request, url_for
from flask_login import current_user

from portal.blueprints.numbers import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.extensions import db
from portal.models import NumberStatus
from portal.rendering import render, see_other
from portal.services import numbers

RESTORE_ALL = "numbers/restore_all.html"


@bp.get("/")
def index():
    """Numbers → Tracking Numbers."""
    active = numbers.list_for(db.session, g.account, NumberStatus.ACTIVE)
    return render("numbers/index.html", numbers=active)


@bp.get("/released")
def released():
    """Numbers → Tracking Numbers → Released Numbers."""
    return render("numbers/released.html",
                  offers=numbers.restore_offers(db.session, g.account, g.access.is_admin))


@bp.post("/<id:number_id>/restore")
@admin_required
def restore(number_id: int):
    to = url_for("numbers.released")
    return submit(
        lambda: numbers.restore(db.session, g.account, number_id, current_user), None,
        lambda number: back(to, f"{number.number} is restored and active on "
                                f"{g.account.name} again."),
        refused=lambda message: back(to, message, "error"))


@bp.route("/released/restore-all", methods=["GET", "POST"])
@admin_required
def restore_all():
    """Restore all: one confirmation listing what will be restored and what can't (and
    why); the server checks the confirmation field."""
    to = url_for("numbers.released")
    if request.method == "GET" or not confirmed(request.form):
        restorable, others = numbers.restore_all_plan(db.session, g.account, g.access.is_admin)
        errors = ({} if request.method == "GET" else
                  {"": "Restoring needs the confirmation: nothing was changed."})
        return render(RESTORE_ALL, "dialog", status=422 if errors else 200,
                      restorable=restorable, others=others, errors=errors)

    def done(result):
        """What was restored (success), and apart what was not, with why (error)."""
        if result.restored:
            count = len(result.restored)
            flash(f"Restored {count} number{'s' if count != 1 else ''} on {g.account.name}: "
                  f"{', '.join(n.number for n in result.restored)}.", "success")
        if result.refused:
            flash(("" if result.restored else "No number was restored. ")
                  + " ".join(reason for _number, reason in result.refused), "error")
        return see_other(to)

    return submit(lambda: numbers.restore_all(db.session, g.account, current_user), None,
                  done, refused=lambda message: back(to, message, "error"))

