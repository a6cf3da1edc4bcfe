"""``batchjobs group``: batch groups."""

from __future__ import annotations

import click
from sqlalchemy import select

from .. import clock, store
from ..models import BatchGroup
from .common import echo_json, json_option, reports_errors


@click.group()
def group() -> None:
    """Batch groups: which servers may run which tasks."""


@group.command()
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
@reports_errors
def add(name: str, description: str) -> None:
    """Create batch group NAME (or update its description)."""
    with store.transaction() as session:
        existing = session.get(BatchGroup, name)
        if existing is None:
            session.add(BatchGroup(name=name, description=description, created_at=clock.now()))
        else:
            existing.description = description
    click.echo(name)


@group.command(name="list")
@json_option
@reports_errors
def list_groups(as_json: bool) -> None:
    """List batch groups."""
    with store.read_session() as session:
        rows = [{"name": g.name, "description": g.description}
                for g in session.execute(select(BatchGroup).order_by(BatchGroup.name)).scalars()]
    if as_json:
        echo_json(rows)
    else:
        for row in rows:
            click.echo(f"{row['name']:<20} {row['description']}")
