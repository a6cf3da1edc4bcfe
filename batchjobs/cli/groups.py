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


@group.command(name="list")
@json_option
@reports_errors
def list_groups(as_json: bool) -> None:
    """List batch groups with their servers and unfinished tasks."""
    echo_rows(groups.list_groups(), as_json, lambda row: (
        f"{row['name']:<20} servers: {','.join(row['servers']) or '-':<24} "
        f"unfinished tasks: {row['unfinished_tasks']:<6} {row['description']}"))


@group.command()
@click.argument("name")
@reports_errors
def remove(name: str) -> None:
    """Remove batch group NAME (refused while a server or an unfinished task uses it)."""
    groups.remove_group(name)
    click.echo(f"removed {name}")
