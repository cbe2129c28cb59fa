from portal.tenancy import account_blueprint

bp = account_blueprint("numbers", __name__, "/numbers")

from portal.blueprints.numbers import routes  # noqa: E402,F401
