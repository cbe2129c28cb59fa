"""The load test's money checks, against the database the two instances used (DATABASE_URL).

    python bench/loadtest_checks.py [--drain] [--usage-log usage.jsonl]
                                    [--deliveries deliveries.jsonl]

--drain first does what later runs of `flask jobs run` would: asks the processor again about
every charge and refund still pending and delivers the mail still queued, with the clock
moved past every retry backoff and mail lease (the load stopped with some answers
outstanding: a timed-out card is settled by the jobs a minute later at the earliest). Then:

- ledger: every cached balance equals the sum of its entries (`ledger.check`, what `flask
  ledger check` runs), and every entry's balance_after is the running sum of its ledger;
- usage: each usage idempotency key debited once across all ledgers; each key the load test
  posted (usage.jsonl: new, retried, twins) answered 201 at most once and is on exactly one
  ledger, for the amount the API answered, on the metered account's ledger or, naming it, on
  its agency's;
- charges: each charge's key once at the processor (sandbox_charges), with the charge's
  amount and outcome; each succeeded charge credited exactly once (`charge:<id>`, on any
  ledger) or refunded; no failed charge credited or taken by the processor; none left
  pending; no processor charge without its charge on record;
- refunds: each refund once at the processor, as recorded, never more than the charge;
- outbox: no two messages with one dedupe key; a receipt for every succeeded charge; one
  email per billing link; nothing left queued or failed; with --deliveries (the SMTP sink's
  log), each sent message delivered exactly once and nothing delivered that isn't sent;
- sub-accounts: none on agency billing with a balance of its own or billing paused.

Prints one PASS/FAIL line per check (with the figures) and exits 1 on any violation.
"""

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text  # noqa: E402

from portal import create_app  # noqa: E402
from portal.clock import now as clock_now  # noqa: E402
from portal.extensions import db, payment_gateway  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountStatus,
    BillingMode,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    Refund,
    RefundStatus,
    SandboxCharge,
    SandboxRefund,
)
from portal.models.mail import MailStatus  # noqa: E402

MESSAGE_ID_RE = re.compile(r"<outbox-(\d+)\.")


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, name: str, problems: list[str], figures: str) -> None:
        self.failures += bool(problems)
        print(f"{'PASS' if not problems else 'FAIL'} {name}: {figures}")
        for problem in problems[:20]:
            print(f"     - {problem}")
        if len(problems) > 20:
            print(f"     - ... and {len(problems) - 20} more")


def drain(app) -> None:
    """What the jobs would do later: every pending charge and refund asked again, all mail
    delivered, with the clock past every backoff and lease. Rounds until nothing is left."""
    from portal.mail import delivery
    from portal.services import charges, refunds

    session = db.session
    done = Counter()
    for hours in range(2, 20, 2):
        later = clock_now() + timedelta(hours=hours)
        done["charges"] += len(charges.retry_pending(session, payment_gateway(), later))
        done["refunds"] += len(refunds.retry_pending(session, payment_gateway(), later))
        config = delivery.MailConfig.from_app(app.config)
        if config is not None:
            done["mail"] += delivery.deliver(session, config, later).sent
        session.commit()
        pending = (session.scalar(select(func.count()).select_from(Charge)
                                  .where(Charge.status == ChargeStatus.PENDING))
                   + session.scalar(select(func.count()).select_from(Refund)
                                    .where(Refund.status == RefundStatus.PENDING))
                   + (session.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.status == MailStatus.PENDING))
                      if config is not None else 0))
        if not pending:
            break
    print(f"drain: {done['charges']} charge(s) and {done['refunds']} refund(s) asked again, "
          f"{done['mail']} message(s) delivered")


def check_ledger(session, report: Report) -> None:
    from portal.services import ledger

    mismatches = ledger.check(session)
    broken = session.execute(text(
        "SELECT account_id, id, balance_after_cents, running FROM ("
        " SELECT account_id, id, balance_after_cents,"
        "  SUM(amount_cents) OVER (PARTITION BY account_id ORDER BY id) AS running"
        " FROM ledger_entries) AS t WHERE balance_after_cents != running")).all()
    entries = session.scalar(select(func.count()).select_from(LedgerEntry))
    accounts = session.scalar(select(func.count()).select_from(Account))
    report.check("ledger", [f"account {m.account_id}: cached {m.cached_cents}, ledger "
                            f"{m.ledger_cents}" for m in mismatches]
                 + [f"account {a}: entry {e} says balance {b}, running sum {r}"
                    for a, e, b, r in broken],
                 f"{accounts} accounts, {entries:,} entries; cached balances = sums, "
                 "balance_after = running sums")


