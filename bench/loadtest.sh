#!/usr/bin/env bash
# The load test (`make loadtest`): two gunicorn instances of the portal on one database
# (PostgreSQL, or one SQLite file), `flask jobs run` looping beside each, Locust's simulated
# users against both, then the figures and the money checks. Everything on loopback;
# everything stopped at the end.
#
#   scripts/with-postgres.sh bench/loadtest.sh        (what `make loadtest` runs)
#   LOADTEST_DATABASE_URL=sqlite bench/loadtest.sh    (`make loadtest DB=sqlite`)
#
# The database: LOADTEST_DATABASE_URL, else TEST_DATABASE_URL (with-postgres.sh sets it to a
# throwaway server's empty database). PostgreSQL, or SQLite: `sqlite` alone is a new file in
# the run's folder (LOADTEST_OUT/portal.sqlite3), the embedded default's setup (the portal's
# own pragmas, portal/__init__.py); `sqlite:////abs/path` a file of your choosing. It must be
# empty: bench/loadtest_seed.py migrates it and seeds the demo data and the 20 metered
# accounts.
#
# Settings (environment): LOADTEST_USERS (50), LOADTEST_SPAWN_RATE (10 per second),
# LOADTEST_DURATION (5m), LOADTEST_WORKERS (gunicorn workers per instance, 2),
# LOADTEST_JOBS_INTERVAL (seconds between two `jobs run` of one instance, 5),
# LOADTEST_GUNICORN_ARGS (more options for both instances, e.g. --log-level debug),
# LOADTEST_OUT (a folder for the logs and CSVs; a new one in /tmp by default, kept).
#
# Exit status: 0 when there was no 5xx, no connection error, no error in the harness or the
# jobs, and every money check passed (bench/loadtest_report.py, `flask ledger check`,
# bench/loadtest_checks.py); 1 otherwise; 2 when it can't start.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=$VENV/bin/python
FLASK="$VENV/bin/flask --app wsgi"

DB=${LOADTEST_DATABASE_URL:-${TEST_DATABASE_URL:-}}
case "$DB" in
  postgresql*|sqlite|sqlite:////*) ;;
  "") echo "loadtest: no database: run it as scripts/with-postgres.sh bench/loadtest.sh" \
        "(make loadtest), or set LOADTEST_DATABASE_URL to an empty PostgreSQL database," \
        "or to sqlite (make loadtest DB=sqlite)" >&2
      exit 2 ;;
  *) echo "loadtest: needs PostgreSQL or a SQLite file by its absolute path" \
       "(sqlite:////path), not $DB" >&2; exit 2 ;;
esac
USERS=${LOADTEST_USERS:-50}
RATE=${LOADTEST_SPAWN_RATE:-10}
DURATION=${LOADTEST_DURATION:-5m}
WORKERS=${LOADTEST_WORKERS:-2}
JOBS_INTERVAL=${LOADTEST_JOBS_INTERVAL:-5}
OUT=${LOADTEST_OUT:-$(mktemp -d /tmp/portal-loadtest.XXXXXX)}
mkdir -p "$OUT"
rm -f "$OUT/stop"
if [ "$DB" = sqlite ]; then
  DB="sqlite:///$(cd "$OUT" && pwd)/portal.sqlite3"
fi
case "$DB" in
  sqlite*) if [ -s "${DB#sqlite:///}" ]; then
             echo "loadtest: ${DB#sqlite:///} is not empty: give the load test a new file" >&2
             exit 2
           fi ;;
esac

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORTS=($(free_port) $(free_port))
SMTP_PORT=$(free_port)
INSTANCES="http://127.0.0.1:${PORTS[0]},http://127.0.0.1:${PORTS[1]}"

# Both instances (and their jobs) share everything but the port: one secret key (a session
# cookie works on either), one database, one mail server; billing links point at the first.
export DATABASE_URL=$DB
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
USAGE_API_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
export SECRET_KEY USAGE_API_TOKEN
export EXTERNAL_BASE_URL="http://127.0.0.1:${PORTS[0]}"
export BILLING_LINK_RATE_LIMIT=1000000  # every simulated customer comes from 127.0.0.1
export SANDBOX_RATE_LIMIT=1000000  # their cards typed into the sandbox's form, too
export MAIL_SERVER=127.0.0.1 MAIL_PORT=$SMTP_PORT
export LOG_LEVEL=${LOG_LEVEL:-INFO}
unset FLASK_DEBUG DEV_OUTBOX SECRET_KEY_FILE

