"""The load test's simulated people (Locust), against two instances of the portal.

Run by bench/loadtest.sh, which starts everything and passes, in the environment:
LOADTEST_WORLD (the JSON bench/loadtest_seed.py wrote), LOADTEST_INSTANCES (the two base URLs,
comma-separated), USAGE_API_TOKEN, LOADTEST_DB (a libpq URL of the database, or
sqlite:////path of its SQLite file, to read the billing links the portal emailed),
LOADTEST_OUT (a folder for the logs below) and LOADTEST_USERS (how many simulated users; the
classes' shares follow from it).

Each request goes to one of the two instances at random (the session cookie is the same on
both: one host, two ports), carries an X-Request-ID ("lt-…", found in the instances' logs),
and is named by its kind, so Locust's statistics are per kind of request.

- Metering: the metering system. Posts usage for the 20 metered accounts with the bearer
  token, new keys and retried ones (the same key again at once, later, or twice at the same
  moment on both instances: one 201, the others 200 "duplicate"), which makes the recharges
  of the accounts with auto recharge. Every answer is written to usage.jsonl for the checks.
- AgencyOwner: one per load agency. Switches its sub-accounts' billing: Add to Agency
  Billing, or Remove from Agency Billing, whose emailed link the customer then opens and pays
  on the public page (the link read from the outbox table), sometimes with a card that
  declines, or whose answer times out (settled later by the jobs), sometimes after the agency
  resent or canceled the link (the old link answers 410). Also reads the agency's pages.
- AccountAdmin: everyone else, signed in once as one of the personas (standalone admins,
  sub-account admins, the demo users), reading every kind of signed-in page, paying with
  Make a Payment (the form's CSRF token and form_key; sometimes submitted twice, which charges
  once), downloading receipts and statements as PDF.

Outcomes: 2xx/3xx as expected pass; the 4xx a race can cause (a sub-account that just changed
billing: 403; a declined card: 402; a link replaced meanwhile: 410) pass and are counted in
summary.json; any other 4xx is a failure named "HTTP 4xx (unexpected)"; a 5xx or a connection
error is a failure whose request is written to failures.jsonl (with its X-Request-ID).
"""

import itertools
import json
import os
import random
import re
import secrets
import time
from collections import Counter, deque
from datetime import date, timedelta
from pathlib import Path

import gevent
from locust import HttpUser, between, events, task

WORLD = json.loads(Path(os.environ["LOADTEST_WORLD"]).read_text())
INSTANCES = os.environ["LOADTEST_INSTANCES"].split(",")
TOKEN = os.environ["USAGE_API_TOKEN"]
OUT = Path(os.environ["LOADTEST_OUT"])
DB_URL = os.environ["LOADTEST_DB"]
USERS = int(os.environ.get("LOADTEST_USERS", "50"))
PASSWORD = WORLD["password"]

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_KEY_RE = re.compile(r'name="form_key" value="([0-9a-f]{32})"')
PAY_METHOD_RE = re.compile(r'<select id="pay-method" name="method"[^>]*>(.*?)</select>', re.S)
OPTION_RE = re.compile(r'<option value="(\d+)"')
RECEIPT_RE = re.compile(r'/billing/payments/(\d+)"')
MODE_RE = re.compile(r'data-testid="billing-mode">(agency|customer)<')
LINK_RE = re.compile(r"(/billing-link/[A-Za-z0-9._-]+)")
APPROVE, DECLINE, TIMEOUT = "4242424242424242", "4000000000000002", "4000000000000259"

TALLY: Counter = Counter()  # outcomes by name, written to summary.json at the end
_usage_log = open(OUT / "usage.jsonl", "a", buffering=1)  # noqa: SIM115 (the run's length)
_failure_log = open(OUT / "failures.jsonl", "a", buffering=1)  # noqa: SIM115


