"""Engine, sessions and transactions; the schema applied on first use.

One engine per process and database URL (a forked worker child builds its
own). SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so two
processes that both mean to write queue on the lock instead of failing at
commit; PostgreSQL relies on row locks taken by guarded ``UPDATE`` statements.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from . import fastpath
from .errors import ConfigError
from .settings import Settings, get_settings

_lock = threading.Lock()
_engines: dict[tuple[str, int], Engine] = {}
_sessionmakers: dict[tuple[str, int], sessionmaker[Session]] = {}
_schema_ready: set[tuple[str, int]] = set()

#: The newest migration's revision id; a test checks it matches Alembic's head.
SCHEMA_REVISION = "0005"
#: PostgreSQL advisory-lock key that serialises schema upgrades across processes.
SCHEMA_LOCK_KEY = 0x62617463  # "batc"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers lock at BEGIN so they queue instead of failing at commit;
        # read-only sessions (``read_session``) begin DEFERRED and never block writers.
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'IMMEDIATE')}")


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine of this process for the configured database (schema applied)."""
    settings = settings or get_settings()
    key = (settings.database_url, os.getpid())
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _create_engine(settings)
                _engines[key] = engine
    if key not in _schema_ready:
        ensure_schema(engine, settings)
        _schema_ready.add(key)
    return engine


def _create_engine(settings: Settings) -> Engine:
    url = settings.database_url
    try:
        if settings.is_sqlite:
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _configure_sqlite(engine)
        else:
            # No pre-ping: it costs a round trip per transaction on the hot path; a dropped
            # connection fails one transaction, which the caller retries.
            engine = create_engine(url, pool_size=5, max_overflow=10, pool_recycle=3600)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        raise ConfigError(f"cannot use BATCHJOBS_DATABASE_URL {settings.safe_database_url()}: "
                          f"{exc}", name="BATCHJOBS_DATABASE_URL") from None
    return engine


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
def begin(settings: Settings | None = None, *, one_statement: bool = False,
          ) -> Iterator[Connection]:
    """A Core connection in one transaction, for the hot path (no ORM session to build).

    ``one_statement``: the caller runs a single statement, which is atomic on its own;
    on PostgreSQL it then runs in autocommit, saving the BEGIN and COMMIT round trips,
    on this process's fast-path connection (:mod:`batchjobs.fastpath`)."""
    engine = get_engine(settings)
    if one_statement and engine.dialect.name == "postgresql":
        yield fastpath.connection(engine)  # type: ignore[misc]
        return
    with engine.begin() as conn:
        yield conn


@contextmanager
def read_session(settings: Settings | None = None) -> Iterator[Session]:
    """A session for reads (no commit is needed, but SQLite still takes a snapshot)."""
    engine = get_engine(settings)
    session = session_factory(settings)(bind=engine.execution_options(sqlite_begin="DEFERRED"))
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def allocate_ids(session: Session, table: str, count: int) -> list[int]:
    """Reserve ``count`` primary keys of ``table`` inside the session's transaction, so
    rows that point at each other can be inserted in one batch each.

    PostgreSQL draws them from the table's sequence; SQLite takes the ids after the
    current maximum, safe because ``BEGIN IMMEDIATE`` holds the only write lock.
    """
    if count == 0:
        return []
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        rows = session.execute(text(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
            "FROM generate_series(1, :n)"), {"n": count}).scalars()
        return sorted(rows)
    start = session.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()
    return list(range(start + 1, start + 1 + count))


#: From this many rows on, PostgreSQL inserts go through COPY (several times faster).
COPY_FROM_ROWS = 500


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, else executemany.

    Every row must give the same keys; dict and list values go to JSON columns. A job of
    100,000 tasks is stored in a fraction of the time a multi-row INSERT takes."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql" or len(rows) < COPY_FROM_ROWS:
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(v) if isinstance(v, (dict, list)) else v
                                for v in (row[c] for c in columns)])


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


# -- schema -------------------------------------------------------------------------


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None


def ensure_schema(engine: Engine, settings: Settings) -> None:
    """Apply the migrations if the database is not at head (checked once per process).

    The check compares with :data:`SCHEMA_REVISION` so the common case costs
    one query and never loads Alembic.
    """
    if current_revision(engine) == SCHEMA_REVISION:
        return
    upgrade(engine, settings)


def upgrade(engine: Engine, settings: Settings | None = None) -> str:
    """Bring the schema to head under a cross-process lock; return the head revision."""
    from alembic import command

    settings = settings or get_settings()
    cfg = alembic_config(engine)
    if settings.is_sqlite:
        lock_path = Path(f"{engine.url.database or 'batchjobs.db'}.lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
    else:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK_KEY})
                conn.commit()
    _seed(engine)
    return head_revision(engine)


def _seed(engine: Engine) -> None:
    """The ``default`` batch group always exists."""
    from . import clock
    from .models import BatchGroup
    from .settings import DEFAULT_GROUP

    maker = sessionmaker(engine)
    with maker() as session, session.begin():
        if session.get(BatchGroup, DEFAULT_GROUP) is None:
            session.add(BatchGroup(name=DEFAULT_GROUP, description="The default batch group",
                                   created_at=clock.now()))
