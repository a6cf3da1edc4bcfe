"""Engine, sessions and transactions, with the schema applied on first use.

One engine per process and database URL (a forked worker child builds its own). How
each database is driven (SQLite's WAL and ``BEGIN IMMEDIATE``, PostgreSQL's fast
path, bulk inserts, id allocation) is :mod:`batchjobs.store.steps`' business; this
module only hands out connections in transactions::

    store/
    ├── __init__.py    engines, transactions, read sessions, atomic steps
    ├── schema.py      Alembic migrations: head, upgrade on first use
    ├── steps.py       what differs between PostgreSQL and SQLite (the one seam)
    ├── statements.py  the hot path's prebuilt SQL
    └── fastpath.py    PostgreSQL one-statement steps on an autocommit connection
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, MissingDriver
from ..reads import Reader
from ..settings import Settings, get_settings
from . import fastpath, steps
from .schema import SCHEMA_REVISION, current_revision, ensure_schema, head_revision, upgrade
from .steps import Executor, Steps

__all__ = ["SCHEMA_REVISION", "Executor", "Steps", "allocate_ids", "atomic", "create_engine",
           "current_revision", "get_engine", "head_revision", "insert_many", "now", "read_session",
           "reader", "reset_engines", "session_factory", "transaction", "upgrade"]

_lock = threading.Lock()
_engines: dict[tuple[str, int], Engine] = {}
_sessionmakers: dict[tuple[str, int], sessionmaker[Session]] = {}
_schema_ready: set[tuple[str, int]] = set()


def get_engine(settings: Settings | None = None, *, create: bool = True) -> Engine:
    """The engine of this process for the configured database (schema applied).

    ``create=False`` (reads): a database file that does not exist yet is not made, so a
    command that only reads, run in the wrong folder, says where it looked instead of
    leaving an empty database there."""
    settings = settings or get_settings()
    key = (settings.database_url, os.getpid())
    engine = _engines.get(key)
    if engine is None and not create and not steps.for_url(settings.database_url).exists(
            settings.database_url):
        raise settings.no_database()
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = create_engine(settings)
                _engines[key] = engine
    if key not in _schema_ready:
        ensure_schema(engine)
        _schema_ready.add(key)
    return engine


def create_engine(settings: Settings) -> Engine:
    """A new engine for the settings' database, not cached and with no schema check."""
    try:
        return steps.for_url(settings.database_url).create_engine(settings.database_url)
    except ImportError as exc:      # the URL's driver is not installed: say which extra
        missing = MissingDriver.from_import_error(exc)
        if missing is None:
            raise
        raise missing from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        raise ConfigError(f"cannot use BATCHJOBS_DATABASE_URL {settings.safe_database_url()}: "
                          f"{exc}", name="BATCHJOBS_DATABASE_URL") from None


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    settings = settings or get_settings()
    key = (settings.database_url, os.getpid())
    maker = _sessionmakers.get(key)
    if maker is None:
        maker = sessionmaker(get_engine(settings), expire_on_commit=False)
        _sessionmakers[key] = maker
    return maker


@contextmanager
def transaction(settings: Settings | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    session = session_factory(settings)()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


@contextmanager
def atomic(settings: Settings | None = None) -> Iterator[tuple[Steps, Executor]]:
    """The database's steps and a connection on which one of them (a claim, a success
    at once) is atomic: the fast path's autocommit connection on PostgreSQL, a
    transaction on SQLite."""
    engine = get_engine(settings)
    kind = steps.of(engine)
    with kind.atomic(engine) as conn:
        yield kind, conn


@contextmanager
def read_session(settings: Settings | None = None, *, create: bool = False,
                 ) -> Iterator[Session]:
    """A session for reads (no commit is needed, but SQLite still takes a snapshot).

    A database that does not exist is not created (:func:`get_engine`), unless
    ``create``: the read that starts a write (a submit reads the groups first)."""
    engine = get_engine(settings, create=create)
    # ``sqlite_begin``: SQLite's reads begin DEFERRED and never block a writer (other
    # databases ignore the option).
    session = session_factory(settings)(bind=engine.execution_options(sqlite_begin="DEFERRED"))
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@contextmanager
def reader(settings: Settings | None = None) -> Iterator[Reader]:
    """A plain-SQL reader (:mod:`batchjobs.reads`) on a DB-API connection of the engine's
    pool, schema applied; a database that does not exist is not created."""
    engine = get_engine(settings, create=False)
    connection = engine.raw_connection()
    try:
        yield steps.of(engine).reader(connection)
    finally:
        connection.rollback()
        connection.close()


def now(session: Session) -> datetime:
    """The database's clock: what every comparison of instants written by different hosts
    uses (due jobs, heartbeats, server timeouts)."""
    return steps.of(session).now(session.connection())


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """Reserve ``count`` primary keys of ``table`` inside the session's transaction, so
    rows that point at each other can be inserted in one batch each."""
    return steps.of(session).allocate_ids(session, table, count)


def insert_many(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows (all with the same keys) in the session's transaction; dict and
    list values go to JSON columns."""
    steps.of(session).insert_many(session, table, rows)


def reset_engines() -> None:
    """Forget every engine (after a fork, or between tests)."""
    with _lock:
        for (_, pid), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()
        _sessionmakers.clear()
        fastpath.close_all()
        _schema_ready.clear()
