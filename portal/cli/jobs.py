"""`flask jobs run`: the scheduled jobs (portal/jobs.py's registry), cron runs it every minute."""

import click
from flask.cli import AppGroup

from portal.extensions import db

group = AppGroup("jobs", help="Scheduled work (cron runs `jobs run` every minute).")


@group.command("run")
def jobs_run() -> None:
    """Run every job that is due. Idempotent: running it twice does nothing more."""
    from portal import jobs as portal_jobs

    for job in portal_jobs.JOBS:
        line = job.report(job.run(db.session))
        if line is not None:
            click.echo(line)
