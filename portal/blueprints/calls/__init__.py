from portal.tenancy import account_blueprint

bp = account_blueprint("calls", __name__, "/calls")

from portal.blueprints.calls import routes  # noqa: E402,F401
