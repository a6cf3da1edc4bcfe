"""The ``batchjobs`` command: a click group that only wires the subcommands."""

from __future__ import annotations

import click

from . import coordinator, db, demo, groups, jobs, servers, users, web


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchjobs")
def cli() -> None:
    """Batch jobs with dependent tasks on Celery batch servers.

    \b
    Examples:
      batchjobs demo                       # the JOB 1 walkthrough, no server needed
      batchjobs worker --server Batch1 --groups default --threads 2
      batchjobs submit job.yaml            # prints the job id
      batchjobs wait 1 && batchjobs status 1 --json
    """


for command in (*jobs.COMMANDS, servers.worker, servers.server, db.db, groups.group, users.user,
                coordinator.coordinator, demo.demo, web.web):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="batchjobs")
