"""`flask usage post`: usage, as the metering system posts it."""

import click
from flask.cli import AppGroup

from portal.cli.params import QUANTITY, ROW_ID
from portal.extensions import db

group = AppGroup("usage", help="Usage (what the metering system posts).")


@group.command("post")
@click.argument("account_id", type=ROW_ID)
@click.option("--key", required=True, help="Idempotency key: the same key debits once.")
@click.option("--numbers", type=QUANTITY, default=0)
@click.option("--minutes", type=QUANTITY, default=0)
@click.option("--transcriptions", type=QUANTITY, default=0)
@click.option("--enhanced-caller-id", "enhanced_caller_id", type=QUANTITY, default=0)
@click.option("--encrypted-recording", "encrypted_recording", type=QUANTITY, default=0)
def usage_post(account_id: int, key: str, **items: int) -> None:
    """Debit usage from ACCOUNT_ID's paying balance; recharge if it falls below the
    threshold."""
    from portal.errors import DomainError
    from portal.extensions import payment_gateway
    from portal.models import Account
    from portal.services import usage
    from portal.services.money import dollars

    account = db.session.get(Account, account_id)
    if account is None:
        raise click.ClickException(f"No account {account_id}.")
    try:
        received = usage.post_and_recharge(db.session, payment_gateway(), account, items,
                                           key)
    except DomainError as e:
        db.session.rollback()
        detail = "; ".join(f"{k}: {v}" if k else v for k, v in
                           getattr(e, "errors", {}).items()) or e.message
        raise click.ClickException(detail) from None
    if received.duplicate:
        click.echo(f"already posted under key {key}: nothing more debited "
                   f"(entry {received.entry_id})")
    else:
        click.echo(f"entry {received.entry_id}: {dollars(received.amount_cents)} debited; "
                   f"balance {dollars(received.balance_after_cents)}")
    charge = received.recharge
    if charge is not None:
        click.echo(f"recharge {charge.receipt_number}: {dollars(charge.amount_cents)} "
                   f"{charge.status.value}"
                   + (f" ({charge.failure_message})" if charge.failure_message else ""))
