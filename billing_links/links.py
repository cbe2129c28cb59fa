"""The link settings from the app's configuration."""

from datetime import timedelta

from flask import Flask

from billing_links.service import LinkSettings


def settings(app: Flask) -> LinkSettings:
    config = app.config
    keys = config.get("BILLING_LINK_SECRET_KEYS") or [config["SECRET_KEY"]]
    return LinkSettings(keys=list(keys), ttl=timedelta(days=config["BILLING_LINK_TTL_DAYS"]),
                        base_url=config["EXTERNAL_BASE_URL"])
