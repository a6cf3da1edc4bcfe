"""``batchjobs db upgrade``: apply the schema migrations."""

from __future__ import annotations

import click

from .. import store
from ..settings import get_settings
from .common import reports_errors


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@reports_errors
def upgrade() -> None:
    """Bring the database schema to the newest revision (safe to run twice)."""
    settings = get_settings()
    engine = store.create_engine(settings)
    try:
        head = store.upgrade(engine)
    finally:
        engine.dispose()
    click.echo(f"database {settings.safe_database_url()} at revision {head}")
