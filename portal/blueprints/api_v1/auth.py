"""Who is calling /api/v1 and what the key may reach: every request but the document and
the reference page carries `Authorization: Bearer apk_…`.

Before each view: the key (401 without a live one), its scope for this request (403: GET
and HEAD need `read`; every other method `write`, unless the view says otherwise with
`@requires("metering")`), then the rate limit and the Idempotency-Key replay (ratelimit.py,
idempotency.py). In the view, `reach(account_id, capability)` is the tenancy rule the pages
follow (portal/services/access.py): the key's own account, or for an agency's key one of its
sub-accounts; anything else is 404 whatever its id; then the role matrix (portal/roles.py)
with the key's role, 403 without the capability.
"""

from functools import wraps

from flask import Flask, g, request
from sqlalchemy import select

from portal import roles
from portal.blueprints.api import problems
from portal.errors import NotAllowed, NotFound
from portal.extensions import db
from portal.models import Account, AccountKind, ApiKey, User
from portal.services import api_keys, lifecycle
from portal.services.access import Access

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ANY_SCOPE = "any"  # a view any live key may call, whatever its scopes
BLUEPRINT_PREFIX = "api_v1_"


def requires(scope: str):
    """The scope a view needs instead of its method's default (read for GET, else write)."""
    def decorator(view):
        view.api_scope = scope

        @wraps(view)
        def wrapped(*args, **kwargs):
            _check_scope(scope)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def scope_of(view, method: str) -> str:
    """The scope a request to `view` with `method` needs: what `requires` set on a view
    function, or `api_scope` on a MethodView class (ANY_SCOPE: any key), else read for GET,
    write for the rest. The document says the same (api_v1/__init__.py)."""
    return (getattr(view, "api_scope", None)
            or getattr(getattr(view, "view_class", None), "api_scope", None)
            or ("read" if method.upper() in SAFE_METHODS else "write"))


def _check_scope(scope: str) -> None:
    key: ApiKey = g.api_key
    if scope not in key.scope_set:
        raise NotAllowed(f"This API key does not have the {scope} scope.")


def install(app: Flask) -> None:
    from portal.blueprints.api_v1 import idempotency, ratelimit

    @app.before_request
    def _authenticate():
        if not (request.blueprint or "").startswith(BLUEPRINT_PREFIX):
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        key = api_keys.authenticate(db.session, token) if token else None
        if key is None:
            db.session.rollback()
            response = problems.problem(401, "Send a live API key: Authorization: Bearer apk_… "
                                             "(make one on Settings → Developers).")
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        db.session.commit()  # last_used_at, if it moved
        g.api_key = key
        # Counted first: a request refused for its scope counts too (and says so in its
        # RateLimit headers), so a key can't hammer what it may not do.
        limited = ratelimit.check(key)
        if limited is not None:
            return limited
        view = app.view_functions.get(request.endpoint)
        scope = scope_of(view, request.method)
        if scope != ANY_SCOPE and scope not in key.scope_set:
            return problems.problem(403, f"This API key does not have the {scope} scope.")
        return idempotency.before(key)

    @app.after_request
    def _after(response):
        if g.get("api_key") is not None and \
                (request.blueprint or "").startswith(BLUEPRINT_PREFIX):
            ratelimit.headers(response)
            response = idempotency.after(response)
        return response

    @app.teardown_request
    def _forget_unanswered(_exc):
        # A request that ended without an answer after_request saw (an exception that
        # propagated) leaves no Idempotency-Key row "still running" for 24 hours.
        idempotency.forget()


def key() -> ApiKey:
    return g.api_key


def actor() -> User | None:
    """The user a service records as having acted: the key's maker."""
    made_by = g.api_key.created_by_id
    return db.session.get(User, made_by) if made_by is not None else None


def reach(account_id: int, capability: roles.Can | None = None) -> Access:
    """The account `account_id` as the key reaches it (also put in g.account and g.access,
    as the pages' guard does), or NotFound; AccountClosed (410) for one canceled more than
    60 days ago, as every page of it; NotAllowed without `capability`."""
    api_key: ApiKey = g.api_key
    role = api_key.acting_role or api_key.role
    if account_id == api_key.account_id:
        account = api_key.account
        access = Access(account=account, role=role, via_agency=False)
    else:
        account = None
        if api_key.account.kind == AccountKind.AGENCY:
            account = db.session.scalar(select(Account).where(
                Account.id == account_id, Account.parent_id == api_key.account_id))
        if account is None:
            raise NotFound("No such account, or this key does not reach it.")
        access = Access(account=account, role=role, via_agency=True, agency_role=role)
    lifecycle.check_open(account)
    if capability is not None and not roles.can(role, capability):
        raise NotAllowed(roles.REFUSED[capability])
    g.account, g.access = account, access
    return access


def reachable_query():
    """A select of every account the key reaches (its own; an agency's sub-accounts too)."""
    api_key: ApiKey = g.api_key
    query = select(Account)
    if api_key.account.kind == AccountKind.AGENCY:
        return query.where((Account.id == api_key.account_id)
                           | (Account.parent_id == api_key.account_id))
    return query.where(Account.id == api_key.account_id)
