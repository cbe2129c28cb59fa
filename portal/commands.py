"""Command-line tasks: `flask --app wsgi <command>`."""

import click
from flask import Flask

from portal.extensions import db


class Whole(click.ParamType):
    """A whole number in the digits 0-9 (inputs.to_int), as the forms read them: click's int
    takes "１２" and "1_2" like int() does."""

    name = "integer"

    def __init__(self, maximum: int = 10**9 - 1, signed: bool = False):
        self.maximum, self.signed = maximum, signed  # signed: the service says what's allowed

    def convert(self, value, param, ctx):
        from portal.services.inputs import to_int

        if isinstance(value, int):
            return value
        text = str(value).strip()
        minus = self.signed and text.startswith("-")
        number = to_int(text[1:] if minus else text, len(str(self.maximum)))
        if number is not None and minus:
            return -number
        if number is None or number > self.maximum:
            self.fail(f"{value!r} is not a whole number from 0 to {self.maximum} in the digits "
                      "0-9.", param, ctx)
        return number


ROW_ID = Whole(2**31 - 1)  # an INTEGER column's largest value
QUANTITY = Whole(signed=True)  # usage.parse_items says which are allowed


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    @click.option("--force", is_flag=True, help="Seed even if the database has users.")
    def seed_demo(force: bool) -> None:
        """Create the demo agency, accounts, users, numbers and calls (empty database)."""
        from portal.services import demo

        if not force and not demo.is_empty(db.session):
            click.echo("The database already has data; demo not seeded.")
            return
        counts = demo.seed(db.session)
        db.session.commit()
        click.echo(f"Demo seeded: {counts['users']} users, {counts['accounts']} accounts, "
                   f"{counts['calls']} calls. Password: {demo.PASSWORD}")

    @app.cli.group("jobs")
    def jobs() -> None:
        """Scheduled work (cron runs `jobs run` every minute)."""

    @jobs.command("run")
    def jobs_run() -> None:
        """Run every job that is due. Idempotent: running it twice does nothing more."""
        from portal import jobs as portal_jobs

        for job in portal_jobs.JOBS:
            line = job.report(job.run(db.session))
            if line is not None:
                click.echo(line)

    @app.cli.group("mail")
    def mail_group() -> None:
        """The outbox's delivery."""

    @mail_group.command("retry")
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

    @app.cli.group("support")
    def support() -> None:
        """Support requests (staff)."""

    @support.command("list")
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

    @support.command("resolve")
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

    @app.cli.group("ledger")
    def ledger_group() -> None:
        """The ledger."""

    @ledger_group.command("check")
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

    @app.cli.group("usage")
    def usage_group() -> None:
        """Usage (what the metering system posts)."""

    @usage_group.command("post")
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
        from portal.services import charges, usage
        from portal.services.money import dollars

        account = db.session.get(Account, account_id)
        if account is None:
            raise click.ClickException(f"No account {account_id}.")
        try:
            posted = usage.post(db.session, account, items, key)
        except DomainError as e:
            db.session.rollback()
            detail = "; ".join(f"{k}: {v}" if k else v for k, v in
                               getattr(e, "errors", {}).items()) or e.message
            raise click.ClickException(detail) from None
        db.session.commit()
        entry = posted.entry
        if posted.duplicate:
            click.echo(f"already posted under key {key}: nothing more debited "
                       f"(entry {entry.id})")
        else:
            click.echo(f"entry {entry.id}: {dollars(-entry.amount_cents)} debited; balance "
                       f"{dollars(entry.balance_after_cents)}")
        if posted.recharge is not None:
            charge = charges.run_recharge(db.session, payment_gateway(), posted.recharge)
            click.echo(f"recharge {charge.receipt_number}: {dollars(charge.amount_cents)} "
                       f"{charge.status.value}"
                       + (f" ({charge.failure_message})" if charge.failure_message else ""))
