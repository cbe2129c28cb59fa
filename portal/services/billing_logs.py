"""Billing Logs: every ledger entry of an account, searched by text, filtered by kind and
date range (UTC), a page at a time, and exported to CSV as a stream.

Searches: "description contains" (any case); on PostgreSQL a trigram index serves it. A whole
receipt number (R-00001234) reads only the entries its charge made (cause_ref, indexed on
both databases), and must still be in their text: the same rows as a text search, unless a
description names a receipt its entry's charge did not make (none do: receipt numbers are
written by charges.credit and refunds only)."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import ValidationFailed
from portal.models import LEDGER_LABELS, Account, Cause, LedgerEntry, LedgerKind
from portal.services.calls import DateRange, _csv_safe, csv_chunks, parse_range
from portal.services.money import plain
from portal.services.paging import contains

CSV_HEADER = ["created_at_utc", "kind", "description", "amount", "balance_after",
              "cause", "reference"]
MAX_QUERY = 100
RECEIPT_RE = re.compile(r"R-(\d{8,})", re.IGNORECASE)


@dataclass(frozen=True)
class LogFilter:
    q: str = ""
    kind: LedgerKind | None = None
    when: DateRange = DateRange()

    def conditions(self, account: Account):
        conditions = [LedgerEntry.account_id == account.id,
                      *self.when.conditions(LedgerEntry.created_at)]
        if self.kind is not None:
            conditions.append(LedgerEntry.kind == self.kind)
        if self.q:
            charge_id = receipt_charge_id(self.q)
            if charge_id is not None:
                # A receipt's entries are those its charge made (its payment or recharge,
                # refunds, failed refunds): found through ix_ledger_entries_account_cause_ref
                # instead of reading every entry's description. The text must match too.
                conditions += [LedgerEntry.cause == Cause.CHARGE,
                               LedgerEntry.cause_ref == str(charge_id)]
            conditions.append(contains(LedgerEntry.description, self.q))
        return conditions


def receipt_charge_id(q: str) -> int | None:
    """The charge id of a whole receipt number ("R-00001234", any case), else None."""
    match = RECEIPT_RE.fullmatch(q)
    if match is None:
        return None
    charge_id = int(match.group(1))
    # Only the number as Charge.receipt_number writes it (8 digits at least, zero-padded).
    return charge_id if f"R-{charge_id:08d}" == q.upper() else None


def parse_filter(args) -> LogFilter:
    errors = {}
    q = " ".join((args.get("q") or "").split())
    if len(q) > MAX_QUERY:
        errors["q"] = f"Search for at most {MAX_QUERY} characters."
    kind = None
    raw_kind = (args.get("kind") or "").strip()
    if raw_kind:
        try:
            kind = LedgerKind(raw_kind)
        except ValueError:
            errors["kind"] = "Choose a kind from the list."
    try:
        when = parse_range(args.get("from"), args.get("to"))
    except ValidationFailed as e:
        errors.update(e.errors)
        when = DateRange()
    if errors:
        raise ValidationFailed(errors)
    return LogFilter(q, kind, when)


@dataclass(frozen=True)
class LogPage:
    """A page of entries, newest first; whether an older page exists (no total count: a
    count over hundreds of thousands of entries would cost more than the page)."""

    items: list
    number: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.items)


def page(session: Session, account: Account, log_filter: LogFilter, number: int = 1,
         per_page: int = 50) -> LogPage:
    rows = list(session.execute(
        select(LedgerEntry.id, LedgerEntry.created_at, LedgerEntry.kind,
               LedgerEntry.description, LedgerEntry.amount_cents,
               LedgerEntry.balance_after_cents)
        .where(*log_filter.conditions(account))
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(per_page + 1).offset((number - 1) * per_page)))
    return LogPage(rows[:per_page], number, per_page, len(rows) > per_page)


def export_csv(session: Session, account: Account, log_filter: LogFilter,
               batch: int = 2000) -> Iterator[str]:
    """CSV text in chunks, oldest first, reading the database in batches. Times are UTC."""
    result = session.execute(
        select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.description,
               LedgerEntry.amount_cents, LedgerEntry.balance_after_cents, LedgerEntry.cause,
               LedgerEntry.cause_ref)
        .where(*log_filter.conditions(account))
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
        .execution_options(yield_per=batch))
    labels = LEDGER_LABELS
    rows = ((created.strftime("%Y-%m-%dT%H:%M:%SZ"), labels[kind], _csv_safe(description),
             plain(amount), plain(after), cause.value, _csv_safe(ref))
            for created, kind, description, amount, after, cause, ref in result)
    # yield from, not return: the query (a server-side cursor on PostgreSQL) must run inside
    # the streamed response, not in the view that returns it.
    yield from csv_chunks(CSV_HEADER, rows, batch)
