"""Usage: numbers, minutes, transcriptions, enhanced caller ID and encrypted recording,
posted by the metering system (JSON endpoint, `flask usage post`) and debited from the paying
account's ledger once per idempotency key. A debit that takes the balance below the auto
recharge threshold records a recharge (`charges.run_recharge` charges it after the commit)."""

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import rules
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Account, Cause, Charge, LedgerEntry, LedgerKind, User
from portal.services import charges, ledger

ITEMS = tuple(rules.USAGE_PRICES)
_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,80}$")


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
        if isinstance(value, str) and re.fullmatch(r"\d{1,7}", value.strip()):
            value = int(value.strip())
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


def post(session: Session, account: Account, data, key: str,
         actor: User | None = None) -> Posted:
    """Debit the usage from whoever pays for `account` (the agency's balance for a
    sub-account on agency billing, naming the sub-account)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationFailed({"idempotency_key": "An idempotency key of 1 to 80 letters, "
                                                   "digits, '.', '_', ':' or '-' is required."})
    items = parse_items(data)
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: it takes no usage.")
    payer = ledger.paying_account(session, account)
    ledger_key = f"usage:{account.id}:{key}"
    existing = session.scalar(select(LedgerEntry).where(
        LedgerEntry.account_id == payer.id, LedgerEntry.idempotency_key == ledger_key))
    amount = price(items)
    on_behalf = payer.id != account.id
    description = f"Usage ({account.name}): {describe(items)}" if on_behalf \
        else f"Usage: {describe(items)}"
    if existing is not None:
        ledger._same(existing, LedgerKind.USAGE, -amount)
        if existing.description != description[:200]:  # other items at the same price
            raise ledger.KeyReused({"idempotency_key": "This key was already posted with "
                                                       "other usage."})
        return Posted(existing, True, None)
    entry = ledger.post(session, payer, LedgerKind.USAGE, -amount, description, ledger_key,
                        Cause.USAGE, cause_ref=key[:64], actor=actor,
                        for_account=account if on_behalf else None, key_checked=True)
    return Posted(entry, False,
                  charges.start_recharge(session, payer, balance=entry.balance_after_cents))
