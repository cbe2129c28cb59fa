from portal.tenancy import account_blueprint

bp = account_blueprint("presets", __name__)

from portal.blueprints.presets import routes  # noqa: E402,F401
