"""Signed one-time billing links: an agency asks its customer to take a sub-account off agency
billing, the customer pays through an emailed link (no sign-in).

    models.py    BillingRequest (what the link stands for), LinkHit (rate limiting)
    tokens.py    itsdangerous signing of the link id, key rotation
    service.py   issuing, resending, canceling, opening, paying; Add to Agency Billing
    emails.py    the request email and the notices after payment
    views.py     the public pages (blueprint "billing_links")
    links.py     the settings from the app's configuration
"""
