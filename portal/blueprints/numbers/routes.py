from flask import g, url_for
from flask_login import current_user

from portal.blueprints.numbers import bp
from portal.blueprints.views import admin_required, back, submit
from portal.extensions import db
from portal.models import NumberStatus
from portal.rendering import render
from portal.services import numbers


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
