"""``batchjobs worker`` (run a batch server here) and ``batchjobs server`` (manage records)."""

from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from .. import servers
from ..errors import ServerNotFound
from ..schedule import MAX_THREADS
from ..settings import DEFAULT_GROUP
from .common import echo_json, json_option, reports_errors


def _split(groups: str | None) -> list[str] | None:
    if groups is None:
        return None
    return [g.strip() for g in groups.split(",") if g.strip()]


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--server", "name", required=True, envvar="BATCHJOBS_SERVER",
              help="Name of this batch server (recorded on every attempt).")
@click.option("--groups", default=DEFAULT_GROUP, show_default=True, envvar="BATCHJOBS_GROUPS",
              help="Groups of a NEW server (an existing server's record wins).")
@click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=1,
              show_default=True,
              envvar="BATCHJOBS_THREADS", help="Threads of a NEW server.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              envvar="BATCHJOBS_METRICS_PORT",
              help="Serve Prometheus /metrics and /healthz on this port.")
@click.option("--metrics-address", default=None, envvar="BATCHJOBS_METRICS_ADDRESS",
              help="Address of /metrics and /healthz (default 127.0.0.1).")
@click.option("--replace", is_flag=True,
              help="Take the name over from a live process (it is fenced off).")
@click.pass_context
@reports_errors
def worker(ctx: click.Context, name: str, groups: str, threads: int,
           metrics_port: int | None, metrics_address: str | None, replace: bool) -> None:
    """Start batch server NAME: consume its groups' queues, its threads at a time.

    A server with a record (`batchjobs server set`) takes its groups, threads and
    schedule from it and follows changes to it while running; --groups and
    --threads register a server that has no record yet. Options it does not know
    are passed on to `celery worker`. One live process per name: a start under a
    name that a live process holds is refused (exit 2) unless --replace.

    \b
    Examples:
      batchjobs worker --server Batch1 --groups default,BG1 --threads 4
      batchjobs worker --server Batch2 --loglevel WARNING
    """
    from ..app import app
    from ..processes import require_configured
    from ..worker import worker_argv

    require_configured()
    try:
        config = servers.get_server(name)
    except ServerNotFound:
        group_list = _split(groups) or []
        if not group_list:
            raise click.BadParameter("at least one group", param_hint="--groups") from None
        processes = threads
    else:
        given = [p for p in ("groups", "threads")
                 if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE]
        if given:
            click.echo(f"server {name} has a record: its groups and threads come from it "
                       f"(--{' and --'.join(given)} ignored; change it with batchjobs server "
                       "set)", err=True)
        group_list = list(config.groups)
        processes = config.most_threads
    _metrics_environment(metrics_port, metrics_address)
    _take_name(name, replace=replace)
    app.worker_main(argv=worker_argv(name, group_list, processes, ctx.args))


def _metrics_environment(port: int | None, address: str | None) -> None:
    """Hand the metrics options to the worker's ``worker_ready`` handler (batchjobs.metrics)."""
    from ..metrics import ADDRESS_VARIABLE, PORT_VARIABLE

    if port is not None:
        os.environ[PORT_VARIABLE] = str(port)
    if address:
        os.environ[ADDRESS_VARIABLE] = address


def _take_name(name: str, *, replace: bool) -> None:
    """This process becomes server ``name``'s holder (the worker runs in it); its pool
    processes inherit the incarnation."""
    import os

    from .. import incarnation
    from ..settings import get_settings

    os.environ[incarnation.ENV] = incarnation.take(name, replace=replace,
                                                   settings=get_settings())


@click.group()
def server() -> None:
    """Batch servers, managed from one place."""


@server.command(name="set")
@click.argument("name")
@click.option("--groups", default=None, help="Comma-separated groups it serves (replaces).")
@click.option("--threads", type=int, default=None, help="Threads all day (no schedule).")
@click.option("--schedule", default=None,
              help='Threads by time of day, e.g. "08:00-18:00=2,18:00-07:30=20" ("" clears).')
