"""Benchmark usage ingestion: POST /api/accounts/<id>/usage with auto recharge on and off.

    .venv/bin/python bench/usage_ingest.py [--postings 1000] [--threads 8] [--repeat 3]
                                           [--threshold 50] [--amount 200] [--show-sql]

Builds a throwaway database (a temporary SQLite file, or DATABASE_URL when set). For every
run, a fresh standalone account with an owner (who receives the receipts) and a Primary
card saved through the sandbox gateway (the sandbox's test helper types it into its form,
payment_methods.add saves the pm_sbx_ id it gives, as New Credit Card does), then
--postings usage postings through the JSON endpoint (Authorization: Bearer <token>, a new
idempotency key each), through the Flask test client:

  ON   auto recharge on (below --threshold dollars, recharge to --amount): the postings that
       take the balance below the threshold charge the card in the same request
  OFF  the baseline: the same account and postings with auto recharge off (an opening
       balance large enough that it never runs out)

each sequentially and from --threads threads at once (a test client per thread). Every
posting is the same batch (so the number of recharges the rules predict does not depend on
the order the threads run in): the prediction replays the rules (debit; below the threshold,
recharge by the recharge amount minus the balance). Afterwards each account is checked:

  count  the recharges made and the final balance against the prediction. Exact when each
         posting's recharge reads the balance its own debit left; under concurrency a
         recharge that reads a balance other postings' debits have already lowered is
         bigger, and a posting that finds a recharge still pending starts none: later,
         larger (sometimes fewer) recharges. PASS/FAIL for the sequential runs; for the
         threaded runs the difference is reported (DIFF), not judged
  money  every posting recorded once (no failed request), every recharge needed (credited
         below the threshold), never leaving the balance above the recharge amount, charged
         once (one sandbox charge each, none pending or failed), credited once, with its
         receipt; the cached balance equal to the ledger's sum (`ledger.check`) and every
         entry's balance_after equal to the running sum

Postings/s is successful postings / wall time (the median over --repeat runs, the modes
interleaved); SQL statements per posting are counted with a "before_cursor_execute"
listener in the sequential runs. The issue sets no throughput target: the ON/OFF ratio is
reported, PASS/FAIL lines are for the checks. Exits 0.
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_list import QueryCounter, database_url  # noqa: E402
from sqlalchemy import func, inspect, select  # noqa: E402

from portal import create_app, rules  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountKind,
    BillingMode,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    Membership,
    OutboxMessage,
    Role,
    SandboxCharge,
    User,
)
from portal.sandbox import testing  # noqa: E402
from portal.services import billing, ledger, payment_methods, usage  # noqa: E402
from portal.services.gateway import SandboxGateway  # noqa: E402
from portal.services.money import dollars  # noqa: E402

TOKEN = "bench-usage-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# One metering batch: 2 hours of calls, half an hour transcribed, two caller ID lookups.
ITEMS = {"minutes": 120, "transcriptions": 30, "enhanced_caller_id": 2}
PRICE = usage.price(ITEMS)


@dataclass
class Run:
    mode: str  # "ON" or "OFF"
    threads: int
    postings: int
    account_id: int = 0
    opening: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    recharge_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    recharge_statements: list[int] = field(default_factory=list)
    checks: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Postings that succeeded, per second."""
        return len(self.latencies) / self.seconds

    @property
    def label(self) -> str:
        how = "sequential" if self.threads == 1 else f"{self.threads} threads"
        return f"recharge {self.mode:<3} {how}"


def predict(opening: int, postings: int, threshold: int | None, amount: int | None
            ) -> tuple[int, int, int]:
    """(recharges, recharged cents, final balance) by the rules: usage.post debits, then
    charges.start_recharge asks for billing.recharge_needed, which a successful charge
    credits."""
    balance, count, total = opening, 0, 0
    for _ in range(postings):
        balance -= PRICE
        needed = min(billing.recharge_needed(balance, threshold, amount), rules.MAX_CHARGE_CENTS)
        if needed > 0:
            count += 1
            total += needed
            balance += needed
    return count, total, balance


# --------------------------------------------------------------------------- setup

