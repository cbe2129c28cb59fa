from portal.tenancy import account_blueprint

bp = account_blueprint("privacy", __name__, "/privacy")

from portal.blueprints.privacy import routes  # noqa: E402,F401
