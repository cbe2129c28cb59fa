from flask import flash, g, url_for
from flask_login import current_user

from portal.blueprints.numbers import bp
from portal.errors import NotAllowed
from portal.extensions import db
from portal.models import NumberStatus
from portal.rendering import render, see_other
from portal.services import numbers
from portal.tenancy import MAX_ACCOUNT_ID, require_admin


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


@bp.post(f"/<int(max={MAX_ACCOUNT_ID}):number_id>/restore")
def restore(number_id: int):
    require_admin()
    try:
        number = numbers.restore(db.session, g.account, number_id, current_user)
    except NotAllowed as e:
        db.session.rollback()
        flash(e.message, "error")
        return see_other(url_for("numbers.released"))
    db.session.commit()
    flash(f"{number.number} is restored and active on {g.account.name} again.", "success")
    return see_other(url_for("numbers.released"))
