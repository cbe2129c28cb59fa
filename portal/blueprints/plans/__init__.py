from portal.tenancy import account_blueprint

bp = account_blueprint("plans", __name__, "/plan")

from portal.blueprints.plans import routes  # noqa: E402,F401
