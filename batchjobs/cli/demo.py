"""``batchjobs demo``: the JOB 1 walkthrough on two real batch servers."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import click

from .. import api, store
from ..errors import BatchJobsError
from ..examples import job1
from ..launch import ServerProcess, stop_all, wait_until_ready
from ..servers import remove_server, set_server
from ..settings import get_settings
from .common import EXIT_FAILED, reports_errors

#: The walkthrough's two servers, under names of this run alone (``demo-HOST-PID-Batch1``):
#: a demo never takes, fences off or fails the work of a real server's name.
DEMO_SERVERS = ("Batch1", "Batch2")


def demo_names() -> list[str]:
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return [f"demo-{host[:40]}-{os.getpid()}-{name}" for name in DEMO_SERVERS]


@click.command()
@click.option("--fail", "fail", metavar="TASK", default=None,
              help='Make this task fail on purpose, e.g. "TASK 2" (its failure branch runs).')
@click.option("--seconds", type=float, default=0.5, show_default=True,
              help="How long each task works.")
@reports_errors
def demo(fail: str | None, seconds: float) -> None:
    """Run the AX walkthrough JOB 1 on two batch servers of its own (one thread each).

    Starts both servers as worker processes on the configured installation (with
    nothing configured: the embedded default, no server needed), submits JOB 1,
    prints the timeline and the final statuses, and stops the servers.

    \b
    Examples:
      batchjobs demo
      batchjobs demo --fail "TASK 2"
    """
    settings = get_settings()
    spec = job1(fail=fail, seconds=seconds)
    store.get_engine(settings)  # create the schema once, before the servers race for it
    click.echo(f"database {settings.safe_database_url()}, broker {settings.safe_broker_url()}")
    log_dir = Path(tempfile.mkdtemp(prefix="batchjobs-demo-"))
    names = demo_names()
    for name in names:   # the walkthrough's capacity
        set_server(name, groups=["default"], threads=1, schedule="")
    servers = [ServerProcess(name, log_path=log_dir / f"{name}.log") for name in names]
    try:
        wait_until_ready(servers, settings=settings)
        click.echo(f"batch servers {' and '.join(names)} are up (1 thread each)")
        job_id = api.submit(spec)
        click.echo(f"submitted job {job_id}: JOB 1" + (f" ({fail} fails on purpose)" if fail
                                                        else ""))
        final = api.wait(job_id, timeout=60 + 10 * seconds)
    finally:
        stop_all(servers)
        _forget(names)
    if final is None:
        click.echo(f"job {job_id} did not finish in time; server logs in {log_dir}", err=True)
        sys.exit(EXIT_FAILED)
    _print_timeline(job_id)
    click.echo(f"job {job_id} {final.value}")


def _forget(names: list[str]) -> None:
    """The demo's server records go with it (a server that did not stop keeps its own)."""
    for name in names:
        try:
            remove_server(name)
        except BatchJobsError:
            pass


def _print_timeline(job_id: int) -> None:
    attempts = api.attempts(job_id)
    data = api.status(job_id)
    origin = datetime.fromisoformat(data["started_at"])

    def offset(value: str | None) -> str:
        if value is None:
            return "-"
        return f"{(datetime.fromisoformat(value) - origin).total_seconds():7.3f}s"

    click.echo("\ntimeline (seconds after the job started)")
    width = max([6, *(len(a["server"]) for a in attempts)])
    click.echo(f"  {'task':<8} {'server':<{width}} {'start':>8} {'end':>8}  outcome")
    for a in attempts:
        click.echo(f"  {a['task']:<8} {a['server']:<{width}} {offset(a['started_at']):>8} "
                   f"{offset(a['ended_at']):>8}  {a['outcome']}")
    click.echo("\nfinal statuses")
    for t in data["tasks"]:
        detail = t["error"] or t["reason"] or ""
        click.echo(f"  {t['name']:<8} {t['status']:<8} {detail}")
