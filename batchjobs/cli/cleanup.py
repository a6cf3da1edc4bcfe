"""``batchjobs cleanup``: delete finished jobs older than an age (:mod:`batchjobs.retention`)."""

from __future__ import annotations

import click

from .common import echo_json, json_option, reports_errors


@click.command()
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Jobs that ended longer ago than this: 30d, 12h, 90m, 45s, 2w.")
@click.option("--status", "statuses", default="ended,error,canceled", show_default=True,
              help="Only jobs that finished with these statuses (comma-separated).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
@reports_errors
def cleanup(older_than: str, statuses: str, dry_run: bool, as_json: bool) -> None:
    """Delete finished jobs that ended more than AGE ago, with every row of them.

    Tasks, conditions, attempts (logs, tracebacks), runs, alerts and deliveries, audit
    rows: in batches of 500 jobs, one transaction each. A recurring job is never deleted;
    the attempts and alerts of its runs that finished before AGE are. Prints the rows
    deleted per table. BATCHJOBS_RETENTION=AGE makes the housekeepers do it daily.

    \b
    Examples:
      batchjobs cleanup --older-than 30d --dry-run
      batchjobs cleanup --older-than 7d --status canceled --json
    """
    from .. import retention

    age = retention.parse_age(older_than)
    chosen = retention.parse_statuses(statuses)
    report = retention.cleanup(age, statuses=chosen, dry_run=dry_run)
    if as_json:
        echo_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} ({', '.join(s.value for s in chosen)}, ended before "
               f"{report.to_json()['cutoff']}):")
    for table, count in report.rows.items():
        click.echo(f"  {table:<17} {count:>9}")
    if report.recurring:
        click.echo(f"  (old attempts of {report.recurring} recurring job(s); their "
                   "definitions and runs kept)")
    if report.kept:
        click.echo(f"  kept, still needed by other jobs: {', '.join(map(str, report.kept))}")
