"""``batchjobs worker``: run this machine as a batch server (a Celery worker)."""

from __future__ import annotations

import click

from ..settings import DEFAULT_GROUP
from .common import reports_errors


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--server", "name", required=True, envvar="BATCHJOBS_SERVER",
              help="Name of this batch server (recorded on every attempt).")
@click.option("--groups", default=DEFAULT_GROUP, show_default=True, envvar="BATCHJOBS_GROUPS",
              help="Comma-separated batch groups this server serves.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              envvar="BATCHJOBS_THREADS", help="Tasks run at the same time.")
@click.pass_context
@reports_errors
def worker(ctx: click.Context, name: str, groups: str, threads: int) -> None:
    """Start batch server NAME: consume the queues of its groups, THREADS tasks at a time.

    Options it does not know are passed on to `celery worker`.

    \b
    Examples:
      batchjobs worker --server Batch1 --groups default,BG1 --threads 4
      batchjobs worker --server Batch2 --loglevel WARNING
    """
    from ..app import app
    from ..servers import worker_argv

    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    if not group_list:
        raise click.BadParameter("at least one group", param_hint="--groups")
    app.worker_main(argv=worker_argv(name, group_list, threads, ctx.args))
