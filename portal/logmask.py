"""No one-time token in a log line: the route is logged, not the token.

A billing link's URL is a live payment link for days (`/billing-link/<token>`); whoever reads
the logs must not be able to open it. MaskTokens is a logging.Filter that rewrites every
record it sees (message, arguments, traceback text) so that a path under a one-time-token
route reads `/billing-link/<token>`. It never drops a record.

Where it runs:
- create_app gives it to the logging configuration (portal/logconfig.py), which runs it on
  every record the portal's handler writes, and install() puts it on the loggers that log
  request paths themselves (the app's, Werkzeug's, gunicorn's), so it runs before any
  handler sees the record (a test's capture included);
- gunicorn.conf.py makes gunicorn's own logger (the access log: the request line, the
  referer) use MaskedGunicornLogger.

A future one-time link (invitations, password resets, ...) is covered when its route names
its argument `token` (install() reads the app's routes), or by adding its prefix to
TOKEN_ROUTES.
"""

import logging
import re
from collections.abc import Iterable

# Routes whose next path segment is a one-time token.
# "_secret_": a processor's client secret (pi_…_secret_…, issue 16) in a 3-D Secure URL.
TOKEN_ROUTES: tuple[str, ...] = ("/billing-link/", "_secret_")
MASK = "<token>"
# The loggers that write request paths: Flask's app logger (its "Exception on <path>" line
# and the 500 handler's), Werkzeug's development server, gunicorn's access and error logs.
LOGGERS = ("portal", "werkzeug", "gunicorn.access", "gunicorn.error")


def _pattern(prefixes: Iterable[str]) -> re.Pattern:
    # The prefix, then everything up to the next /, ?, #, whitespace, quote or end: the token.
    alternatives = "|".join(re.escape(p) for p in sorted(set(prefixes), key=len, reverse=True))
    return re.compile(f"({alternatives})[^/?#\\s\"'<>]+")


_TOKEN_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?token>")


def token_routes(app) -> set[str]:
    """The static start of every app route whose next segment is its `token` argument."""
    prefixes = set()
    for rule in app.url_map.iter_rules():
        found = _TOKEN_ARGUMENT.search(rule.rule)
        if found and rule.rule[:found.start()].endswith("/") and found.start() > 1:
            prefixes.add(rule.rule[:found.start()])
    return prefixes


class MaskTokens(logging.Filter):
    """Replaces one-time tokens in a record's text with `<token>`; keeps every record."""

    def __init__(self, prefixes: Iterable[str] = TOKEN_ROUTES):
        super().__init__()
        self.prefixes: tuple[str, ...] = ()
        self.cover(prefixes)

    def cover(self, prefixes: Iterable[str]) -> None:
        """Mask the tokens after these route prefixes too."""
        self.prefixes = tuple(sorted(set(self.prefixes) | set(prefixes)))
        self._re = _pattern(self.prefixes)

    def mask(self, text: str) -> str:
        return self._re.sub(lambda m: m.group(1) + MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        # The message as it will be written, masked, with no arguments left to put a token
        # back in (gunicorn's access log passes a dict of request atoms: the same).
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def install(masking: MaskTokens, app=None, loggers: Iterable[str] = LOGGERS) -> MaskTokens:
    """Cover the app's token routes (when given) and put `masking` on the named loggers
    (replacing an earlier one), so their records are masked before any handler sees them."""
    if app is not None:
        masking.cover(token_routes(app))
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, MaskTokens)]:
            logger.removeFilter(old)
        logger.addFilter(masking)
    return masking


try:  # gunicorn is a dependency, but the module must import without it (tests, tools)
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover
    _GunicornLogger = None


if _GunicornLogger is not None:
    class MaskedGunicornLogger(_GunicornLogger):
        """gunicorn's logger with MaskTokens on its access and error logs (gunicorn.conf.py:
        `logger_class`). The access log's request line, path and referer say `<token>`."""

        def setup(self, cfg):
            super().setup(cfg)
            masking = MaskTokens()
            for log in (self.access_log, self.error_log):
                for old in [f for f in log.filters if isinstance(f, MaskTokens)]:
                    log.removeFilter(old)
                log.addFilter(masking)
