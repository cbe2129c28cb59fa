from portal.tenancy import account_blueprint

bp = account_blueprint("support", __name__, "/support")

from portal.blueprints.support import routes  # noqa: E402,F401