def check_usage(session, report: Report, usage_log: Path | None) -> None:
    doubled = session.execute(
        select(LedgerEntry.idempotency_key, func.count())
        .where(LedgerEntry.kind == LedgerKind.USAGE)
        .group_by(LedgerEntry.idempotency_key).having(func.count() > 1)).all()
    total = session.scalar(select(func.count()).select_from(LedgerEntry)
                           .where(LedgerEntry.kind == LedgerKind.USAGE))
    problems = [f"usage key {key} debited {n} times" for key, n in doubled]
    figures = f"{total:,} usage entries, each key once"
    if usage_log is not None and usage_log.exists():
        posts = [json.loads(line) for line in usage_log.read_text().splitlines() if line]
        by_key = defaultdict(list)
        for post in posts:
            by_key[(post["account"], post["key"])].append(post)
        keys = [f"usage:{account}:{key}" for account, key in by_key]
        entries = {}
        for chunk in range(0, len(keys), 1000):
            for entry in session.scalars(select(LedgerEntry).where(
                    LedgerEntry.kind == LedgerKind.USAGE,
                    LedgerEntry.idempotency_key.in_(keys[chunk:chunk + 1000]))):
                entries[entry.idempotency_key] = entry
        parents = dict(session.execute(select(Account.id, Account.parent_id)).all())
        statuses = Counter(post["status"] for post in posts)
        retried = sum(1 for p in posts if p["retry"])
        for (account, key), answers in by_key.items():
            created = [a for a in answers if a["status"] == 201]
            answered = [a for a in answers if a["status"] in (200, 201)]
            entry = entries.get(f"usage:{account}:{key}")
            if len(created) > 1:
                problems.append(f"{account}/{key}: 201 Created {len(created)} times")
            if answered and entry is None:
                problems.append(f"{account}/{key}: answered {answered[0]['status']} but no "
                                "ledger entry")
            if entry is None:
                continue
            if any(-a["amount"] != entry.amount_cents for a in answered):
                problems.append(f"{account}/{key}: answered amounts "
                                f"{[a['amount'] for a in answered]}, ledger "
                                f"{entry.amount_cents}")
            if entry.account_id != account and not (
                    entry.for_account_id == account and entry.account_id == parents[account]):
                problems.append(f"{account}/{key}: debited from account {entry.account_id} "
                                f"(for {entry.for_account_id})")
        figures += (f"; the load test's {len(posts):,} postings ({retried:,} retries) of "
                    f"{len(by_key):,} keys: {dict(sorted(statuses.items()))}, each key on "
                    "one ledger (its account's or, naming it, its agency's)")
    report.check("usage keys", problems, figures)


