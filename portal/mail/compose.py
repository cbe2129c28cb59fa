"""An email from templates: a plain-text part (`<template>.txt`) and usually an HTML part
(`<template>.html`), rendered with one context and queued in the outbox.

The templates are the app's, but nothing here imports Flask: create_app hands the mail
package its renderer (`use_renderer`), and the services that send notices (charges, fees,
refunds, the billing links) reach the templates only through it.
"""

from typing import Protocol

from sqlalchemy.orm import Session

from portal.mail import outbox
from portal.models import OutboxMessage


class Renderer(Protocol):
    def template(self, name: str, **context) -> str:
        """The template `name` rendered with `context`."""

    def external_url(self, endpoint: str, **values) -> str:
        """The absolute URL of a page, on the configured external address (never a
        request's Host)."""


_renderer: Renderer | None = None


def use_renderer(renderer: Renderer) -> None:
    global _renderer
    _renderer = renderer


def renderer() -> Renderer:
    if _renderer is None:
        raise RuntimeError("portal.mail has no renderer: create_app gives it one "
                           "(mail.compose.use_renderer)")
    return _renderer


def render(name: str, **context) -> str:
    return renderer().template(name, **context)


def external_url(endpoint: str, **values) -> str:
    return renderer().external_url(endpoint, **values)


def queue(session: Session, *, to: str, subject: str, kind: str, template: str,
          context: dict, html: bool = True, account_id: int | None = None,
          dedupe_key: str | None = None) -> OutboxMessage:
    """Render `template`.txt (and `template`.html unless `html` is false) and queue the
    message (outbox.queue: with a dedupe key, once)."""
    return outbox.queue(session, to=to, subject=subject, kind=kind,
                        text=render(f"{template}.txt", **context),
                        html=render(f"{template}.html", **context) if html else "",
                        account_id=account_id, dedupe_key=dedupe_key)
