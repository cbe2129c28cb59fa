from portal.tenancy import account_blueprint

bp = account_blueprint("agents", __name__, "/agent-statuses")

from portal.blueprints.agents import routes  # noqa: E402,F401
