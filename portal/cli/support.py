"""`flask support list|resolve`: support requests, for staff."""

import click
from flask.cli import AppGroup

from portal.cli.params import ROW_ID
from portal.extensions import db

group = AppGroup("support", help="Support requests (staff).")


@group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Resolved and declined ones too.")
def support_list(show_all: bool) -> None:
    from sqlalchemy import select

    from portal.models import Account, SupportRequest, SupportStatus

    query = select(SupportRequest, Account.name).join(
        Account, Account.id == SupportRequest.account_id).order_by(SupportRequest.id)
    if not show_all:
        query = query.where(SupportRequest.status == SupportStatus.OPEN)
    for ticket, account_name in db.session.execute(query):
        click.echo(f"#{ticket.id} [{ticket.status.value}] {account_name}: {ticket.label}"
                   f" ({ticket.created_at:%Y-%m-%d %H:%M} UTC) {ticket.message}")

@group.command("resolve")
@click.argument("request_id", type=ROW_ID)
@click.option("--decline", is_flag=True, help="Decline instead of resolving.")
@click.option("--note", default="", help="The answer the account's admins see.")
def support_resolve(request_id: int, decline: bool, note: str) -> None:
    from portal.errors import DomainError
    from portal.models import SupportStatus
    from portal.services import support

    status = SupportStatus.DECLINED if decline else SupportStatus.RESOLVED
    try:
        ticket = support.resolve(db.session, request_id, status, note)
    except DomainError as e:
        raise click.ClickException(e.message) from None
    db.session.commit()
    click.echo(f"#{ticket.id} is {ticket.status.value}.")
