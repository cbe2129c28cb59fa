"""/api/v1/accounts: the accounts a key reaches (issue 18 E1 completes the actions)."""

from flask.views import MethodView

from portal import roles
from portal.blueprints.api_v1 import auth, blueprint, paging
from portal.blueprints.api_v1.schemas import AccountSchema, PageArgsSchema, page_schema
from portal.extensions import db
from portal.models import Account

bp = blueprint("accounts", "Accounts and sub-accounts: read them, pause, resume, close.")

AccountPage = page_schema(AccountSchema, "AccountPage")


@bp.route("/accounts")
class Accounts(MethodView):
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, AccountPage)
    def get(self, args):
        """The key's account and, for an agency's key, its sub-accounts."""
        return paging.page(db.session, auth.reachable_query(), Account.id, args["limit"],
                           args["cursor"])


@bp.route("/accounts/<id:account_id>")
class AccountItem(MethodView):
    @bp.response(200, AccountSchema)
    def get(self, account_id: int):
        """One account the key reaches."""
        return auth.reach(account_id, roles.Can.OVERVIEW).account
