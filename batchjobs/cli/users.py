"""``user add`` and ``user list``: the users jobs run as, and their alert email."""

from __future__ import annotations

import click

from .. import users
from .common import echo_json, json_option, reports_errors


@click.group()
def user() -> None:
    """Users jobs run as (their email receives alerts)."""


@user.command(name="add")
@click.argument("name")
@click.option("--email", default=None, help="Where this user's alerts are sent.")
@reports_errors
def add(name: str, email: str | None) -> None:
    """Add user NAME (or change their email)."""
    row = users.add_user(name, email=email)
    click.echo(f"user {row['name']} <{row['email'] or 'no email'}>")


@user.command(name="list")
@json_option
@reports_errors
def list_users(as_json: bool) -> None:
    """List users."""
    rows = users.list_users()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<20} {r['email'] or '-'}")
