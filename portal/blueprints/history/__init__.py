from portal.tenancy import account_blueprint

bp = account_blueprint("history", __name__, "/history")

from portal.blueprints.history import routes  # noqa: E402,F401