def new_account(app, label: str, recharge: bool, opening: int, threshold: int, amount: int,
                password_hash: str) -> int:
    with app.app_context():
        session = db.session
        owner = User(email=f"owner-{label}@bench.test", name=f"Owner {label}",
                     password_hash=password_hash)
        account = Account(name=f"Bench Usage {label}", kind=AccountKind.STANDALONE,
                          plan="Pro", billing_mode=BillingMode.CUSTOMER)
        session.add_all([owner, account])
        session.flush()
        session.add(Membership(user_id=owner.id, account_id=account.id, role=Role.OWNER))
        # The sandbox writes through its own connection (the processor's host), which on
        # SQLite waits for this session's open writes: commit before the card is entered.
        session.commit()
        entered = testing.paying_card("4242424242424242", holder=f"Owner {label}")
        payment_methods.add(session, account, SandboxGateway(), entered, "card")
        if recharge:
            settings = billing.set_auto_recharge(session, account, f"{threshold / 100:.2f}",
                                                 f"{amount / 100:.2f}")
            # Issue 17's guardrail (at most 5 recharges a UTC day by default) is not what
            # this measures: every recharge the rules call for is made (as predict() says).
            settings.recharge_daily_limit = 10**6
        ledger.post(session, account, LedgerKind.PAYMENT, opening, "Opening balance",
                    f"bench-opening:{label}", Cause.USER)
        session.commit()
        account_id = account.id
        db.session.remove()
    return account_id


# --------------------------------------------------------------------------- posting

def post_all(app, run: Run, label: str, engine, count_sql: bool) -> None:
    """run.postings postings over run.threads threads (a test client each)."""
    url = f"/api/accounts/{run.account_id}/usage"
    lock = threading.Lock()
    barrier = threading.Barrier(run.threads + 1)
    counter = QueryCounter(engine) if count_sql else None

    def worker(offset: int) -> None:
        client = app.test_client()
        latencies, recharges, errors, statements, recharge_statements = [], [], [], [], []
        barrier.wait()
        for i in range(offset, run.postings, run.threads):
            body = {"idempotency_key": f"{label}-{i:07d}", "items": ITEMS}
            if counter is not None:
                counter.reset()
            started = time.perf_counter()
            try:
                response = client.post(url, json=body, headers=AUTH)
            except Exception as e:  # TESTING propagates exceptions: count them, go on
                errors.append(f"#{i}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            elapsed = time.perf_counter() - started
            n_sql = len(counter.statements) if counter is not None else 0
            if response.status_code != 201:
                errors.append(f"#{i}: HTTP {response.status_code} "
                              f"{response.get_data(as_text=True)[:200]}")
                continue
            answer = response.get_json()
            latencies.append(elapsed)
            if answer["recharge"] is not None:
                recharges.append(elapsed)
                if answer["recharge"]["status"] != "succeeded":
                    errors.append(f"#{i}: recharge {json.dumps(answer['recharge'])}")
                recharge_statements.append(n_sql)
            else:
                statements.append(n_sql)
        with lock:
            run.latencies += latencies
            run.recharge_latencies += recharges
            run.errors += errors
            run.statements += statements
            run.recharge_statements += recharge_statements

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(run.threads)]
    for thread in threads:
        thread.start()
    if counter is not None:
        counter.__enter__()
    try:
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        run.seconds = time.perf_counter() - started
    finally:
        if counter is not None:
            counter.__exit__(None, None, None)


