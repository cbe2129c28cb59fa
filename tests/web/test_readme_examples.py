"""The README's curl examples work against `make run` (issue 18's "done when"): every code
block of the README that calls curl is run, in the README's order and as one shell script (a
block may use a variable an earlier one set), against the app served on loopback over the
demo data `flask seed-demo` makes, with the settings `make run` gives it. Every request must
answer 2xx, and the statement the examples download must be a PDF.

The examples name accounts by the ids the demo seeds (Northwind Agency 1, Bayside Dental 2,
Cedar Law Group 3), so PostgreSQL's id sequences are restarted first (SQLite reuses ids in
an empty table by itself)."""

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select, text

from portal.cli import demo
from portal.extensions import db
from portal.models import Account
from portal.services import api_keys
from tests.conftest import make_app, serving

README = Path(__file__).resolve().parents[2] / "README.md"
MAKE_RUN = "http://127.0.0.1:8000"
FENCE = re.compile(r"^([ \t]*)```[a-z]*\n(.*?)^[ \t]*```", re.S | re.M)


def curl_blocks() -> list[str]:
    """The README's code blocks that call curl, in order, as they would be pasted."""
    blocks = [textwrap.dedent(indent + body) for indent, body in FENCE.findall(README.read_text())]
    return [b for b in blocks if re.search(r"^\s*(\w+=\$\()?curl ", b, re.M)]


def curl_calls(script: str) -> int:
    """How many curl commands the script runs (comments aside)."""
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    return len(re.findall(r"(?:^|\$\(|\s)curl\s", code))


def test_the_readme_has_curl_examples_for_the_api_and_metering():
    script = "\n".join(curl_blocks())
    for path in ("/api/v1/key", "/api/v1/usage/batches", "/accounts/1/payments",
                 "/webhook-events", "/billing-mode/remove-from-agency-billing"):
        assert path in script
    assert curl_calls(script) >= 20


@pytest.fixture
def demo_server(app, session, database_url):
    """The demo data, and the app serving it on a free loopback port as `make run` does."""
    if db.engine.dialect.name == "postgresql":
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        session.commit()
    demo.seed(session, calls_per_account=2)
    api_keys.seed_demo_key(session)
    session.commit()
    ids = dict(session.execute(select(Account.name, Account.id)).all())
    assert (ids["Northwind Agency"], ids["Bayside Dental"], ids["Cedar Law Group"]) == (1, 2, 3)

    served = make_app(database_url, USAGE_API_TOKEN="dev-usage-token", DEV_OUTBOX=True)
    with serving(served, "readme-server") as url:
        yield url


def test_every_readme_curl_example_answers_2xx_against_the_demo(demo_server, tmp_path):
    assert shutil.which("curl"), "curl is missing: `make test` installs it (apt-get install curl)"
    script = "\n".join(curl_blocks()).replace(MAKE_RUN, demo_server)
    # Each curl also writes its status, method and URL to stderr: one line per request.
    prelude = ('set -eu\n'
               'curl() { command curl --max-time 30 '
               '-w "%{stderr}%{http_code} %{method} %{url_effective}\\n" "$@"; }\n')
    run = subprocess.run(["bash", "-c", prelude + script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    answers = re.findall(r"^(\d{3}) ([A-Z]+) (\S+)$", run.stderr, re.M)
    assert len(answers) == curl_calls(script), run.stderr
    failed = [a for a in answers if not a[0].startswith("2")]
    assert not failed, f"{failed}\n{run.stdout[-4000:]}"
    assert (tmp_path / "statement.pdf").read_bytes().startswith(b"%PDF-")
