"""The link settings from the app's configuration."""

from datetime import timedelta

from flask import Flask

from billing_links.service import LinkSettings


def settings(app: Flask) -> LinkSettings:
    config = app.config
    keys = config["BILLING_LINK_SECRET_KEYS"]  # set, or derived by portal/keys.py
    return LinkSettings(keys=list(keys), ttl=timedelta(days=config["BILLING_LINK_TTL_DAYS"]),
                        base_url=config["EXTERNAL_BASE_URL"])
