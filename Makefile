# Two commands: `make run` and `make test` (see README). Everything they need is installed here.
VENV    ?= .venv
PY      := $(VENV)/bin/python
FLASK   := $(VENV)/bin/flask --app wsgi
PORT    ?= 8000
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install system-test-deps test-sqlite test-postgres lint bench bench-billing loadtest loadtest-sqlite clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## make run: migrate and seed the SQLite database, serve on http://127.0.0.1:$(PORT),
## and run the scheduled jobs every minute beside the server (cron does this in production)
# The dev outbox page shows queued emails; the usage API takes this token (local only).
run: export DEV_OUTBOX ?= 1
run: export USAGE_API_TOKEN ?= dev-usage-token
run: export WEBHOOKS_ALLOW_PRIVATE ?= 1
run: export EXTERNAL_BASE_URL ?= http://127.0.0.1:$(PORT)
run: install
	mkdir -p instance
	$(PY) -m portal.keys  # a random SECRET_KEY in instance/secret_key (mode 0600), made once
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	@( while sleep 60; do $(FLASK) jobs run || true; done ) & jobs=$$!; \
	  trap "kill $$jobs 2>/dev/null" EXIT INT TERM; \
	  $(FLASK) jobs run; \
	  $(VENV)/bin/gunicorn -c gunicorn.conf.py --workers 2 --bind 127.0.0.1:$(PORT) --access-logfile - wsgi:app

## Debian's Chromium for the browser tests, PostgreSQL for the second run of the suite,
## poppler-utils (pdftotext, pdftoppm) to read and look at the PDFs, stress to load the CPUs
## while the browser suite runs (the flake check: `stress --cpu 2` beside `pytest tests/browser`),
## wrk for bench/pages.py (the signed-in pages under gunicorn), curl for the README's examples
## (tests/web/test_readme_examples.py runs them)
system-test-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1 || ! command -v stress >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium postgresql poppler-utils stress wrk curl >/dev/null; \
	fi

## make test: the whole suite on SQLite and, side by side (one core each), on a PostgreSQL server
## started on loopback. Each half's output is printed whole when it ends; the first failure fails it.
test: install system-test-deps
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: install
	$(PY) -m pytest

test-postgres: install
	scripts/with-postgres.sh $(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/accounts_list.py
	$(PY) bench/billing_logs.py
	$(PY) bench/usage_ingest.py
	$(PY) bench/statement_pdf.py
	$(PY) bench/versions.py
	$(PY) bench/privacy_export.py
	$(PY) bench/pages.py

## make bench-billing: only the billing benchmarks (Billing Logs and CSV, usage ingestion)
bench-billing: install
	$(PY) bench/billing_logs.py
	$(PY) bench/usage_ingest.py

## make loadtest: two gunicorn instances of the portal on one throwaway PostgreSQL, `jobs run`
## looping beside each, Locust's 50 users for 5 minutes (LOADTEST_DURATION=1m etc., see
## bench/loadtest.sh), then requests, failures, p50/p95/p99 per kind and the money checks.
## make loadtest DB=sqlite (or make loadtest-sqlite): the same on one new SQLite file.
DB ?= postgresql
loadtest: install system-test-deps
ifeq ($(DB),sqlite)
	LOADTEST_DATABASE_URL=sqlite bench/loadtest.sh
else
	scripts/with-postgres.sh bench/loadtest.sh
endif

loadtest-sqlite: install
	LOADTEST_DATABASE_URL=sqlite bench/loadtest.sh

clean:
	rm -rf $(VENV) instance .pytest_cache
