"""Security headers on every response (create_app installs them).

- Content-Security-Policy: scripts and styles only from our own files, never inline or
  evaluated (no 'unsafe-inline', no 'unsafe-eval'): the templates carry no inline script,
  event-handler attribute or style attribute, their behaviours live in static/portal.js, and
  htmx runs with allowEval and its inline indicator style turned off (base.html's
  htmx-config). Images from us or data: URLs (the empty favicon); no plugins; <base> can't
  move the page's links; forms post only to us; no site may frame a page.
- X-Frame-Options: DENY, for browsers without frame-ancestors.
- X-Content-Type-Options: nosniff.
- Referrer-Policy: strict-origin-when-cross-origin; no-referrer on the public billing-link
  pages and every page whose route takes a `token` (a one-time link's URL holds it).
- Strict-Transport-Security when SESSION_COOKIE_SECURE is on (the app is served over HTTPS).
- Cache-Control: no-store on everything but the static files: signed-in pages, exports,
  receipts, PDFs, the billing-link pages, and the sign-in pages (they carry CSRF tokens).

Card-entry pages (issue 16: a view marked @card_entry_page) widen the policy with what the
gateway's browser() names (the sandbox: frame-src 'self'; Stripe: its script and frame
hosts), on those pages only.

A view that needs another policy (the dev outbox's sandboxed mail preview) sets its own
Content-Security-Policy and X-Frame-Options; they are kept.
"""

from collections.abc import Mapping

from flask import Flask, Response, current_app, request

DIRECTIVES = (
    ("default-src", ("'self'",)),
    ("script-src", ("'self'",)),
    ("style-src", ("'self'",)),
    ("img-src", ("'self'", "data:")),
    ("font-src", ("'self'",)),
    ("connect-src", ("'self'",)),
    ("object-src", ("'none'",)),
    ("base-uri", ("'none'",)),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
)


def policy(extra: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The Content-Security-Policy, with `extra` sources added to (or as) directives."""
    extra = dict(extra or {})
    parts = []
    for name, sources in DIRECTIVES:
        more = tuple(s for s in extra.pop(name, ()) if s not in sources)
        parts.append(" ".join((name, *sources, *more)))
    parts.extend(" ".join((name, *sources)) for name, sources in extra.items())
    return "; ".join(parts)


CSP = policy()


def card_entry_page(view):
    """Mark a view whose page hosts the processor's card entry or challenge (its CSP then
    allows the gateway's script and frame)."""
    view.card_entry_page = True  # read by apply() (and the headers walk) from the endpoint
    return view


def _is_card_entry_page() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "card_entry_page", False))


def _card_entry_csp() -> str:
    gateway = current_app.extensions.get("payment_gateway")
    browser = getattr(gateway, "browser", None)
    return policy(browser().csp if browser else None)
REFERRER_POLICY = "strict-origin-when-cross-origin"
# Pages whose URL holds a secret (a one-time token): no Referer leaves them.
NO_REFERRER_BLUEPRINTS = frozenset({"billing_links"})
HSTS = "max-age=31536000"


def apply(response: Response, *, secure: bool) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy",
                       _card_entry_csp() if _is_card_entry_page() else CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers["X-Content-Type-Options"] = "nosniff"
    rule = request.url_rule
    if request.blueprint in NO_REFERRER_BLUEPRINTS or (rule and "token" in rule.arguments):
        headers["Referrer-Policy"] = "no-referrer"
    else:
        headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    if secure:
        headers["Strict-Transport-Security"] = HSTS
    if request.endpoint != "static":
        cache = headers.get("Cache-Control", "")
        if "no-store" not in cache:
            headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        return apply(response, secure=bool(app.config.get("SESSION_COOKIE_SECURE")))
