"""Signed one-time billing links: an agency asks its customer to take a sub-account off agency
billing, the customer pays through an emailed link (no sign-in).

    models.py    BillingRequest (what the link stands for), LinkHit (rate limiting)
    tokens.py    itsdangerous signing of the link id, key rotation
    service.py   issuing, resending, canceling, opening, paying; Add to Agency Billing;
                 wire(): its hooks into the charges and account closing
    views.py     the public pages (blueprint "billing_links")
    links.py     the settings from the app's configuration

Its emails are portal.mail's (notices.link_request, link_switched, link_receipt), from
the templates here (templates/billing_links/email_*).
"""


def init_app(app) -> None:
    """Wire the billing links into the services (create_app calls this)."""
    from billing_links import service

    service.wire()
