"""gunicorn's settings (`make run` passes -c gunicorn.conf.py; in production run
`gunicorn -c gunicorn.conf.py wsgi:app` the same way). Command-line options override these.

Logging: gunicorn's own logger is replaced by one that masks one-time tokens, so the access
log's request line and referer read `/billing-link/<token>`, never a live payment link
(portal/logmask.py)."""

logger_class = "portal.logmask.MaskedGunicornLogger"
