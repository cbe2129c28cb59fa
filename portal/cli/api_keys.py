"""`flask api-key create`: an API key for scripts (the same rules as Settings → Developers:
the maker is an owner or admin of the account; only an owner makes an owner key). Prints
the token on the last line, once."""

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from portal.cli.params import ROW_ID
from portal.extensions import db

group = AppGroup("api-key", help="API keys (Settings → Developers).")


@group.command("create")
@click.option("--account", "account_id", type=ROW_ID, required=True, help="The account's id.")
@click.option("--email", required=True, help="The maker: an owner or admin of the account.")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scopes", default="read", show_default=True,
              help="Comma-separated: read, write, metering.")
@click.option("--role", type=click.Choice(["owner", "admin"]), default=None,
              help="The role the key acts with (default: the maker's).")
def create(account_id: int, email: str, name: str, scopes: str, role: str | None) -> None:
    """Create a key for ACCOUNT and print its token (shown once)."""
    from portal.errors import DomainError
    from portal.models import Account, Role, User
    from portal.services import access, api_keys

    account = db.session.get(Account, account_id)
    maker = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if account is None or maker is None:
        raise click.ClickException(f"No account {account_id}." if account is None
                                   else f"No user {email}.")
    try:
        maker_role = access.account_for(db.session, maker, account.id).role
    except DomainError:
        maker_role = None
    if maker_role not in (Role.OWNER, Role.ADMIN):
        raise click.ClickException(f"{email} is not one of {account.name}'s owners and "
                                   "admins: only they can create API keys.")
    try:
        made = api_keys.create(db.session, account, maker, maker_role, name,
                               [s.strip() for s in scopes.split(",") if s.strip()],
                               Role(role) if role else None)
    except DomainError as e:
        db.session.rollback()
        detail = "; ".join(f"{k}: {v}" if k else v for k, v in
                           getattr(e, "errors", {}).items()) or e.message
        raise click.ClickException(detail) from None
    db.session.commit()
    click.echo(f"API key {made.key.hint} “{made.key.name}” for {account.name} "
               f"({made.key.scopes}, as {made.key.role.value}); the token, shown once:",
               err=True)
    click.echo(made.token)