def check_charges(session, report: Report) -> None:
    charges = list(session.scalars(select(Charge).order_by(Charge.id)))
    sandbox = {s.idempotency_key: s for s in session.scalars(select(SandboxCharge))}
    credits = Counter()
    credit_amounts = {}
    for key, amount in session.execute(
            select(LedgerEntry.idempotency_key, LedgerEntry.amount_cents)
            .where(LedgerEntry.idempotency_key.like("charge:%"))):
        credits[key] += 1
        credit_amounts[key] = amount
    refunds = defaultdict(list)
    for refund in session.scalars(select(Refund)):
        refunds[refund.charge_id].append(refund)
    refund_debits = {key for (key,) in session.execute(
        select(LedgerEntry.idempotency_key).where(LedgerEntry.kind == LedgerKind.REFUND))}
    problems = []
    counts = Counter()
    keys = Counter(c.idempotency_key for c in charges)
    problems += [f"charge key {k} recorded {n} times" for k, n in keys.items() if n > 1]
    for charge in charges:
        seeded = charge.idempotency_key.startswith("demo-")  # the demo's history, no processor
        counts[("seeded" if seeded else charge.purpose.value, charge.status.value)] += 1
        at_processor = sandbox.get(charge.idempotency_key)
        key = f"charge:{charge.id}"
        name = f"charge {charge.id} ({charge.purpose.value}, {charge.status.value})"
        if charge.status == ChargeStatus.PENDING:
            problems.append(f"{name}: still pending")
        elif charge.status == ChargeStatus.SUCCEEDED:
            if not seeded and (at_processor is None or not at_processor.succeeded):
                problems.append(f"{name}: no successful charge at the processor")
            elif not seeded and (at_processor.amount_cents != charge.amount_cents
                                 or at_processor.reference != charge.gateway_reference):
                problems.append(f"{name}: the processor charged {at_processor.amount_cents} "
                                f"({at_processor.reference}), recorded {charge.amount_cents} "
                                f"({charge.gateway_reference})")
            its_refunds = refunds.get(charge.id, [])
            if len(its_refunds) > 1:
                problems.append(f"{name}: {len(its_refunds)} refunds")
            if not its_refunds:
                if credits[key] != 1:
                    problems.append(f"{name}: credited {credits[key]} times")
                elif credit_amounts[key] != charge.amount_cents:
                    problems.append(f"{name}: credited {credit_amounts[key]}, charged "
                                    f"{charge.amount_cents}")
            else:
                refund = its_refunds[0]
                counts[("refunded", refund.status.value)] += 1
                if credits[key] > 1:
                    problems.append(f"{name}: credited {credits[key]} times and refunded")
                if credits[key] == 1 and f"refund:{refund.id}" not in refund_debits:
                    problems.append(f"{name}: credited and refunded, the refund not debited")
        else:  # failed
            if credits[key]:
                problems.append(f"{name}: credited {credits[key]} times")
            if at_processor is not None and at_processor.succeeded:
                problems.append(f"{name}: the processor charged it ({at_processor.reference})")
    recorded = set(keys)
    orphans = [k for k in sandbox if k not in recorded]
    problems += [f"processor charge {k} has no charge on record" for k in orphans]
    made = sum(1 for c in charges if c.idempotency_key in sandbox)
    figures = (f"{len(charges):,} charges ({made:,} through the processor): "
               + ", ".join(f"{p} {s} {n}" for (p, s), n in sorted(counts.items()))
               + "; each key once at the processor, each success credited once or refunded")
    report.check("charges", problems, figures)


def check_refunds(session, report: Report) -> None:
    refunds = list(session.scalars(select(Refund)))
    at_processor = {r.idempotency_key: r for r in session.scalars(select(SandboxRefund))}
    problems = []
    for refund in refunds:
        given = at_processor.get(refund.idempotency_key)
        if refund.status == RefundStatus.PENDING:
            problems.append(f"refund {refund.id}: still pending")
        elif refund.status == RefundStatus.SUCCEEDED and (
                given is None or not given.succeeded or given.amount_cents != refund.amount_cents):
            problems.append(f"refund {refund.id}: not (or not so) refunded at the processor")
        if refund.amount_cents > refund.charge.amount_cents:
            problems.append(f"refund {refund.id}: more than its charge")
    known = {r.idempotency_key for r in refunds}
    problems += [f"processor refund {k} has no refund on record"
                 for k in at_processor if k not in known]
    by_status = Counter(r.status.value for r in refunds)
    report.check("refunds", problems, f"{len(refunds)} refunds {dict(by_status)}; each once at "
                                      "the processor, none more than its charge")