def verify(app, run: Run, threshold: int | None, amount: int | None) -> None:
    """What the account's records say, against the rules' prediction."""
    predicted, predicted_cents, predicted_balance = predict(run.opening, run.postings,
                                                            threshold, amount)
    with app.app_context():
        s = db.session
        account_id = run.account_id
        charges = s.execute(
            select(Charge.status, func.count(), func.coalesce(func.sum(Charge.amount_cents), 0))
            .where(Charge.account_id == account_id, Charge.purpose == ChargePurpose.RECHARGE)
            .group_by(Charge.status)).all()
        by_status = {status: (int(n), int(cents)) for status, n, cents in charges}  # PG: Decimal
        keys = select(Charge.idempotency_key).where(Charge.account_id == account_id)
        sandbox = s.scalar(select(func.count()).select_from(SandboxCharge)
                           .where(SandboxCharge.idempotency_key.in_(keys)))
        kinds = dict(s.execute(
            select(LedgerEntry.kind, func.count()).where(LedgerEntry.account_id == account_id)
            .group_by(LedgerEntry.kind)).all())
        receipts = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.account_id == account_id, OutboxMessage.kind == "receipt"))
        balance = s.scalar(select(Account.balance_cents).where(Account.id == account_id))
        mismatches = [m for m in ledger.check(s) if m.account_id == account_id]
        chain_breaks, running, unneeded, over, low = 0, 0, 0, 0, 0
        for kind, amount_cents, after in s.execute(
                select(LedgerEntry.kind, LedgerEntry.amount_cents,
                       LedgerEntry.balance_after_cents)
                .where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id)):
            running += amount_cents
            chain_breaks += running != after
            if kind == LedgerKind.RECHARGE:
                unneeded += threshold is None or after - amount_cents >= threshold
                over += amount is None or after > amount
            low = threshold is not None and after < threshold
        db.session.remove()
    succeeded = by_status.get(ChargeStatus.SUCCEEDED, (0, 0))
    made = sum(n for n, _ in by_status.values())
    run.checks = {
        "predicted": predicted, "made": made, "succeeded": succeeded[0],
        "recharged": succeeded[1], "predicted_cents": predicted_cents,
        "pending": by_status.get(ChargeStatus.PENDING, (0, 0))[0],
        "failed": by_status.get(ChargeStatus.FAILED, (0, 0))[0],
        "sandbox": sandbox, "credits": kinds.get(LedgerKind.RECHARGE, 0),
        "usage": kinds.get(LedgerKind.USAGE, 0), "receipts": receipts,
        "balance": balance, "predicted_balance": predicted_balance,
        "mismatches": mismatches, "chain_breaks": chain_breaks,
        "unneeded": unneeded, "over": over, "ends_low": low,
    }


def count_ok(run: Run) -> list[str]:
    """The recharge count and final balance against the rules' prediction."""
    c = run.checks
    failed = []
    if c["made"] != c["predicted"]:
        failed.append(f"{c['made']} recharges, the rules predict {c['predicted']}")
    if c["balance"] != c["predicted_balance"]:
        failed.append(f"balance {dollars(c['balance'])}, predicted "
                      f"{dollars(c['predicted_balance'])}")
    return failed


def money_ok(run: Run) -> list[str]:
    """Every posting recorded once, every recharge needed, charged once, credited once, with
    its receipt, never above the recharge amount; the ledger balances."""
    c = run.checks
    failed = []
    if run.errors:
        failed.append(f"{len(run.errors)} postings failed (first: {run.errors[0]})")
    if c["usage"] != run.postings:
        failed.append(f"{c['usage']} usage entries for {run.postings} postings")
    if c["pending"] or c["failed"]:
        failed.append(f"{c['pending']} pending, {c['failed']} failed recharges")
    if c["sandbox"] != c["made"] or c["credits"] != c["succeeded"]:
        failed.append(f"{c['sandbox']} sandbox charges and {c['credits']} ledger credits for "
                      f"{c['made']} charges")
    if c["receipts"] != c["succeeded"]:
        failed.append(f"{c['receipts']} receipts for {c['succeeded']} recharges")
    if c["mismatches"] or c["chain_breaks"]:
        failed.append(f"ledger: {c['mismatches']} mismatches, {c['chain_breaks']} entries whose "
                      "balance_after is not the running sum")
    if c["unneeded"] or c["over"]:
        failed.append(f"{c['unneeded']} recharges credited at or above the threshold, "
                      f"{c['over']} leaving the balance above the recharge amount")
    if c["ends_low"]:
        failed.append("the balance ends below the threshold with no recharge")
    return failed


