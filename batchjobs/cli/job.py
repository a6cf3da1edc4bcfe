"""``batchjobs job``: changes to a job's definition made by hand (its run-as user)."""

from __future__ import annotations

import click

from .common import echo_json, json_option, reports_errors


@click.group()
def job() -> None:
    """Change jobs by hand: who they run as.

    \b
    Examples:
      batchjobs job reassign 12 --to bob
      batchjobs job reassign --from alice --to bob    # every job of alice
    """


@job.command(name="reassign")
@click.argument("job_id", type=int, required=False)
@click.option("--from", "from_user", default=None, help="Every job of this user.")
@click.option("--to", "to_user", required=True, help="The user the jobs run as from now on.")
@json_option
@reports_errors
def reassign(job_id: int | None, from_user: str | None, to_user: str, as_json: bool) -> None:
    """Make job JOB_ID (or every job of --from) run as --to; audited (batchjobs history).

    Tasks that have not run yet run as the new user; attempts already made keep theirs.
    A held job stays held until released."""
    from .. import owners

    if (job_id is None) == (from_user is None):
        raise click.UsageError("give JOB_ID or --from USER (one of them)")
    ids = owners.reassign(to_user=to_user, job_id=job_id, from_user=from_user)
    if as_json:
        echo_json({"to": to_user, "jobs": ids})
        return
    click.echo(f"{len(ids)} job(s) now run as {to_user}"
               + (f": {', '.join(str(i) for i in ids)}" if ids else ""))
