"""The schema: Alembic migrations, applied on first use of a database that lacks them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import sessionmaker

from . import steps

#: The newest migration's revision id; a test checks it matches Alembic's head.
SCHEMA_REVISION = "0012"
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if value is None else str(value)
    except (OperationalError, ProgrammingError):
        return None


def ensure_schema(engine: Engine) -> None:
    """Apply the migrations if the database is not at head (checked once per process).

    The check compares with :data:`SCHEMA_REVISION` so the common case costs
    one query and never loads Alembic.
    """
    if current_revision(engine) != SCHEMA_REVISION:
        upgrade(engine)


def upgrade(engine: Engine) -> str:
    """Bring the schema to head under a cross-process lock; return the head revision."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.connect() as conn, steps.of(engine).schema_lock(engine, conn):
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
        _seed(engine)       # under the lock: two processes on an empty database seed once
    return head_revision(engine)


def _seed(engine: Engine) -> None:
    """The ``default`` batch group always exists."""
    from .. import clock
    from ..models import BatchGroup
    from ..settings import DEFAULT_GROUP

    maker = sessionmaker(engine)
    try:
        with maker() as session, session.begin():
            if session.get(BatchGroup, DEFAULT_GROUP) is None:
                session.add(BatchGroup(name=DEFAULT_GROUP,
                                       description="The default batch group",
                                       created_at=clock.now()))
    except IntegrityError:
        pass    # seeded meanwhile by a process that found the schema at head already