def run_ok(run: Run) -> list[str]:
    return money_ok(run) + count_ok(run)


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postings", "--rows", type=int, default=1000,
                        help="usage postings per run")
    parser.add_argument("--threads", type=int, default=8, help="threads of the threaded runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode")
    parser.add_argument("--threshold", type=float, default=50.0,
                        help="auto recharge threshold, dollars")
    parser.add_argument("--amount", type=float, default=200.0,
                        help="auto recharge amount, dollars")
    parser.add_argument("--show-sql", action="store_true",
                        help="print the SQL of one posting without and one with a recharge")
    args = parser.parse_args()
    threshold, amount = round(args.threshold * 100), round(args.amount * 100)
    if not 0 < threshold < amount <= rules.MAX_CHARGE_CENTS:
        parser.error("need 0 < --threshold < --amount <= 10000")
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-usage-") as tmpdir:
        url, temporary = database_url(tmpdir)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                          "SECRET_KEY": "bench-secret", "USAGE_API_TOKEN": TOKEN})
        with app.app_context():
            engine = db.engine
            created_schema = not inspect(engine).has_table("accounts")
            if not temporary and not created_schema:
                if db.session.scalar(select(func.count()).select_from(Account)):
                    print(f"DATABASE_URL {engine.url!r} already holds accounts; "
                          "point it at an empty database.")
                    return 2
            db.create_all()
            db.session.remove()
        try:
            return run_all(app, engine, args, threshold, amount, started)
        finally:
            with app.app_context():
                if temporary or created_schema:
                    db.drop_all()
                else:
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def run_all(app, engine, args, threshold: int, amount: int, started: float) -> int:
    from portal.services.auth import hash_password

    password_hash = hash_password("bench horse battery staple")
    modes = [("ON", 1), ("OFF", 1), ("ON", args.threads), ("OFF", args.threads)]
    runs: dict[tuple[str, int], list[Run]] = {m: [] for m in modes}

    print("Usage ingestion benchmark")
    print(f"  database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name})")
    predicted = predict(amount, args.postings, threshold, amount)
    print(f"  {args.postings:,} postings per run of {json.dumps(ITEMS)} = {dollars(PRICE)} each; "
          f"auto recharge below {dollars(threshold)} to {dollars(amount)} (ON, opening balance "
          f"{dollars(amount)}: the rules predict {predicted[0]} recharges, one every "
          f"~{args.postings / max(1, predicted[0]):.1f} postings); OFF opens with enough")
    print(f"  {args.repeat} run(s) of each mode, interleaved; sequential runs count the SQL")

    # Warm-up: one short run of each mode (first requests, compiled statements, templates).
    for mode, threads in modes:
        warm = Run(mode, threads, min(50, args.postings))
        warm.opening = amount if mode == "ON" else PRICE * warm.postings + amount
        warm.account_id = new_account(app, f"warm-{mode}-{threads}", mode == "ON",
                                      warm.opening, threshold, amount, password_hash)
        post_all(app, warm, f"warm-{mode}-{threads}", engine, count_sql=False)

    order = list(modes)
    shuffle = random.Random(11).shuffle
    for r in range(args.repeat):
        shuffle(order)
        for mode, threads in order:
            label = f"r{r}-{mode}-{threads}"
            run = Run(mode, threads, args.postings)
            run.opening = amount if mode == "ON" else PRICE * args.postings + amount
            run.account_id = new_account(app, label, mode == "ON", run.opening, threshold,
                                         amount, password_hash)
            post_all(app, run, label, engine, count_sql=threads == 1)
            verify(app, run, threshold if mode == "ON" else None,
                   amount if mode == "ON" else None)
            runs[(mode, threads)].append(run)

    if args.show_sql:
        show_sql(app, engine, threshold, amount, password_hash)

    print("\nThroughput (median of the runs; latency over all postings of all runs)")
    header = (f"  {'mode':<26} {'postings/s':>10} {'runs':>16} {'median':>8} {'p99':>8} "
              f"{'recharge req':>12} {'SQL/posting':>11} {'SQL/recharge':>12}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    rate = {}
    for key in modes:
        rs = runs[key]
        rate[key] = statistics.median(r.rate for r in rs)
        lat = sorted(x for r in rs for x in r.latencies)
        rl = [x for r in rs for x in r.recharge_latencies]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0
        sql = [x for r in rs for x in r.statements]
        rsql = [x for r in rs for x in r.recharge_statements]
        print(f"  {rs[0].label:<26} {rate[key]:>10,.0f} "
              f"{'/'.join(f'{r.rate:,.0f}' for r in rs):>16} "
              f"{statistics.median(lat) * 1000 if lat else 0:>6.2f}ms {p99:>6.2f}ms "
              f"{(f'{statistics.median(rl) * 1000:.2f}ms' if rl else '-'):>12} "
              f"{(_spread(sql) if sql else '-'):>11} {(_spread(rsql) if rsql else '-'):>12}")

    print("\nRecharges and records (per run: made / predicted; checks)")
    failures = 0
    for key in modes:
        for run in runs[key]:
            c = run.checks
            problems = money_ok(run)
            differs = count_ok(run)
            if run.threads == 1:
                problems += differs
            failures += bool(problems)
            note = "; ".join(problems) if problems else "all checks pass"
            if differs and run.threads > 1:
                note += " (count/balance differ from the sequential prediction: see below)"
            print(f"  {run.label:<26} account {run.account_id:>3}: {c['made']:>4} / "
                  f"{c['predicted']:<4} recharges, {dollars(c['recharged'])} recharged, "
                  f"balance {dollars(c['balance'])}, {c['receipts']} receipts; "
                  + ("PROBLEMS: " if problems else "") + note)

    seq = rate[("OFF", 1)] / rate[("ON", 1)]
    par = rate[("OFF", args.threads)] / rate[("ON", args.threads)]
    print(f"\nSummary ({args.postings:,} postings per run, {args.repeat} run(s) per mode, "
          f"{engine.dialect.name})")
    print(f"info: sequential: ON {rate[('ON', 1)]:,.0f} postings/s, OFF {rate[('OFF', 1)]:,.0f} "
          f"postings/s: recharge ON costs {seq:.2f}x (OFF/ON throughput; no target in the issue)")
    print(f"info: {args.threads} threads: ON {rate[('ON', args.threads)]:,.0f} postings/s, OFF "
          f"{rate[('OFF', args.threads)]:,.0f} postings/s: {par:.2f}x; threads vs sequential: "
          f"ON {rate[('ON', args.threads)] / rate[('ON', 1)]:.2f}x, OFF "
          f"{rate[('OFF', args.threads)] / rate[('OFF', 1)]:.2f}x")
    for key in modes:
        rs = runs[key]
        made = [r.checks["made"] for r in rs]
        predicted_counts = [r.checks["predicted"] for r in rs]
        ok = all(not count_ok(r) for r in rs)
        verdict = ("PASS" if ok else "FAIL") if key[1] == 1 else ("info" if ok else "DIFF")
        print(f"{verdict}: {rs[0].label}: recharges made "
              f"{'/'.join(map(str, made))} vs predicted {'/'.join(map(str, predicted_counts))}"
              ", final balance " + "/".join(dollars(r.checks["balance"]) for r in rs) + (
                  "" if ok else " vs predicted " + "/".join(
                      dollars(r.checks["predicted_balance"]) for r in rs)))
    if any(count_ok(r) for key in modes if key[1] > 1 for r in runs[key]):
        print("      DIFF (no verdict): with concurrent postings a posting that finds a recharge "
              "still pending starts none, and a recharge reads the balance when it starts: "
              "when postings land between the debit that crossed the threshold and the "
              "recharge's start or credit, the recharges come later and larger than the "
              "sequential replay says (the money checks below still hold)")
    for key in modes:
        rs = runs[key]
        ok = all(not money_ok(r) for r in rs)
        print(f"{'PASS' if ok else 'FAIL'}: {rs[0].label}: "
              f"{sum(len(r.errors) for r in rs)} failed postings; every posting recorded once; "
              "every recharge needed, charged and credited once, with its receipt, never above "
              "the recharge amount; ledger.check and balance_after chain consistent"
              + ("" if ok else " -- see PROBLEMS above"))
    print(f"\n{'ALL CHECKS PASS' if not failures else f'{failures} RUN(S) WITH PROBLEMS'} "
          f"(total run {time.perf_counter() - started:.1f}s; exit code 0: this is a report)")
    return 0


def show_sql(app, engine, threshold: int, amount: int, password_hash: str) -> None:
    """The statements of a posting that stays above the threshold and of one that recharges."""
    account_id = new_account(app, "sql", True, threshold + PRICE + 1, threshold, amount,
                             password_hash)
    client = app.test_client()
    url = f"/api/accounts/{account_id}/usage"
    for i, what in enumerate(("stays above the threshold", "goes below it: recharge")):
        with QueryCounter(engine) as counter:
            response = client.post(url, json={"idempotency_key": f"sql-{i}", "items": ITEMS},
                                   headers=AUTH)
        print(f"\nSQL of a posting that {what} (HTTP {response.status_code}, "
              f"{len(counter.statements)} statements):")
        for k, statement in enumerate(counter.statements, 1):
            print(f"  {k}. " + " ".join(statement.split())[:160])


def _spread(values: list[int]) -> str:
    lo, hi, mid = min(values), max(values), statistics.median(values)
    return f"{mid:g}" if lo == hi else f"{mid:g} ({lo}-{hi})"


if __name__ == "__main__":
    sys.exit(main())