def check_outbox(session, report: Report, deliveries: Path | None) -> None:
    from billing_links.models import BillingRequest

    problems = []
    doubled = session.execute(
        select(OutboxMessage.dedupe_key, func.count()).where(OutboxMessage.dedupe_key.isnot(None))
        .group_by(OutboxMessage.dedupe_key).having(func.count() > 1)).all()
    problems += [f"dedupe key {k}: {n} messages" for k, n in doubled]
    keys = {k for (k,) in session.execute(select(OutboxMessage.dedupe_key)
                                          .where(OutboxMessage.dedupe_key.isnot(None)))}
    receipted = {int(k.split(":")[1]) for k in keys
                 if k.startswith(("receipt:", "billing-link-receipt:"))}
    for charge_id, key in session.execute(select(Charge.id, Charge.idempotency_key).where(
            Charge.status == ChargeStatus.SUCCEEDED)):
        if charge_id not in receipted and not key.startswith("demo-"):
            problems.append(f"charge {charge_id}: succeeded without a receipt")
    for link_id, in session.execute(select(BillingRequest.link_id)):
        if f"billing-link:{link_id}" not in keys:
            problems.append(f"billing request {link_id}: no email")
    statuses = dict(session.execute(select(OutboxMessage.status, func.count())
                                    .group_by(OutboxMessage.status)).all())
    total = sum(statuses.values())
    figures = (f"{total:,} messages " + str({s.value: n for s, n in statuses.items()})
               + "; one per dedupe key, a receipt per succeeded charge, one per billing link")
    if deliveries is not None:
        if statuses.get(MailStatus.PENDING) or statuses.get(MailStatus.FAILED):
            problems.append(f"{statuses.get(MailStatus.PENDING, 0)} pending and "
                            f"{statuses.get(MailStatus.FAILED, 0)} failed after the jobs")
        lines = [json.loads(line) for line in deliveries.read_text().splitlines() if line] \
            if deliveries.exists() else []
        delivered = Counter()
        for line in lines:
            found = MESSAGE_ID_RE.search(line["message_id"])
            if found is None:
                problems.append(f"delivered a message without an outbox Message-ID: {line}")
            else:
                delivered[int(found.group(1))] += 1
        sent = {i for (i,) in session.execute(select(OutboxMessage.id)
                                              .where(OutboxMessage.status == MailStatus.SENT))}
        problems += [f"message {i} delivered {n} times" for i, n in delivered.items() if n > 1]
        problems += [f"message {i} marked sent, never delivered" for i in sent - set(delivered)]
        problems += [f"message {i} delivered, not marked sent" for i in set(delivered) - sent]
        figures += (f"; SMTP: {len(lines):,} deliveries of {len(delivered):,} messages, each "
                    "sent message delivered exactly once")
    report.check("outbox", problems, figures)


def check_sub_accounts(session, report: Report) -> None:
    subs = list(session.scalars(select(Account).where(
        Account.parent_id.isnot(None), Account.billing_mode == BillingMode.AGENCY)))
    problems = [f"{s.name} (#{s.id}): on agency billing with balance {s.balance_cents} and "
                f"status {s.status.value}" for s in subs
                if s.balance_cents != 0 or s.status == AccountStatus.BILLING_PAUSED]
    customer = session.scalar(select(func.count()).select_from(Account).where(
        Account.parent_id.isnot(None), Account.billing_mode == BillingMode.CUSTOMER))
    report.check("agency-billed sub-accounts", problems,
                 f"{len(subs)} on agency billing (none with a balance of its own or billing "
                 f"paused), {customer} on customer billing")


def summary(session) -> None:
    from billing_links.models import BillingRequest

    requests = dict(session.execute(select(BillingRequest.status, func.count())
                                    .group_by(BillingRequest.status)).all())
    opening = dict(session.execute(
        select(Charge.status, func.count()).where(
            Charge.purpose == ChargePurpose.OPENING_BALANCE).group_by(Charge.status)).all())
    print("billing requests: " + ", ".join(f"{s.value} {n}" for s, n in requests.items())
          + "; link payments: " + ", ".join(f"{s.value} {n}" for s, n in opening.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--usage-log", type=Path)
    parser.add_argument("--deliveries", type=Path)
    args = parser.parse_args()
    app = create_app()
    report = Report()
    with app.app_context():
        if args.drain:
            drain(app)
        session = db.session
        summary(session)
        check_ledger(session, report)
        check_usage(session, report, args.usage_log)
        check_charges(session, report)
        check_refunds(session, report)
        check_outbox(session, report, args.deliveries)
        check_sub_accounts(session, report)
    print(f"money checks: {'all pass' if not report.failures else f'{report.failures} FAILED'}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
