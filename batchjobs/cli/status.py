"""``batchjobs status``: a job and its tasks.

Kept apart from the other job commands so that it loads no more than it reads with: the
database driver, not SQLAlchemy (:mod:`batchjobs.reads`), nor Celery, nor the job-file
parser. Started in a loop by an operator watching a job, it starts in a fraction of the
time the other commands take.
"""

from __future__ import annotations

import click

from .. import reads
from .common import echo_json, json_option, reports_errors


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
    data = reads.status(job_id)
    if as_json:
        echo_json(data)
        return
    click.echo(f"job {data['id']}  {data['description']}  {data['status']}  "
               f"(by {data['created_by']})")
    if data.get("hold_reason"):
        click.echo(f"  held: {data['hold_reason']}")
    if data.get("recurrence"):
        from ..recurrence import Recurrence

        click.echo(f"  recurs: {Recurrence.from_json(data['recurrence']).describe()}, "
                   f"run {data['run']}")
    click.echo(f"  {'task':<20} {'status':<10} {'group':<10} {'server':<12} {'tries':>5}  "
               "detail")
    for t in data["tasks"]:
        detail = t["error"] or t["reason"] or ""
        if t["open_children"]:
            detail = f"waiting for {t['open_children']} task(s) it added"
        elif t["spawned_by"] and not detail:
            detail = f"added by {t['spawned_by']!r}"
        click.echo(f"  {t['name']:<20} {t['status']:<10} {t['group']:<10} "
                   f"{t['server'] or '-':<12} {t['attempts']:>5}  {detail}")