@events.test_stop.add_listener
def _write_summary(**_kwargs):
    (OUT / "summary.json").write_text(json.dumps(dict(sorted(TALLY.items())), indent=1))


# Kept-alive connections: gunicorn (gunicorn.conf.py: keepalive = 5) closes a connection
# idle for 5 s, and a request sent on it just then is reset (the gthread worker's main loop
# closes it with the request unread; the more the machine is starved, the wider that window:
# 2 resets in 789 requests in a trial run). Browsers resend a request that failed that way on
# a reused connection, and a proxy's upstream keepalive is set shorter than the backend's; the
# simulated clients do the latter: a connection idle for IDLE_LIMIT seconds is not reused.
# LOADTEST_IDLE_LIMIT=0 reuses every connection (to see the race).
IDLE_LIMIT = float(os.environ.get("LOADTEST_IDLE_LIMIT", "2"))


def _idle(client, url: str) -> float | None:
    """Seconds since this client last used the instance of `url` (None: never); closes the
    client's pooled connections when one has been idle past IDLE_LIMIT."""
    last = getattr(client, "_lt_last", {})
    base = url.split("/", 3)[2]
    idle = None if base not in last else round(time.monotonic() - last[base], 3)
    if IDLE_LIMIT and any(time.monotonic() - t > IDLE_LIMIT for t in last.values()):
        client.close()  # the pools only: cookies stay, the next request reconnects
        last.clear()
    return idle


def _pooled(client, url: str) -> int | None:
    """How many idle connections to this instance the client holds (0: the request opens a
    new one): the failures' log says whether a reset came on a reused connection."""
    try:
        host, _, port = url.split("/", 3)[2].partition(":")
        pools = client.get_adapter(url).poolmanager.pools
        return sum(1 for key in pools.keys() for pool in [pools[key]]
                   if pool.host == host and pool.port == int(port)
                   for conn in list(pool.pool.queue) if conn is not None)
    except Exception:  # a view on urllib3's internals, for the logs: never fail a request
        return None


def _used(client, url: str) -> None:
    if not hasattr(client, "_lt_last"):
        client._lt_last = {}
    client._lt_last[url.split("/", 3)[2]] = time.monotonic()


# A request sent on a reused kept-alive connection that the server closed at that moment
# fails before any answer, with a reset or an empty close: the server never read it. Browsers
# send such a request again on a new connection (whatever its method); RFC 9112 9.3.1 allows it
# when the request can't have been applied or is idempotent, and every post here is (usage and
# payments carry idempotency keys, a billing link charges once per link). gunicorn's gthread
# worker closes kept-alive connections from its main loop (those whose keepalive ran out, and
# those a finished request said to close), and on a starved machine that loop can be stalled
# for seconds, so a client can send its next request on a connection that is about to go: in a
# 5-minute run with the machine's load average at 14, 8 requests failed so (6 of them in one
# second on one instance), on connections idle under 2 s. Only such a failure (a connection
# was pooled, no answer came) is resent, once; on a new connection, or twice, it is a failure.
RESENDABLE = re.compile(r"ConnectionResetError|RemoteDisconnected|BrokenPipeError")
_resend_log = open(OUT / "resent.jsonl", "a", buffering=1)  # noqa: SIM115 (the run's length)


class _Resend(Exception):
    """The request failed in a way a browser sends it again (see RESENDABLE)."""


class Fatal(Exception):
    """A request this user's flow can't go on from (already recorded as a failure)."""


