"""``batchjobs group``: batch groups."""

from __future__ import annotations

import click

from .. import groups
from .common import echo_json, echo_rows, json_option, reports_errors


@click.group()
def group() -> None:
    """Batch groups: which servers may run which tasks."""


@group.command()
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
@json_option
@reports_errors
def add(name: str, description: str, as_json: bool) -> None:
    """Create batch group NAME (or update its description).

    --json prints the group as `group list --json` shows it, with ``created``.

    \b
    Example:
      batchjobs group add BG1 --description "month-end posting"
    """
    created = groups.add_group(name, description=description)
    if as_json:
        row = next(g for g in groups.list_groups() if g["name"] == name)
        echo_json({**row, "created": created})
        return
    click.echo(f"{'created' if created else 'updated'} {name}")


@group.command(name="set")
@click.argument("name")
@click.option("--max-concurrency", "max_concurrency", required=True, metavar="N|none",
              help="At most N of its tasks execute at once, on all servers together "
                   "(0 pauses the group; none lifts the cap).")
@json_option
@reports_errors
def set_(name: str, max_concurrency: str, as_json: bool) -> None:
    """Cap or pause batch group NAME, live: no server restarts, executing tasks finish.

    \b
    Examples:
      batchjobs group set BG1 --max-concurrency 4      # at most 4 at once
      batchjobs group set BG1 --max-concurrency 0      # paused
      batchjobs group set BG1 --max-concurrency none   # resumed, no cap
    """
    groups.set_group(name, max_concurrency=max_concurrency)
    row = groups.show_group(name)
    if as_json:
        echo_json(row)
        return
    click.echo(f"{name}: max concurrency {_cap(row['max_concurrency'])}")


@group.command()
@click.argument("name")
@json_option
@reports_errors
def show(name: str, as_json: bool) -> None:
    """Show batch group NAME: servers, tasks, concurrency cap."""
    row = groups.show_group(name)
    if as_json:
        echo_json(row)
        return
    for key, value in (("name", row["name"]), ("description", row["description"]),
                       ("servers", ", ".join(row["servers"]) or "-"),
                       ("unfinished tasks", row["unfinished_tasks"]),
                       ("executing tasks", row["executing_tasks"]),
                       ("max concurrency", _cap(row["max_concurrency"]))):
        click.echo(f"{key + ':':<18} {value}")


def _cap(cap: int | None) -> str:
    return "none" if cap is None else "0 (paused)" if cap == 0 else str(cap)


@group.command(name="list")
@json_option
@reports_errors
def list_groups(as_json: bool) -> None:
    """List batch groups with their servers, unfinished tasks and concurrency caps."""
    echo_rows(groups.list_groups(), as_json, lambda row: (
        f"{row['name']:<20} servers: {','.join(row['servers']) or '-':<24} "
        f"unfinished tasks: {row['unfinished_tasks']:<6} "
        f"max concurrency: {_cap(row['max_concurrency']):<10} {row['description']}"))


@group.command()
@click.argument("name")
@reports_errors
def remove(name: str) -> None:
    """Remove batch group NAME (refused while a server or an unfinished task uses it)."""
    groups.remove_group(name)
    click.echo(f"removed {name}")
