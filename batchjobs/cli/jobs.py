"""``submit``, ``status``, ``wait`` and ``list``: the job commands."""

from __future__ import annotations

import sys

import click

from .. import api
from ..definition import load_job_file
from ..status import JobStatus
from .common import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, echo_json, json_option, reports_errors


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--user", envvar="BATCHJOBS_USER", help="Run the job as this user "
              "(default: your OS user).")
@click.option("--hold", is_flag=True, help="Store the job on hold; it does not start.")
@reports_errors
def submit(file: str, user: str | None, hold: bool) -> None:
    """Submit the job in FILE (YAML or JSON); print its id.

    \b
    Example:
      batchjobs submit job1.yaml --user alice
    """
    job = load_job_file(file)
    click.echo(api.submit(job, user=user, hold=hold))


@click.command()
@click.argument("job_id", type=int)
@json_option
@reports_errors
def status(job_id: int, as_json: bool) -> None:
    """Show a job and its tasks: status, server, times, error, reason.

    \b
    Example:
      batchjobs status 12 --json
    """
    data = api.status(job_id)
    if as_json:
        echo_json(data)
        return
    click.echo(f"job {data['id']}  {data['description']}  {data['status']}  "
               f"(by {data['created_by']})")
    click.echo(f"  {'task':<20} {'status':<10} {'group':<10} {'server':<12} {'tries':>5}  "
               "detail")
    for t in data["tasks"]:
        detail = t["error"] or t["reason"] or ""
        click.echo(f"  {t['name']:<20} {t['status']:<10} {t['group']:<10} "
                   f"{t['server'] or '-':<12} {t['attempts']:>5}  {detail}")


@click.command()
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None, help="Give up after S seconds (exit 124).")
@reports_errors
def wait(job_id: int, timeout: float | None) -> None:
    """Wait until a job is final; exit 0 if it ended, 1 on error/canceled, 124 on timeout."""
    final = api.wait(job_id, timeout=timeout)
    if final is None:
        click.echo(f"job {job_id} still running after {timeout}s", err=True)
        sys.exit(EXIT_TIMEOUT)
    click.echo(final.value)
    sys.exit(EXIT_OK if final is JobStatus.ENDED else EXIT_FAILED)


@click.command(name="list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@reports_errors
def list_jobs(limit: int, as_json: bool) -> None:
    """List the most recent jobs."""
    jobs = api.list_jobs(limit=limit)
    if as_json:
        echo_json(jobs)
        return
    for j in jobs:
        click.echo(f"{j['id']:>6}  {j['status']:<10} {j['created_at']}  {j['created_by']:<12} "
                   f"{j['description']}")


COMMANDS = (submit, status, wait, list_jobs)
