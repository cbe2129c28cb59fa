"""Logging, configured once by create_app (microblog's idea, kept small).

- One handler on the root logger, writing to stderr (gunicorn and `make run` collect it), so
  the portal's loggers (`portal.*`) and the libraries' share one format.
- The level comes from LOG_LEVEL (DEBUG, INFO, WARNING, ERROR, CRITICAL; default INFO). An
  unknown name stops the app from starting rather than logging at a level nobody chose.
- One line per event: a line break in a message or a traceback is written as the two
  characters `\\n`, so a message can't forge a second log line and every event greps as one.
- Every line logged while a request is handled names the request: `request_id=<id>`, taken
  from the request's X-Request-ID header when it is well-formed (a proxy's or a client's own
  id, so their logs and ours join up), else generated, and returned in the response's
  X-Request-ID header. Lines logged outside a request say `request_id=-`.
- More filters (the token masking of portal/logmask.py, say) are given to `configure` by
  create_app and run on every record before it is written.

A line looks like:

    2026-11-26T15:00:00.123Z ERROR portal request_id=4f2a... unhandled error on /x\\nTraceback...
"""

import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable

from flask import Flask, g, has_request_context, request

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "INFO"
REQUEST_ID_HEADER = "X-Request-ID"
# A request id we accept from outside: 1 to 128 letters, digits and . _ : - (a UUID, a
# proxy's hex or dashed ids). Anything else (spaces, quotes, control characters, too long) is
# replaced by one we make, so a client can't write arbitrary text into our log lines.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FORMAT = "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
NO_REQUEST = "-"


def request_id() -> str:
    """This request's id (made on first use and kept in g), or "-" outside a request."""
    if not has_request_context():
        return NO_REQUEST
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        g.request_id = rid
    return rid


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


class OneLineFormatter(logging.Formatter):
    """FORMAT with UTC ISO 8601 times; the whole event (traceback included) on one line."""

    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):  # a record that skipped the handler's filters
            record.request_id = NO_REQUEST
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", "\\n")


class _PortalHandler(logging.StreamHandler):
    """The handler configure() installs (a class of its own so it can find and replace it)."""


def level_from(value: str | None) -> int:
    name = (value or DEFAULT_LEVEL).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {value!r}.")
    return getattr(logging, name)


def configure(app: Flask, filters: Iterable[logging.Filter] = (), stream=None) -> logging.Handler:
    """Set the root logger's level and its one portal handler (replacing the one an earlier
    create_app in this process installed), and give every request an id. `filters` run on
    every record after the request id is set (e.g. masking secrets in the message)."""
    level = level_from(app.config.get("LOG_LEVEL"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _PortalHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _PortalHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    for extra in filters:
        handler.addFilter(extra)
    root.addHandler(handler)
    root.setLevel(level)
    # Flask adds its own handler to app.logger when no handler is found at its level; ours is
    # on the root, so take Flask's away in case it was added before this ran.
    from flask.logging import default_handler

    app.logger.removeHandler(default_handler)
    # Flask sets the "portal" logger to DEBUG the first time a debug app asks for it, and
    # that sticks for every later app in the process: LOG_LEVEL (the root's) decides alone.
    app.logger.setLevel(logging.NOTSET)

    @app.after_request
    def _request_id_header(response):
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response

    return handler


def handler() -> logging.Handler | None:
    """The handler configure() installed, if any (tests point its stream elsewhere)."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, _PortalHandler)),
                None)