class PortalUser(HttpUser):
    abstract = True
    host = INSTANCES[0]
    wait_time = between(0.5, 2.0)

    def url(self, path: str, instance: int | None = None) -> str:
        base = INSTANCES[random.randrange(len(INSTANCES)) if instance is None else instance]
        return base + path

    def call(self, method: str, path: str, kind: str, expect=(200,), ok_4xx=(),
             instance: int | None = None, client=None, **kwargs):
        """One request, named `kind`; 5xx and connection errors fail (and are logged with
        their request id), `ok_4xx` statuses pass and are counted, other 4xx fail. A request
        reset on a kept-alive connection before any answer is sent once more on a new one,
        as browsers do (see RESENDABLE); the resend is counted and logged, not hidden."""
        headers = kwargs.pop("headers", {})
        url = self.url(path, instance)
        client = client or self.client
        for attempt in (1, 2):
            try:
                return self._call_once(client, method, url, kind, expect, ok_4xx, headers,
                                       resend=attempt == 1, **kwargs)
            except _Resend:
                continue
        raise AssertionError("unreachable")

    def _call_once(self, client, method, url, kind, expect, ok_4xx, headers, resend: bool,
                   **kwargs):
        rid = f"lt-{secrets.token_hex(8)}"
        idle = _idle(client, url)
        pooled = _pooled(client, url)
        started = time.time()
        with client.request(method, url, name=kind, headers={"X-Request-ID": rid, **headers},
                            catch_response=True, **kwargs) as response:
            _used(client, url)
            status = response.status_code or 0
            details = {"kind": kind, "method": method, "url": url, "status": status,
                       "request_id": rid, "error": repr(response.error)[:300],
                       "idle_before": idle, "pooled_connections": pooled, "at": started,
                       "seconds": round(time.time() - started, 3)}
            if status in expect:
                response.success()
            elif status == 0 and resend and pooled and RESENDABLE.search(details["error"]):
                # Not reported to Locust (an exception other than its own leaves the with
                # block unrecorded): logged here, and sent again by call().
                _resend_log.write(json.dumps(details) + "\n")
                TALLY["resent after a reset on a kept-alive connection"] += 1
                raise _Resend()
            elif status == 0 or status >= 500:
                error = "connection error" if status == 0 else f"HTTP {status}"
                details["body"] = (response.text or "")[:500]
                _failure_log.write(json.dumps(details) + "\n")
                response.failure(error)
            elif status in ok_4xx:
                TALLY[f"{kind}: {status}"] += 1
                response.success()
            else:
                details["body"] = (response.text or "")[:500]
                _failure_log.write(json.dumps(details) + "\n")
                response.failure(f"HTTP {status} (unexpected)")
            return response

    def page(self, path: str, kind: str, ok_4xx=(), **kwargs):
        response = self.call("GET", path, kind, ok_4xx=ok_4xx, **kwargs)
        if response.url and response.url.split("?")[0].endswith("/login") \
                and not path.startswith("/login"):
            response.failure("signed out")
        return response

    def sign_in(self, email: str) -> None:
        self.email = email
        login = self.page("/login", "sign in (form)")
        token = CSRF_RE.search(login.text or "")
        if token is None:
            raise Fatal("no sign-in form")
        response = self.call("POST", "/login", "sign in", data={
            "email": email, "password": PASSWORD, "csrf_token": token.group(1)})
        if (response.url or "/login").split("?")[0].endswith("/login"):
            response.failure(f"sign-in refused for {email}")
            raise Fatal("sign-in refused")
        # Signing in starts a new session (and CSRF token): the page it lands on has the new
        # one, which every form of this session takes.
        found = CSRF_RE.search(response.text or "") or CSRF_RE.search(
            self.page("/", "home").text or "")
        if found is None:
            raise Fatal("no CSRF token after signing in")
        self.csrf = found.group(1)


# --------------------------------------------------------------- the metering system

