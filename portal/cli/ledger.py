"""`flask ledger check`: every balance against its ledger."""

import click
from flask.cli import AppGroup

from portal.extensions import db

group = AppGroup("ledger", help="The ledger.")


@group.command("check")
def ledger_check() -> None:
    """Verify every account's balance equals the sum of its ledger (exit 1 if not)."""
    from portal.services import ledger

    mismatches = ledger.check(db.session)
    for m in mismatches:
        click.echo(f"account {m.account_id}: cached {m.cached_cents} cents, "
                   f"ledger {m.ledger_cents} cents", err=True)
    if mismatches:
        raise SystemExit(1)
    click.echo("ledger check: every balance equals the sum of its entries")
