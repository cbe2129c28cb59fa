from flask import g

from portal.blueprints.numbers import bp
from portal.extensions import db
from portal.models import NumberStatus
from portal.rendering import render
from portal.services import numbers


@bp.get("/")
def index():
    """Numbers → Tracking Numbers."""
    active = numbers.list_for(db.session, g.account, NumberStatus.ACTIVE)
    return render("numbers/index.html", numbers=active)
