"""One blueprint per area."""

from flask import Flask
from werkzeug.routing import BaseConverter, IntegerConverter, ValidationError

from portal.services.inputs import to_id


class AsciiIntegerConverter(IntegerConverter):
    r"""`<int:...>` with the digits 0-9 only. Werkzeug's matches `\d+`, which takes fullwidth
    digits: /accounts/４/ opened account 4. Routes take ids with `<id:...>` (below); this
    only keeps a future `<int:...>` from reading "４"."""

    regex = r"[0-9]+"


class IdConverter(BaseConverter):
    """`<id:...>`: a row id in a URL, by the rule a form's id is read with (inputs.to_id):
    the digits 0-9 only, 1 to 2**31 - 1 (past it PostgreSQL's INTEGER overflows). Anything
    else matches no route: 404."""

    regex = r"[0-9]{1,10}"
    weight = 50  # as werkzeug's number converters: a literal segment still wins

    def to_python(self, value: str) -> int:
        row_id = to_id(value)
        if row_id is None:
            raise ValidationError()
        return row_id

    def to_url(self, value) -> str:
        return str(int(value))


def register(app: Flask) -> None:
    app.url_map.converters["int"] = AsciiIntegerConverter  # before any rule is added
    app.url_map.converters["id"] = IdConverter
    from billing_links.views import bp as billing_links_bp
    from portal.blueprints.accounts import bp as accounts_bp
    from portal.blueprints.agents import bp as agents_bp
    from portal.blueprints.api import bp as api_bp
    from portal.blueprints.auth import bp as auth_bp
    from portal.blueprints.billing import bp as billing_bp
    from portal.blueprints.calls import bp as calls_bp
    from portal.blueprints.developers import bp as developers_bp
    from portal.blueprints.history import bp as history_bp
    from portal.blueprints.home import bp as home_bp
    from portal.blueprints.numbers import bp as numbers_bp
    from portal.blueprints.people import bp as people_bp
    from portal.blueprints.people import invitations_bp
    from portal.blueprints.plans import bp as plans_bp
    from portal.blueprints.presets import bp as presets_bp
    from portal.blueprints.privacy import bp as privacy_bp
    from portal.blueprints.security import account_bp as account_security_bp
    from portal.blueprints.security import bp as security_bp
    from portal.blueprints.support import bp as support_bp
    from portal.blueprints.webhooks import bp as webhooks_bp

    for bp in (auth_bp, home_bp, accounts_bp, billing_bp, calls_bp, numbers_bp, support_bp,
               history_bp, security_bp, account_security_bp, privacy_bp, agents_bp,
               presets_bp, plans_bp, api_bp, billing_links_bp, people_bp, invitations_bp,
               webhooks_bp, developers_bp):
        app.register_blueprint(bp)
    if app.config.get("DEV_OUTBOX"):
        from portal.blueprints.dev import bp as dev_bp

        app.register_blueprint(dev_bp)