servers=()
loops=()
sink=""
cleanup() {
  touch "$OUT/stop"
  for pid in "${loops[@]}" "${servers[@]}" $sink; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "loadtest: $USERS users for $DURATION against $INSTANCES on ${DB%%:*} (logs in $OUT)"
phase() { echo "loadtest: [${SECONDS}s] $*"; }
# Migrated, the demo data, the load test's accounts (bench/loadtest_seed.py: one process).
$PY bench/loadtest_seed.py "$OUT/world.json" 2>"$OUT/setup.log" || {
  cat "$OUT/setup.log" >&2; exit 2; }
phase "migrated and seeded; starting the instances"

$PY bench/smtp_sink.py "$SMTP_PORT" "$OUT/deliveries.jsonl" >"$OUT/smtp.log" 2>&1 &
sink=$!
for i in 0 1; do
  $VENV/bin/gunicorn -c gunicorn.conf.py --workers "$WORKERS" --bind "127.0.0.1:${PORTS[$i]}" \
    --access-logfile "$OUT/access-$i.log" ${LOADTEST_GUNICORN_ARGS:-} wsgi:app \
    >"$OUT/instance-$i.log" 2>&1 &
  servers+=($!)
done
$PY - "$INSTANCES" <<'EOF'
import sys, time, urllib.request
for base in sys.argv[1].split(","):
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"loadtest: {base} did not start")
            time.sleep(0.3)
EOF

phase "both instances answer; starting the jobs loops and Locust"
# The scheduled jobs, from both instances at once (cron runs `jobs run` every minute in
# production; here every few seconds, to settle timed-out charges and deliver mail during
# the run). A run under way when the load stops is let finish.
jobs_loop() {
  local log=$1 child=""
  trap 'kill $child 2>/dev/null; exit 0' TERM  # cleanup() on an error: stop the run too
  while [ ! -e "$OUT/stop" ]; do
    $FLASK jobs run >>"$log" 2>&1 & child=$!
    wait "$child" || echo "JOBS RUN FAILED (exit $?)" >>"$log"
    sleep "$JOBS_INTERVAL" & child=$!
    wait "$child" || true
  done
}
for i in 0 1; do
  jobs_loop "$OUT/jobs-$i.log" &
  loops+=($!)
done

LOADTEST_WORLD="$OUT/world.json" LOADTEST_INSTANCES="$INSTANCES" LOADTEST_OUT="$OUT" \
LOADTEST_USERS="$USERS" \
LOADTEST_DB="$(echo "$DB" | sed 's/^postgresql+psycopg:/postgresql:/')" \
  $VENV/bin/locust -f bench/locustfile.py --headless -u "$USERS" -r "$RATE" -t "$DURATION" \
    --host "http://127.0.0.1:${PORTS[0]}" --csv "$OUT/locust" --only-summary \
    --stop-timeout 5 --exit-code-on-error 0 >"$OUT/locust.log" 2>&1 || {
  echo "loadtest: locust itself failed:"; tail -n 40 "$OUT/locust.log"; exit 1; }

phase "Locust done; stopping the jobs loops (a run under way finishes) and the instances"
touch "$OUT/stop"
for pid in "${loops[@]}"; do wait "$pid" 2>/dev/null || true; done
loops=()
for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
servers=()

phase "stopped"
status=0
$PY bench/loadtest_report.py "$OUT" || status=1
echo
echo "flask ledger check:"
$FLASK ledger check || status=1
$PY bench/loadtest_checks.py --drain --usage-log "$OUT/usage.jsonl" \
  --deliveries "$OUT/deliveries.jsonl" || status=1
phase "checked"
echo
if [ "$status" = 0 ]; then
  echo "loadtest: PASS (logs in $OUT)"
else
  echo "loadtest: FAIL (logs in $OUT)"
fi
exit "$status"
