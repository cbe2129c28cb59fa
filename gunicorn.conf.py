"""gunicorn's settings (`make run` passes -c gunicorn.conf.py; in production run
`gunicorn -c gunicorn.conf.py wsgi:app` the same way). Command-line options override these.

Logging: gunicorn's own logger is replaced by one that masks one-time tokens, so the access
log's request line and referer read `/billing-link/<token>`, never a live payment link
(portal/logmask.py)."""

import os

logger_class = "portal.logmask.MaskedGunicornLogger"

# Workers: gthread, not gunicorn's default sync worker. The arbiter kills a worker it has not
# heard from for `timeout` seconds, and a sync worker says nothing while it serves a request:
# a long streamed download (the Call History CSV of ~1,000,000 rows) was killed ~30 s in, and
# the client got a cut-off file after a 200. A gthread worker's main loop reports every second
# while its threads serve, so `timeout` is a heartbeat that catches a stuck worker, not a
# limit on how long a response may take. The sessions, the database pool and the throttles
# (in the database) are safe across threads. Environment: WEB_CONCURRENCY (workers),
# GUNICORN_THREADS, GUNICORN_TIMEOUT; command-line options (make run's --workers) win.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30  # on a restart, requests under way get this long to finish
keepalive = 5

# gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: two instances on
# one host (the load test, a blue/green restart) would share it. The portal doesn't use it.
control_socket_disable = True
