"""Command-line tasks: `flask --app wsgi <command>`, one module per command group.

    demo.py      seed-demo, and the demo data it creates
    jobs.py      jobs run: the scheduled jobs (their registry is portal/jobs.py)
    mail.py      mail retry
    support.py   support list, support resolve (staff)
    ledger.py    ledger check
    usage.py     usage post (what the metering system posts)
    params.py    the whole-number parameter types the commands read
"""

from flask import Flask


def register(app: Flask) -> None:
    """Add every command to `app.cli` (create_app calls this)."""
    from portal.cli import demo, jobs, ledger, mail, support, usage

    for command in (demo.seed_demo, jobs.group, mail.group, support.group, ledger.group,
                    usage.group):
        app.cli.add_command(command)
    from portal.cli import api_keys  # issue 18: api-key create

    app.cli.add_command(api_keys.group)
