"""Signed one-time billing links: an agency asks its customer to take a sub-account off agency
billing, the customer pays through an emailed link (no sign-in).

    models.py    BillingRequest (what the link stands for), LinkHit (rate limiting)
    tokens.py    itsdangerous signing of the link id, key rotation
    service.py   issuing, resending, canceling, opening, paying; Add to Agency Billing;
                 wire(): its hooks into the charges and account closing
    __init__.py  init_app (create_app calls it), settings(app) from the app's configuration
    views.py     the public pages (blueprint "billing_links")

Its emails are portal.mail's (notices.link_request, link_switched, link_receipt), from
the templates here (templates/billing_links/email_*).
"""


def init_app(app) -> None:
    """Wire the billing links into the services (create_app calls this)."""
    from billing_links import service

    service.wire()
    # The emails (rendered by portal.mail's renderer, in an app context) link the receipt.
    app.jinja_env.globals["billing_link_receipt_url"] = receipt_url
    app.jinja_env.globals["billing_link_invitation_url"] = invitation_url


def settings(app):
    """The link settings (keys, lifetime, external address) from the app's configuration, read
    at each call: a key rotation or a lifetime change in the config applies at once."""
    from datetime import timedelta

    from billing_links.service import LinkSettings

    config = app.config
    keys = config["BILLING_LINK_SECRET_KEYS"]  # set, or derived by portal/keys.py
    return LinkSettings(keys=list(keys), ttl=timedelta(days=config["BILLING_LINK_TTL_DAYS"]),
                        base_url=config["EXTERNAL_BASE_URL"])


def receipt_url(request, charge) -> str:
    """The absolute URL of a billing-link payment's receipt (on the configured external
    address), for the emails: signed like the link, valid for
    rules.BILLING_LINK_RECEIPT_TTL."""
    from flask import current_app

    from billing_links.service import receipt_token

    link = settings(current_app)
    token = receipt_token(link, request, charge)
    return f"{link.base_url.rstrip('/')}/billing-link/receipt/{token}"


def invitation_url(invitation) -> str:
    """The absolute URL of the payer's invitation (people.invite_payer), for the receipt
    email: the invitations' signing (their own salt, the billing links' keys)."""
    from flask import current_app

    from billing_links.service import invitation_settings
    from portal.services import people

    return people.invitation_url(invitation_settings(settings(current_app)), invitation)
