"""Usage: numbers, minutes, transcriptions, enhanced caller ID and encrypted recording,
posted by the metering system (JSON endpoint, `flask usage post`) and debited from the paying
account's ledger once per idempotency key. A debit that takes the balance below the auto
recharge threshold records a recharge (`charges.run_recharge` charges it after the commit)."""

import dataclasses
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import rules
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Account, Cause, Charge, ChargeStatus, LedgerEntry, LedgerKind, User
from portal.services import charges, ledger
from portal.services.inputs import to_int

ITEMS = tuple(rules.USAGE_PRICES)
_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,80}")  # fullmatch: "$" would let a final "\n" in


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    duplicate: bool  # the key was posted before: nothing more was debited
    recharge: Charge | None  # a recharge to run after the commit


def parse_items(data) -> dict[str, int]:
    """Quantities per item: whole numbers from 0 to a million; at least one above 0; no
    unknown items."""
    if not hasattr(data, "get") or not hasattr(data, "keys"):
        raise ValidationFailed({"items": "Send the usage as an object of quantities."})
    errors = {}
    unknown = sorted(set(data.keys()) - set(ITEMS))
    if unknown:
        errors["items"] = (f"Unknown usage item: {', '.join(map(str, unknown))}. Known: "
                           f"{', '.join(ITEMS)}.")
    items = {}
    for name in ITEMS:
        value = data.get(name)
        if value in (None, ""):
            continue
        if isinstance(value, str) and to_int(value, max_digits=7) is not None:
            value = to_int(value, max_digits=7)  # "120" from the command line; not "１２０"
        if not isinstance(value, int) or isinstance(value, bool):
            errors[name] = "Must be a whole number."
        elif not 0 <= value <= rules.MAX_USAGE_QUANTITY:
            errors[name] = f"Must be from 0 to {rules.MAX_USAGE_QUANTITY:,}."
        elif value:
            items[name] = value
    if not errors and not items:
        errors["items"] = "Post at least one usage item with a quantity above 0."
    if errors:
        raise ValidationFailed(errors)
    return items


def price(items: dict[str, int]) -> int:
    return sum(rules.USAGE_PRICES[name] * quantity for name, quantity in items.items())


def describe(items: dict[str, int]) -> str:
    parts = []
    for name in ITEMS:
        if items.get(name):
            one, many = rules.USAGE_LABELS[name]
            parts.append(f"{items[name]:,} {one if items[name] == 1 else many}")
    return ", ".join(parts)


def valid_key(key) -> bool:
    """A usage key or a usage event's id: 1 to 80 letters, digits, '.', '_', ':' or '-'."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


KEY_RULE = "1 to 80 letters, digits, '.', '_', ':' or '-'"


def description(account: Account, on_behalf: bool, items: dict[str, int],
                extra: str = "") -> str:
    """A usage debit's ledger description: "Usage: 12 minutes", naming the sub-account when
    its agency pays ("Usage (Bayside Dental): 12 minutes"); `extra` after the items."""
    text = describe(items) + extra
    return f"Usage ({account.name}): {text}" if on_behalf else f"Usage: {text}"


def refusal(account: Account) -> str | None:
    """Why the account takes no usage now, or None."""
    if account.is_canceled:
        return f"{account.name} is canceled: it takes no usage."
    return None


def post(session: Session, account: Account, data, key: str,
         actor: User | None = None) -> Posted:
    """Debit the usage from whoever pays for `account` when the debit is written (the
    agency's balance for a sub-account on agency billing, naming the sub-account).

    The key belongs to the metered account, not to the ledger that paid: posted again after
    the sub-account moved between agency and customer billing, it is still a duplicate."""
    if not valid_key(key):
        raise ValidationFailed({"idempotency_key": f"An idempotency key of {KEY_RULE} is "
                                                   "required."})
    items = parse_items(data)
    amount = price(items)
    locked = ledger.lock_payer(session, account.id)  # who pays, read under the write lock
    account, payer = locked.account, locked.payer
    ledger_key = key_for(account.id, key)
    text = description(account, locked.on_behalf, items)
    existing = session.scalar(select(LedgerEntry).where(
        LedgerEntry.kind == LedgerKind.USAGE, LedgerEntry.idempotency_key == ledger_key))
    if existing is not None:
        ledger._same(existing, LedgerKind.USAGE, -amount)
        if not _same_items(existing.description, describe(items)):  # other items, same price
            raise ledger.KeyReused({"idempotency_key": "This key was already posted with "
                                                       "other usage."})
        return Posted(existing, True, None)
    refused = refusal(account)
    if refused:
        raise NotAllowed(refused)
    entry = ledger.post(session, payer, LedgerKind.USAGE, -amount, text, ledger_key,
                        Cause.USAGE, cause_ref=key[:64], actor=actor,
                        for_account=account if locked.on_behalf else None, key_checked=True)
    return Posted(entry, False,
                  charges.start_recharge(session, payer, balance=entry.balance_after_cents))


@dataclass(frozen=True)
class Received:
    """What a posting did, read before its commit (after it, each attribute of the entry
    would be a query again)."""

    entry_id: int
    account_id: int  # the metered account
    paid_by_account_id: int  # whose ledger paid: the agency's for agency billing
    amount_cents: int  # debited (positive)
    balance_after_cents: int
    duplicate: bool
    recharge: Charge | None  # the recharge the debit started, already run

    def as_json(self) -> dict:
        """The answer of both usage endpoints (/api and /api/v1)."""
        charge = self.recharge
        return {"entry_id": self.entry_id, "account_id": self.account_id,
                "paid_by_account_id": self.paid_by_account_id,
                "amount_cents": self.amount_cents,
                "balance_after_cents": self.balance_after_cents,
                "duplicate": self.duplicate,
                "recharge": None if charge is None else {
                    "id": charge.id, "status": charge.status.value,
                    "amount_cents": charge.amount_cents,
                    "reason": charge.failure_message
                    if charge.status == ChargeStatus.FAILED else ""}}


def post_and_recharge(session: Session, gateway, account: Account, data, key: str,
                      actor: User | None = None) -> Received:
    """Post the usage (`post`), commit, then run the recharge it started, if any
    (`charges.run_recharge`, which commits). Invalid usage (ValidationFailed) or a canceled
    account (NotAllowed) raise before anything is committed: the caller rolls back."""
    posted = post(session, account, data, key, actor)
    entry = posted.entry
    received = Received(entry.id, account.id, entry.account_id, -entry.amount_cents,
                        entry.balance_after_cents, posted.duplicate, None)
    session.commit()
    if posted.recharge is None:
        return received
    charge = charges.run_recharge(session, gateway, posted.recharge)
    return dataclasses.replace(received, recharge=charge)


def key_for(account_id: int, key: str) -> str:
    """The ledger key of a usage posting: one per metered account and key, whichever ledger
    paid it (a unique index on usage entries' keys holds it across ledgers)."""
    return f"usage:{account_id}:{key}"


def _same_items(description: str, items_text: str) -> bool:
    """Whether an entry's description ("Usage (Bayside Dental): 12 minutes" or "Usage: 12
    minutes", cut at 200 characters) names these items. The sub-account's name may have
    changed since, and may hold anything; the items' text never holds "): "."""
    if description.startswith("Usage ("):
        found = description.rpartition("): ")[2]
    else:
        found = description.partition(": ")[2]
    if len(description) >= 200:
        return items_text.startswith(found)
    return found == items_text
