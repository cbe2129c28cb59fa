from portal.tenancy import account_blueprint

bp = account_blueprint("billing", __name__, "/billing")

from portal.blueprints.billing import routes  # noqa: E402,F401