@click.option("--timezone", default=None, help="Time zone of the schedule, e.g. Europe/Oslo.")
@json_option
@reports_errors
def set_server(name: str, groups: str | None, threads: int | None, schedule: str | None,
               timezone: str | None, as_json: bool) -> None:
    """Create or update batch server NAME; a running server follows within seconds.

    \b
    Examples:
      batchjobs server set AOS2 --groups BG1,default --threads 4
      batchjobs server set AOS1 --schedule "08:00-18:00=2,18:00-07:30=20" --timezone Europe/Oslo
    """
    servers.set_server(name, groups=_split(groups), threads=threads, schedule=schedule,
                       timezone=timezone)
    _show(name, as_json)


@server.command(name="list")
@json_option
@reports_errors
def list_servers(as_json: bool) -> None:
    """List servers: groups, threads, schedule, live, threads now, tasks running."""
    rows = servers.list_servers()
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'server':<16} {'live':<5} {'now':>4} {'run':>4}  {'threads':>7}  {'zone':<16} "
               "groups / schedule")
    for r in rows:
        click.echo(f"{r['name']:<16} {'yes' if r['live'] else 'no':<5} {r['threads_now']:>4} "
                   f"{r['running']:>4}  {r['threads']:>7}  {r['timezone']:<16} "
                   f"{','.join(r['groups'])}  {_schedule_text(r['schedule'])}")


@server.command(name="show")
@click.argument("name")
@json_option
@reports_errors
def show_server(name: str, as_json: bool) -> None:
    """Show one server."""
    _show(name, as_json)


@server.command(name="remove")
@click.argument("name")
@reports_errors
def remove_server(name: str) -> None:
    """Remove a server's record (refused while it runs)."""
    servers.remove_server(name)
    click.echo(f"removed {name}")


@server.command(name="preview")
@click.argument("name", required=False)
@click.option("--hours", type=int, default=24, show_default=True,
              help="How far ahead (1-168 hours).")
@json_option
@reports_errors
def preview_capacity(name: str | None, hours: int, as_json: bool) -> None:
    """Threads of each server (or of server NAME) and of each group over the next hours.

    Each line is a change: its local time in the server's zone, its UTC time and the
    threads from then on; the first line is now.

    \b
    Examples:
      batchjobs server preview
      batchjobs server preview AOS1 --hours 48 --json
    """
    from ..capacity import server_preview

    data = server_preview(name, hours=hours)
    if as_json:
        echo_json(data)
        return
    for kind in ("servers", "groups"):
        for row in data[kind]:
            click.echo(f"{kind[:-1]} {row['name']} ({row['timezone']})")
            for change in row["changes"]:
                click.echo(f"  {change['local'][:16].replace('T', ' ')} local  "
                           f"{change['at'][:16].replace('T', ' ')} UTC  "
                           f"{change['threads']:>4} threads")


@server.command(name="health")
@click.argument("name")
@reports_errors
def server_health(name: str) -> None:
    """Exit 0 if server NAME is healthy (fresh heartbeat), else 1; one line says why.

    For a systemd watchdog script or a Kubernetes exec probe; the server's own
    /healthz (worker --metrics-port) also checks its broker connection."""
    from ..health import server_health as verdict

    health = verdict(name)
    click.echo(health.line(), err=not health.healthy)
    sys.exit(0 if health.healthy else 1)


def _show(name: str, as_json: bool) -> None:
    row = servers.show_server(name)
    if as_json:
        echo_json(row)
        return
    for key in ("name", "groups", "threads", "timezone", "schedule", "live", "threads_now",
                "running", "heartbeat_at"):
        value = row[key]
        if key == "groups":
            value = ",".join(value)
        elif key == "schedule":
            value = _schedule_text(value) or "(none: threads all day)"
        click.echo(f"{key:<13} {value}")


def _schedule_text(windows: list[dict]) -> str:
    return ",".join(f"{w['start']}-{w['end']}={w['threads']}" for w in windows)