class Metering(PortalUser):
    """POST /api/accounts/<id>/usage with the bearer token; retried keys."""

    fixed_count = max(1, USERS * 6 // 50)
    wait_time = between(0.2, 1.0)
    _ids = itertools.count(1)

    def on_start(self):
        self.uid = next(self._ids)
        self.n = 0
        self.recent: deque = deque(maxlen=100)

    def post_usage(self, account: int, key: str, items: dict, kind: str,
                   instance: int | None = None, retry: bool = False):
        response = self.call(
            "POST", f"/api/accounts/{account}/usage", kind, expect=(200, 201),
            instance=instance, json={"idempotency_key": key, "items": items},
            headers={"Authorization": f"Bearer {TOKEN}"})
        status = response.status_code or 0
        record = {"account": account, "key": key, "status": status, "retry": retry,
                  "at": time.time()}
        if status in (200, 201):
            body = response.json()
            record.update(duplicate=body["duplicate"], paid_by=body["paid_by_account_id"],
                          amount=body["amount_cents"], entry=body["entry_id"])
            recharge = body.get("recharge")
            if recharge:
                TALLY[f"recharge started: {recharge['status']}"] += 1
            if status == 201 and body["duplicate"] or status == 200 and not body["duplicate"]:
                response.failure(f"status {status} with duplicate={body['duplicate']}")
            if retry and status == 201:
                TALLY["usage retry debited again"] += 1  # the checks fail the run on this
        _usage_log.write(json.dumps(record) + "\n")
        return status

    def _items(self) -> dict:
        items = {"minutes": random.randint(20, 300)}
        if random.random() < 0.3:
            items["transcriptions"] = random.randint(1, 30)
        if random.random() < 0.1:
            items["enhanced_caller_id"] = random.randint(1, 10)
        return items

    def _key(self) -> str:
        self.n += 1
        return f"lt{self.uid}-{self.n}-{secrets.token_hex(3)}"

    @task(10)
    def new_usage(self):
        account, key, items = random.choice(WORLD["metered"]), self._key(), self._items()
        if self.post_usage(account, key, items, "usage (new key)") == 201:
            self.recent.append((account, key, items))
            if random.random() < 0.15:  # the metering system didn't hear the answer
                self.post_usage(account, key, items, "usage (retried key)", retry=True)

    @task(2)
    def retry_later(self):
        """A key posted earlier, again (perhaps after its account changed billing)."""
        if self.recent:
            account, key, items = random.choice(self.recent)
            self.post_usage(account, key, items, "usage (retried key)", retry=True)

    @task(1)
    def twin_posts(self):
        """The same new key on both instances at the same moment: one debit."""
        account, key, items = random.choice(WORLD["metered"]), self._key(), self._items()
        jobs = [gevent.spawn(self.post_usage, account, key, items, "usage (twin key)", i)
                for i in range(len(INSTANCES))]
        gevent.joinall(jobs)
        statuses = sorted(job.value for job in jobs)
        TALLY[f"usage twins {statuses}"] += 1
        if statuses.count(201) == 1:
            self.recent.append((account, key, items))


# --------------------------------------------------------------- an agency's owner

def _read_link(email: str) -> str | None:
    """The newest billing link emailed to `email` (the outbox table, as a mail reader)."""
    query = ("SELECT text_body FROM outbox WHERE to_address = ? AND kind = 'billing_link' "
             "ORDER BY id DESC LIMIT 1")
    if DB_URL.startswith("sqlite:///"):
        import sqlite3
        from contextlib import closing

        def read():
            # Read only, waiting for a writer's lock (if any) like the portal does.
            uri = "file:" + DB_URL.removeprefix("sqlite:///") + "?mode=ro"
            with closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
                return conn.execute(query, (email,)).fetchone()

        # In a thread: a wait for the lock must not stall every simulated user (gevent).
        row = gevent.get_hub().threadpool.apply(read)
    else:
        import psycopg

        with psycopg.connect(DB_URL) as conn:
            row = conn.execute(query.replace("?", "%s"), (email,)).fetchone()
    if row is None:
        return None
    found = LINK_RE.search(row[0])
    return found.group(1) if found else None


class AgencyOwner(PortalUser):
    """One per load agency: billing-mode switches and the customers' link payments."""

    fixed_count = min(len(WORLD["agencies"]), max(1, USERS * 4 // 50))
    _agencies = itertools.count()

    def on_start(self):
        self.agency = WORLD["agencies"][next(self._agencies) % len(WORLD["agencies"])]
        self.agency_id = self.agency["agency_id"]
        self._subs = f"/accounts/{self.agency_id}/sub-accounts"
        self.sign_in(self.agency["email"])
        self.sent = 0

    def _dialog(self, sub: int):
        response = self.page(f"/accounts/{self.agency_id}/sub-accounts/{sub}/billing",
                             "billing mode (dialog)")
        found = MODE_RE.search(response.text or "")
        return found.group(1) if found else None

    @task(4)
    def switch_billing(self):
        sub = random.choice(self.agency["subs"])
        mode = self._dialog(sub)
        if mode == "customer":
            response = self.call("POST", f"{self._subs}/{sub}/billing/add",
                                 "add to agency billing",
                                 data={"csrf_token": self.csrf, "confirm": "yes"})
            TALLY["add to agency billing: " + (
                "done" if "is on agency billing" in (response.text or "") else "refused")] += 1
        elif mode == "agency":
            self.remove_from_agency_billing(sub)

    def _email_client(self, sub: int, email: str, amount: str):
        response = self.call(
            "POST", f"/accounts/{self.agency_id}/sub-accounts/{sub}/billing/remove",
            "remove from agency billing (email client)",
            data={"csrf_token": self.csrf, "email": email, "amount": amount,
                  "message": "Please set up billing: a card and a starting balance."})
        sent = "a secure link" in (response.text or "")
        TALLY["remove from agency billing: " + ("emailed" if sent else "refused")] += 1
        return sent

    def remove_from_agency_billing(self, sub: int):
        self.sent += 1
        email = f"customer-{sub}-{self.sent}@{'loadtest.test'}"
        amount = f"{random.randint(25, 80)}.00"
        if not self._email_client(sub, email, amount):
            return
        link = _read_link(email)
        if link is None:
            TALLY["billing link not found in the outbox"] += 1
            return
        roll = random.random()
        customer = self.customer_client()
        if roll < 0.1:  # the agency cancels before the customer pays: the link is revoked
            self.call("POST", f"{self._subs}/{sub}/billing/cancel-request",
                      "cancel billing request", data={"csrf_token": self.csrf})
            self.call("GET", link, "billing link (revoked)", expect=(410,), client=customer)
            return
        if roll < 0.2:  # the agency resends: the first link is revoked, the new one works
            self.call("POST", f"/accounts/{self.agency_id}/sub-accounts/{sub}/billing/resend",
                      "resend billing link", data={"csrf_token": self.csrf})
            self.call("GET", link, "billing link (revoked)", expect=(410,), client=customer)
            link = _read_link(email)
        self.pay_link(customer, link, amount, sub)

    def customer_client(self):
        """The customer: no cookies of the agency's (a session of their own)."""
        from locust.clients import HttpSession

        return HttpSession(base_url=self.host, request_event=self.environment.events.request,
                           user=self)

    def pay_link(self, customer, link: str, amount: str, sub: int):
        page = self.call("GET", link, "billing link (page)", ok_4xx=(410,), client=customer)
        if page.status_code != 200:
            return  # a jobs run settled an older timed-out payment meanwhile: link revoked
        csrf = CSRF_RE.search(page.text).group(1)
        roll = random.random()
        cards = [DECLINE, APPROVE] if roll < 0.1 else [TIMEOUT] if roll < 0.25 else [APPROVE]
        for number in cards:
            # Typed into the sandbox's card form (issue 16): the page gets a pm id only.
            entered = self.call(
                "POST", "/sandbox/v1/payment_methods", "sandbox payment method", client=customer,
                data={"type": "card", "card[number]": number, "card[exp_month]": "12",
                      "card[exp_year]": str(date.today().year + 2), "card[cvc]": "123",
                      "billing_details[name]": "Pat Customer"})
            pm = (entered.json() or {}).get("id", "") if entered.status_code == 200 else ""
            response = self.call(
                "POST", link, "billing link (pay)", ok_4xx=(402, 410), client=customer,
                data={"csrf_token": csrf, "amount": amount, "payment_method": pm})
            body = response.text or ""
            outcome = ("declined" if response.status_code == 402 else
                       "revoked" if response.status_code == 410 else
                       "switched" if "now pays its usage from its own balance" in body else
                       "pending" if "Payment processing" in body else
                       "paid, not switched" if "Thank you" in body else "other")
            TALLY[f"billing link payment: {outcome}"] += 1
        if number == TIMEOUT and random.random() < 0.5:
            # While that answer is outstanding the agency sends a newer link: when the jobs
            # learn the first payment succeeded, it is refunded, not switched.
            gevent.sleep(random.uniform(0.5, 3))
            if self._dialog(sub) == "agency":
                self.remove_from_agency_billing(sub)

    @task(3)
    def agency_pages(self):
        a = self.agency_id
        self.page(f"/accounts/{a}/sub-accounts", "accounts list")
        self.page(f"/accounts/{a}/sub-accounts?status={random.choice(['all', 'canceled'])}"
                  f"&q=Sub", "accounts list (filter)", headers={"HX-Request": "true"})
        self.page(f"/accounts/{a}/", "account settings")
        self.page(f"/accounts/{a}/billing/", "billing settings")
        self.page(f"/accounts/{a}/history/?subs=1", "change history (with sub-accounts)")
        sub = random.choice(self.agency["subs"])
        self.page(f"/accounts/{sub}/", "account settings")
        self.page(f"/accounts/{sub}/calls/", "call history")


# --------------------------------------------------------------- everyone else

def _pages(account: int) -> list[tuple[str, str]]:
    """(path, kind) of the signed-in pages every admin reads."""
    today = date.today()
    start = (today - timedelta(days=random.randint(1, 60))).isoformat()
    return [
        (f"/accounts/{account}/", "account settings"),
        (f"/accounts/{account}/calls/", "call history"),
        (f"/accounts/{account}/calls/?from={start}&to={today}&page=2", "call history (filter)"),
        (f"/accounts/{account}/history/", "change history"),
        (f"/accounts/{account}/history/?type=payment_method&from={start}",
         "change history (filter)"),
        (f"/accounts/{account}/numbers/", "numbers"),
        (f"/accounts/{account}/numbers/released", "released numbers"),
        ("/security/", "security"),
        (f"/accounts/{account}/security/", "account security"),
        (f"/accounts/{account}/agent-statuses/", "agent statuses"),
        (f"/accounts/{account}/presets", "presets"),
        (f"/accounts/{account}/tracking-sources", "tracking sources"),
        (f"/accounts/{account}/call-queues", "call queues"),
        (f"/accounts/{account}/plan/", "plan"),
        (f"/accounts/{account}/privacy/", "gdpr tools"),
        (f"/accounts/{account}/support/", "support"),
        ("/switch", "account switcher"),
    ]


class AccountAdmin(PortalUser):
    """A signed-in person reading pages, paying, downloading PDFs."""

    weight = 1
    _personas = itertools.count()

    def on_start(self):
        personas = WORLD["personas"]
        self.persona = personas[next(self._personas) % len(personas)]
        self.account = self.persona["account_id"]
        self.kind = self.persona["kind"]
        self.sign_in(self.persona["email"])

    @property
    def may_switch(self) -> bool:
        """A sub-account's billing can change under it (its billing pages then say 403)."""
        return self.kind == "sub"

    @task(6)
    def read_pages(self):
        for path, kind in random.sample(_pages(self.account), 5):
            # Configure pages are for owners and admins (a plain user gets 403).
            self.page(path, kind, ok_4xx=(403,) if self.kind == "user" else ())

    @task(4)
    def billing_pages(self):
        if self.kind == "user":
            return
        a = self.account
        ok = (403,) if self.may_switch else ()
        page = self.page(f"/accounts/{a}/billing/", "billing settings")
        if "form_key" not in (page.text or ""):
            TALLY["billing pages skipped: agency-billed"] += 1
            return
        self.page(f"/accounts/{a}/billing/payments", "payment history", ok_4xx=ok,
                  headers={"HX-Request": "true"})
        kind = random.choice(["usage", "recharge", "payment", "transfer_in", ""])
        start = (date.today() - timedelta(days=random.randint(0, 40))).isoformat()
        self.page(f"/accounts/{a}/billing/logs?kind={kind}&from={start}&q=", "billing logs",
                  ok_4xx=ok, headers={"HX-Request": "true"})
        if random.random() < 0.3:
            self.page(f"/accounts/{a}/billing/logs?q=Usage&page=2", "billing logs (search)",
                      ok_4xx=ok)
        if random.random() < 0.15:
            self.page(f"/accounts/{a}/billing/logs.csv?kind=usage", "billing logs (csv)",
                      ok_4xx=ok)
        self.page(f"/accounts/{a}/billing/statements", "statements (dialog)", ok_4xx=ok)
        receipts = RECEIPT_RE.findall(page.text or "")
        if receipts:
            self.page(f"/accounts/{a}/billing/payments/{random.choice(receipts)}", "receipt",
                      ok_4xx=(404,) + ok)

    @task(2)
    def pay(self):
        if self.kind == "user":
            return
        a = self.account
        page = self.page(f"/accounts/{a}/billing/", "billing settings")
        text = page.text or ""
        form_key, methods = FORM_KEY_RE.search(text), PAY_METHOD_RE.search(text)
        options = OPTION_RE.findall(methods.group(1)) if methods else []
        if form_key is None or not options:
            TALLY["payment skipped: agency-billed"] += 1
            return
        data = {"csrf_token": CSRF_RE.search(text).group(1), "form_key": form_key.group(1),
                "method": random.choice(options), "amount": f"{random.randint(25, 90)}.00"}
        twice = random.random() < 0.15  # a double submit: one charge
        # A sub-account's billing can change between the page and the post: on agency billing
        # it can't pay (403); put back on customer billing meanwhile, its cards were removed
        # and the chosen one is no longer one of its methods (422).
        switch_4xx = (403, 422) if self.may_switch else ()
        for attempt in range(2 if twice else 1):
            response = self.call("POST", f"/accounts/{a}/billing/payments",
                                 "make a payment" + (" (again)" if attempt else ""),
                                 ok_4xx=(402,) + switch_4xx, data=data)
            body = response.text or ""
            TALLY["make a payment: " + (
                "declined" if response.status_code == 402 else
                "refused (agency-billed)" if response.status_code == 403 else
                "refused (method removed)" if response.status_code == 422 else
                "charged" if "Thank you:" in body else
                "pending" if "is pending" in body else "other")] += 1

    @task(1)
    def pdfs(self):
        if self.kind == "user":
            return
        a = self.account
        ok = (403,) if self.may_switch else ()
        history = self.page(f"/accounts/{a}/billing/payments", "payment history", ok_4xx=ok,
                            headers={"HX-Request": "true"})
        today = date.today()
        start = today.replace(day=1) if today.day > 1 else today - timedelta(days=30)
        self.call("GET", f"/accounts/{a}/billing/statements.pdf?from={start}&to={today}",
                  "statement pdf", ok_4xx=ok)
        receipts = RECEIPT_RE.findall(history.text or "") if history.status_code == 200 else []
        if receipts:
            self.call("GET", f"/accounts/{a}/billing/payments/{random.choice(receipts)}.pdf",
                      "receipt pdf", ok_4xx=(404,) + ok)
