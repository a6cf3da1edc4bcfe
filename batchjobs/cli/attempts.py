"""``batchjobs attempts`` and ``batchjobs log``: every attempt of a job, with what its
process raised and logged (AX's batch job history)."""

from __future__ import annotations

from typing import Any

import click

from .. import api
from .common import EXIT_INVALID, echo_json, json_option, reports_errors

_task_option = click.option("--task", "task", default=None, metavar="NAME",
                            help="Only this task's attempts.")


@click.command(name="attempts")
@click.argument("job_id", type=int)
@_task_option
@json_option
@reports_errors
def list_attempts(job_id: int, task: str | None, as_json: bool) -> None:
    """List every attempt of a job: task, number, server, user, company, times, outcome,
    error (with --json also the traceback and the log)."""
    rows = api.attempts(job_id, task=task)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['task']:<20} #{row['number']:<3} {row['outcome']:<9} "
                   f"{row['server']:<16} {row['started_at'] or '':<28} "
                   f"{row['ended_at'] or '':<28} {row['error'] or ''}")


@click.command(name="log")
@click.argument("job_id", type=int)
@_task_option
@click.option("--attempt", "number", type=int, default=None, metavar="N",
              help="Only attempt N (numbers go on across retries and reruns).")
@json_option
@reports_errors
def show_log(job_id: int, task: str | None, number: int | None, as_json: bool) -> None:
    """Print what each attempt's process logged and printed, and its traceback if it
    failed."""
    rows = api.attempts(job_id, task=task, number=number)
    if number is not None and not rows:
        click.echo(f"error: job {job_id} has no attempt {number}"
                   + (f" of task {task!r}" if task else ""), err=True)
        raise SystemExit(EXIT_INVALID)
    if as_json:
        echo_json([_log_view(row) for row in rows])
        return
    for row in rows:
        click.echo(f"== {row['task']} attempt {row['number']} on {row['server']}: "
                   f"{row['outcome']} ({row['started_at']} .. {row['ended_at'] or 'running'})")
        if row["log"]:
            click.echo(row["log"].rstrip("\n"))
        if row["traceback"]:
            click.echo(row["traceback"].rstrip("\n"))


def _log_view(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("task", "number", "server", "outcome", "started_at", "ended_at", "error",
            "traceback", "log")
    return {key: row[key] for key in keys}
