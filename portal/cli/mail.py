"""`flask mail retry`: queue failed mail again."""

import click
from flask.cli import AppGroup

from portal.cli.params import ROW_ID
from portal.extensions import db

group = AppGroup("mail", help="The outbox's delivery.")


@group.command("retry")
@click.argument("message_id", type=ROW_ID, required=False)
@click.option("--all-failed", "all_failed", is_flag=True,
              help="Every failed message instead of one.")
def mail_retry(message_id: int | None, all_failed: bool) -> None:
    """Queue failed mail again: MESSAGE_ID, or --all-failed. The next `jobs run` sends it
    (and marks it failed again, with the reason, if it still can't go)."""
    from portal.errors import DomainError
    from portal.mail import delivery

    if (message_id is None) == (not all_failed):
        raise click.UsageError("Give one message id, or --all-failed.")
    try:
        ids = delivery.retry(db.session, message_id)
    except DomainError as e:
        db.session.rollback()
        raise click.ClickException(e.message) from None
    db.session.commit()
    if not ids:
        click.echo("No failed messages.")
    else:
        click.echo(f"{len(ids)} message(s) queued again: "
                   + ", ".join(f"#{i}" for i in ids))
