"""Command-line tasks: `flask --app wsgi <command>`."""

import click
from flask import Flask

from portal.extensions import db


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
