"""The sandbox payment processor (issue 16): the default gateway, shaped like a real one.

It has its own card-entry form and script on its own path (/sandbox/v1, as if on the
processor's host), so card numbers go to it and never to the portal, which receives only
the ids it returns (pm_sbx_…). `core` is the processor's logic over its own tables (no
Flask); `views` is its blueprint, registered only when the sandbox is the gateway.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no Flask at import: the services import portal.sandbox.core
    from flask import Flask

URL_PREFIX = "/sandbox/v1"


def init_app(app: "Flask") -> None:
    """Register the sandbox's blueprint when the app's gateway is the sandbox."""
    if getattr(app.extensions.get("payment_gateway"), "name", "") != "sandbox":
        return
    from portal.sandbox import views

    views.register(app)
