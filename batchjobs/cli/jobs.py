"""The job commands: submit, wait, list, hold, release, cancel, rerun, history,
alerts, run-client."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import api
from ..status import JobStatus
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    echo_json,
    echo_rows,
    json_option,
    reports_errors,
)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--user", envvar="BATCHJOBS_USER", help="Run the job as this user "
              "(default: your OS user).")
@click.option("--hold", is_flag=True, help="Store the job on hold; it does not start.")
@reports_errors
def submit(file: str, user: str | None, hold: bool) -> None:
    """Submit the job in FILE (YAML or JSON); print its id.

    A job stored while the broker is unreachable is a job: its id is printed, a
    warning says its dispatch is deferred, and housekeepers publish it once the broker
    answers. A broker URL that can never work is refused (exit 2) before anything is
    stored.

    \b
    Example:
      batchjobs submit job1.yaml --user alice
    """
    from ..definition import check_user, load_job_file

    job = load_job_file(file)
    if user is not None:
        check_user(user)
    click.echo(api.submit(job, user=user, hold=hold, on_deferred=_warn_deferred))


def _warn_deferred(job_id: int, error: Exception) -> None:
    from ..settings import get_settings

    after = get_settings().republish_after
    click.echo(f"warning: job {job_id} is stored but its dispatch is deferred ({error}); "
               f"housekeepers publish its ready tasks once the broker answers (after "
               f"BATCHJOBS_REPUBLISH_AFTER, {after:g} s)", err=True)


@click.command()
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None, help="Give up after S seconds (exit 124).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (none is drawn when stderr "
              "is not a terminal either).")
@reports_errors
def wait(job_id: int, timeout: float | None, quiet: bool) -> None:
    """Wait until a job is final; exit 0 if it ended, 1 on error/canceled, 124 on timeout.

    On a terminal a live bar shows done/total, running, failed and the time waited; a
    warning names any batch group whose ready tasks no live server serves.

    \b
    Example:
      batchjobs wait 12 --timeout 3600 && echo done
    """
    from .waiting import wait_with_progress

    final = wait_with_progress(job_id, timeout=timeout, bar=not quiet and _stderr_is_a_tty(),
                               warn=lambda line: click.echo(line, err=True))
    if final is None:
        click.echo(f"job {job_id} still running after {timeout}s", err=True)
        sys.exit(EXIT_TIMEOUT)
    click.echo(final.value)
    sys.exit(EXIT_OK if final is JobStatus.ENDED else EXIT_FAILED)


def _stderr_is_a_tty() -> bool:
    return click.get_text_stream("stderr").isatty()


@click.command(name="list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@reports_errors
def list_jobs(limit: int, as_json: bool) -> None:
    """List the most recent jobs."""
    echo_rows(api.list_jobs(limit=limit), as_json, lambda j: (
        f"{j['id']:>6}  {j['status']:<10} {j['created_at']}  {j['created_by']:<12} "
        f"{j['description']}" + (f"  (held: {j['hold_reason']})" if j.get("hold_reason")
                                 else "")))



@click.command()
@click.argument("job_id", type=int)
@json_option
@reports_errors
def hold(job_id: int, as_json: bool) -> None:
    """Keep a waiting job from starting (until release). --json prints the job after."""
    from .. import lifecycle

    lifecycle.hold(job_id)
    _changed(job_id, as_json, f"job {job_id} held")


@click.command()
@click.argument("job_id", type=int)
@json_option
@reports_errors
def release(job_id: int, as_json: bool) -> None:
    """Let a held job start (at once if its time has come). --json prints the job after."""
    from .. import lifecycle

    lifecycle.release(job_id)
    _changed(job_id, as_json, f"job {job_id} released")


@click.command()
@click.argument("job_id", type=int)
@json_option
@reports_errors
def cancel(job_id: int, as_json: bool) -> None:
    """Cancel a job: tasks not started are canceled, executing ones stopped.

    --json prints the job after, with ``stopped``: the executing tasks stopped."""
    from .. import lifecycle

    stopped = lifecycle.cancel(job_id)
    _changed(job_id, as_json, f"job {job_id} canceled ({stopped} executing task(s) stopped)",
             stopped=stopped)


@click.command()
@click.argument("job_id", type=int)
@click.option("--failed", is_flag=True,
              help="Only the tasks that ended error, not_run or canceled (and their dependents).")
@json_option
@reports_errors
def rerun(job_id: int, failed: bool, as_json: bool) -> None:
    """Run a finished job again (all of it, or its failed branch); history is kept.

    --json prints the job after, with ``rerun``: how many tasks run again."""
    from .. import lifecycle

    count = lifecycle.rerun(job_id, failed=failed)
    _changed(job_id, as_json, f"job {job_id}: {count} task(s) run again", rerun=count)


def _changed(job_id: int, as_json: bool, line: str, **extra: int) -> None:
    """After a change: the job as ``status --json`` shows it (plus ``extra``), or ``line``."""
    if as_json:
        echo_json({**api.status(job_id), **extra})
    else:
        click.echo(line)


@click.command()
@click.argument("job_id", type=int)
@json_option
@reports_errors
def history(job_id: int, as_json: bool) -> None:
    """List the runs of a job: number, scheduled time, start, end, status; then the
    changes made to it (run-as user reassigned: who, when, from, to).

    --json prints the runs only (as before); the changes are in ``status --json``."""
    rows = api.history(job_id)
    if as_json:
        echo_json(rows)
        return
    changes = api.changes(job_id)
    click.echo(f"{'run':>4}  {'kind':<9} {'scheduled':<21} {'started':<21} {'ended':<21} "
               f"{'status':<9} skipped")
    for r in rows:
        click.echo(f"{r['number']:>4}  {r['kind']:<9} {_t(r['scheduled_at']):<21} "
                   f"{_t(r['started_at']):<21} {_t(r['ended_at']):<21} {r['status']:<9} "
                   f"{_skipped(r)}")
    if changes:
        click.echo("changes:")
    for c in changes:
        click.echo(f"  {_t(c['at'])}  {c['action']} by {c['by']}: {c['from']} -> {c['to']}")


def _skipped(row: dict[str, Any]) -> str:
    """``≥ N`` when the count stopped at its cap (cron), else the exact count."""
    return f"≥ {row['skipped']}" if row.get("skipped_at_least") else str(row["skipped"])


def _t(value: str | None) -> str:
    return value[:19] + "Z" if value else "-"


@click.command(name="alerts")
@click.option("--user", default=None, help="Only this user's alerts.")
@json_option
@reports_errors
def list_alerts(user: str | None, as_json: bool) -> None:
    """List alerts (newest first) with the state of each delivery."""
    from .. import alerts

    rows = alerts.list_alerts(user=user)
    if as_json:
        echo_json(rows)
        return
    for a in rows:
        sent = ", ".join(f"{d['sink']} {d['status']}" for d in a["deliveries"]) or "stored only"
        click.echo(f"{a['id']:>5}  {a['created_at']}  {a['user']:<12} {a['message']}  [{sent}]")


@click.command(name="run-client")
@click.option("--job", "job_id", type=int, default=None, help="Only this job's client tasks.")
@json_option
@reports_errors
def run_client(job_id: int | None, as_json: bool) -> None:
    """Run the ready client tasks here, in the foreground; the jobs then go on."""
    from .. import client

    def starting(claimed: Any) -> None:
        if not as_json:
            click.echo(f"running job {claimed.job_id} task {claimed.name!r} "
                       f"({claimed.process})", err=True)

    if job_id is not None:
        api.job_status(job_id)  # no such job: exit 2, like status
    ran = client.run_client(job_id, on_start=starting)
    if as_json:
        echo_json(ran)
        return
    if not ran:
        click.echo("no client task is ready")
    for r in ran:
        click.echo(f"job {r['job_id']} task {r['task']!r}: {r['status']}"
                   + (f" ({r['error']})" if r["error"] else ""))
    if any(r["status"] != "ended" for r in ran):
        sys.exit(EXIT_FAILED)


