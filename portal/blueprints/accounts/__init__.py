from portal.tenancy import account_blueprint

bp = account_blueprint("accounts", __name__)

from portal.blueprints.accounts import billing_mode, bulk, lifecycle, routes  # noqa: E402,F401
