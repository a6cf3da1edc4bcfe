"""Database steps: every statement or mechanism whose best form differs between
PostgreSQL and SQLite, behind one interface chosen once per engine.

This is the one module that asks which database it talks to (:func:`for_url`, and
:func:`of` for an engine). The store and the coordinator call a :class:`Steps` and
never test the dialect themselves:

=================  ======================================  ==================================
step               PostgreSQL                              SQLite
=================  ======================================  ==================================
engine             pool, no pre-ping                       WAL, ``BEGIN IMMEDIATE`` writers
atomic             the fast-path autocommit connection     a transaction
claim              one statement (CTE: task + attempt)     two statements in that transaction
success at once    one statement, dependents included      none: recorded in a transaction
choose some        ``id = ANY(ARRAY(… SKIP LOCKED))``      a CTE and ``IN`` (one writer)
allocate ids       the table's sequence                    after ``MAX(id)`` (one writer)
insert many        ``COPY`` from 500 rows                  ``executemany``
schema lock        advisory lock                           ``flock`` beside the file
now                the server's ``statement_timestamp()``  this host's clock (one host)
due notifications  ``LISTEN`` / ``pg_notify``              none (housekeepers poll)
=================  ======================================  ==================================
"""

from __future__ import annotations

import fcntl
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Integer,
    String,
    any_,
    bindparam,
    case,
    create_engine,
    event,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from .. import clock
from ..reads import Reader
from ..status import ConditionType, Outcome, TaskStatus
from . import fastpath
from . import statements as sql

#: PostgreSQL advisory-lock key that serialises schema upgrades across processes.
SCHEMA_LOCK_KEY = 0x62617463  # "batc"
#: From this many rows on, PostgreSQL inserts go through COPY (several times faster).
COPY_FROM_ROWS = 500
#: The channel housekeepers listen on for "something is due earlier" (:mod:`batchjobs.wakeup`).
DUE_CHANNEL = "batchjobs_due"


class Executor(Protocol):
    """What runs a prebuilt statement: a SQLAlchemy connection or the fast path's."""

    def execute(self, statement: Any, parameters: Any = None, /) -> Any: ...


class Steps(ABC):
    """The steps of one kind of database."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._chosen: dict[int, tuple[sql.ChooseSome, Any]] = {}

    @abstractmethod
    def create_engine(self, url: str) -> Engine:
        """A new engine for ``url``, configured for this database."""

    def exists(self, url: str) -> bool:
        """Whether the database ``url`` names is there already (a server always is)."""
        return True

    def now(self, conn: Executor) -> datetime:
        """The database's current instant: what instants written by different hosts
        (heartbeats, due times) are compared with, so that a host whose clock is off
        neither starts jobs early nor takes a live server for dead."""
        return clock.now()

    @abstractmethod
    def reader(self, dbapi_connection: Any) -> Reader:
        """The plain-SQL reader (:mod:`batchjobs.reads`) on a DB-API connection of this
        database's pool."""

    @abstractmethod
    def schema_lock(self, engine: Engine, conn: Connection) -> Any:
        """A context manager that serialises schema upgrades across processes."""

    @abstractmethod
    def atomic(self, engine: Engine) -> Any:
        """A context manager yielding an :class:`Executor` on which one step (a claim, a
        success at once) is atomic."""

    @abstractmethod
    def claim(self, conn: Executor, params: dict[str, Any]) -> Any:
        """Take a ready task and insert its running attempt; the claimed columns
        (:data:`statements.CLAIMED_COLUMNS`) or None if the task was not ready."""

    @abstractmethod
    def success_at_once(self, conn: Executor, params: dict[str, Any]) -> list[Any] | None:
        """Record a success and apply it to the dependents in ``p_children`` in one
        step: the rows of :func:`_success_statement`, or None where no such step exists
        (the success is then recorded in a transaction)."""

    def success_and_next(self, conn: Executor, params: dict[str, Any]) -> list[Any] | None:
        """:meth:`success_at_once` and, once it recorded the success, the chain's claim of
        the next task (:meth:`claim_next`, ``p_prev`` being the task that succeeded) in the
        same step: the success's rows, each with the claimed columns prefixed ``next_``
        (None where nothing was claimed); None where no such step exists (the two are
        then done one after the other)."""
        return None

    def claim_in(self, conn: Executor, params: dict[str, Any], statement: Any = sql.CLAIM,
                 ) -> Any:
        """Inside a transaction: ``statement`` (a claim), then the attempt row if it took
        the task; the claimed columns or None."""
        row = conn.execute(statement, params).fetchone()
        if row is not None:
            conn.execute(sql.INSERT_ATTEMPT, {**params, "p_number": row.attempts,
                                              "p_company": row.company, "p_user": row.run_as})
        return row

    def claim_next(self, conn: Executor, params: dict[str, Any]) -> Any:
        """A chain's claim (:data:`statements.CLAIM_NEXT`) and its attempt row, inside a
        transaction: the claimed columns and the task's id, or None."""
        row = conn.execute(sql.CLAIM_NEXT, params).fetchone()
        if row is not None:
            conn.execute(sql.INSERT_ATTEMPT, {**params, "p_task": row.id,
                                              "p_number": row.attempts,
                                              "p_company": row.company, "p_user": row.run_as})
        return row

    def notify_due(self, conn: Executor) -> None:
        """In a transaction: tell the housekeepers at its commit that something may be due
        earlier than they know (nothing where they poll)."""
        return None

    def listener(self, engine: Engine) -> Any:
        """A connection waiting for :meth:`notify_due` (``wait(seconds) -> bool``,
        ``close()``), or None where housekeepers poll instead."""
        return None

    def choose_some(self, spec: sql.ChooseSome) -> Any:
        """``spec`` written for this database, built once per spec."""
        entry = self._chosen.get(id(spec))
        if entry is None or entry[0] is not spec:
            entry = self._chosen[id(spec)] = (spec, self._choose_some(spec))
        return entry[1]

    @abstractmethod
    def _choose_some(self, spec: sql.ChooseSome) -> Any: ...

    @abstractmethod
    def allocate_ids(self, session: Session, table: str, count: int) -> list[int]:
        """Reserve ``count`` primary keys of ``table`` in the session's transaction."""

    def insert_many(self, session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert rows that all give the same keys, in the session's transaction."""
        if rows:
            session.connection().execute(table.insert(), rows)


class PostgreSQL(Steps):
    name = "postgresql"

    def reader(self, dbapi_connection: Any) -> Reader:
        return Reader(dbapi_connection, qmark=False, begin=False)   # psycopg begins itself

    def create_engine(self, url: str) -> Engine:
        # No pre-ping: it costs a round trip per transaction on the hot path; a dropped
        # connection fails one transaction, which the caller retries.
        return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=3600)

    @contextmanager
    def schema_lock(self, engine: Engine, conn: Connection) -> Iterator[None]:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
        conn.commit()
        try:
            yield
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK_KEY})
            conn.commit()

    def now(self, conn: Executor) -> datetime:
        value: datetime = conn.execute(_DATABASE_NOW).scalar_one()
        return value.astimezone(UTC)

    def notify_due(self, conn: Executor) -> None:
        conn.execute(_NOTIFY_DUE)

    def listener(self, engine: Engine) -> Any:
        return _Listener(engine)

    @contextmanager
    def atomic(self, engine: Engine) -> Iterator[Executor]:
        # Every step here is one statement, atomic on its own: autocommit saves the
        # BEGIN and COMMIT round trips (see :mod:`batchjobs.store.fastpath`).
        yield fastpath.connection(engine)

    def claim(self, conn: Executor, params: dict[str, Any]) -> Any:
        return conn.execute(_CLAIM_ONE_STATEMENT, params).fetchone()

    def claim_next(self, conn: Executor, params: dict[str, Any]) -> Any:
        return conn.execute(_CLAIM_NEXT_ONE_STATEMENT, params).fetchone()

    def success_at_once(self, conn: Executor, params: dict[str, Any]) -> list[Any] | None:
        return list(conn.execute(_SUCCESS, params).fetchall())

    def success_and_next(self, conn: Executor, params: dict[str, Any]) -> list[Any] | None:
        return list(conn.execute(_SUCCESS_AND_NEXT, params).fetchall())

    def _choose_some(self, spec: sql.ChooseSome) -> Any:
        # The choice is an InitPlan, run once; the rows are then found by primary key,
        # and nothing else is tested (they are locked, so they still match). Written as
        # ``id IN (SELECT … FROM chosen) AND <where>``, PostgreSQL with statistics taken
        # before a big job was stored joined the chosen ids against every row matching
        # ``where`` (1,000 × 29,000 comparisons, 4 s per feed of a 30,000-task job).
        return (update(sql.task)
                .where(sql.task.c.id == any_(func.array(spec.chosen().scalar_subquery())))
                .values(**spec.values).returning(*sql.DISPATCH_COLUMNS))

    def allocate_ids(self, session: Session, table: str, count: int) -> list[int]:
        if count == 0:
            return []
        rows: Any = session.execute(text(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
            "FROM generate_series(1, :n)"), {"n": count}).scalars()
        return sorted(rows)

    def insert_many(self, session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
        # COPY: a job of 100,000 tasks is stored in a fraction of a multi-row INSERT's time.
        if len(rows) < COPY_FROM_ROWS:
            super().insert_many(session, table, rows)
            return
        conn = session.connection()
        columns = list(rows[0])
        quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
        # JSON columns by the table's types, not by each value's: most are {} or [].
        as_json = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    values = [row[c] for c in columns]
                    for i in as_json:
                        values[i] = _json_text(values[i])
                    copy.write_row(values)


def _json_text(value: Any) -> str | None:
    """A JSON column's value as COPY takes it (None stays NULL)."""
    if value is None:
        return None
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    return json.dumps(value)


_NOTIFY_DUE = text(f"SELECT pg_notify('{DUE_CHANNEL}', '')")


class _Listener:
    """A connection of its own, in autocommit, that has run ``LISTEN`` on the due channel
    (a housekeeper's; never from the pool, which would hand it to others)."""

    def __init__(self, engine: Engine) -> None:
        fairy = engine.raw_connection()
        raw: Any = fairy.driver_connection
        fairy.detach()
        raw.autocommit = True
        raw.execute(f"LISTEN {DUE_CHANNEL}")
        self._raw = raw

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification; True if one (or more) came."""
        got = False
        for _ in self._raw.notifies(timeout=seconds, stop_after=1):
            got = True
        if got:   # drain what came with it: one refresh covers them all
            for _ in self._raw.notifies(timeout=0):
                pass
        return got

    def close(self) -> None:
        try:
            self._raw.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close
            pass


class SQLite(Steps):
    name = "sqlite"

    def reader(self, dbapi_connection: Any) -> Reader:
        return Reader(dbapi_connection, qmark=True, begin=True)     # autocommit: see _on_connect

    def create_engine(self, url: str) -> Engine:
        # The file's folder (BATCHJOBS_HOME) is made here, as the embedded broker makes
        # its own: a home named in the environment but not made yet is where the jobs
        # go, not "unable to open database file". A read never gets here for a
        # database that does not exist (get_engine(create=False) refuses first).
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000",
                           "foreign_keys=ON"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers lock at BEGIN so they queue instead of failing at commit; read-only
            # sessions (``store.read_session``) begin DEFERRED and never block writers.
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    def exists(self, url: str) -> bool:
        database = make_url(url).database
        return not database or database == ":memory:" or Path(database).exists()

    @contextmanager
    def schema_lock(self, engine: Engine, conn: Connection) -> Iterator[None]:
        lock_path = Path(f"{engine.url.database or 'batchjobs.db'}.lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    @contextmanager
    def atomic(self, engine: Engine) -> Iterator[Executor]:
        with engine.begin() as conn:
            yield conn

    def claim(self, conn: Executor, params: dict[str, Any]) -> Any:
        # No data-modifying CTE here: the attempt row follows in the same transaction.
        return self.claim_in(conn, params)

    def success_at_once(self, conn: Executor, params: dict[str, Any]) -> list[Any] | None:
        return None

    def _choose_some(self, spec: sql.ChooseSome) -> Any:
        # One writer at a time and no arrays: a CTE and ``IN``.
        picked = spec.chosen().cte("chosen")
        return (update(sql.task).where(sql.task.c.id.in_(select(picked.c.id)), *spec.where)
                .values(**spec.values).returning(*sql.DISPATCH_COLUMNS))

    def allocate_ids(self, session: Session, table: str, count: int) -> list[int]:
        # Safe because ``BEGIN IMMEDIATE`` holds the only write lock.
        if count == 0:
            return []
        start: int = session.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()
        return list(range(start + 1, start + 1 + count))


_KINDS: dict[str, type[Steps]] = {PostgreSQL.name: PostgreSQL, SQLite.name: SQLite}
_made: dict[str, Steps] = {}


def for_url(url: str) -> Steps:
    """The steps of the database ``url`` names (PostgreSQL or SQLite)."""
    return _of_kind(make_url(url).get_backend_name())


def of(bind: Engine | Connection | Session | Executor) -> Steps:
    """The steps of the database an engine, connection or session talks to."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    dialect: Any = getattr(bind, "dialect", None)
    return _of_kind(dialect.name)


def _of_kind(kind: str) -> Steps:
    steps = _made.get(kind)
    if steps is None:
        if kind not in _KINDS:
            raise ValueError(f"unsupported database {kind!r}: use postgresql or sqlite")
        steps = _made[kind] = _KINDS[kind]()
    return steps


# -- PostgreSQL's one-statement forms -----------------------------------------------------


def _claim_ctes(claim: Any, *, chained: bool) -> tuple[Any, Any]:
    """The claim as a data-modifying CTE and the attempt row it starts as another.

    The attempt is inserted from what the claim's update returned, so a lost race
    inserts nothing. ``chained``: the claim chose the task itself
    (:data:`statements.CLAIM_NEXT`) and returns its id."""
    claimed = claim.cte("claimed")
    task_id = claimed.c.id if chained else bindparam("p_task", type_=Integer())
    attempt = insert(sql.attempt).from_select(
        ["run", "task_id", "number", "server", "company", "user", "started_at", "outcome",
         "message_id", "incarnation"],
        select(sql.CURRENT_RUN, task_id, claimed.c.attempts,
               sql.SERVER, claimed.c.company, claimed.c.run_as,
               sql.NOW, literal(Outcome.RUNNING.value), bindparam("p_message", type_=String()),
               sql.INCARNATION)
    ).returning(sql.attempt.c.id).cte("attempt")
    return claimed, attempt


def _claimed_columns(chained: bool) -> tuple[Any, ...]:
    return (*sql.CLAIMED_COLUMNS, sql.task.c.id) if chained else sql.CLAIMED_COLUMNS


def _claim_cte(claim: Any = sql.CLAIM, *, chained: bool = False) -> Any:
    """The claim and its attempt row in one statement (one round trip)."""
    claimed, attempt = _claim_ctes(claim, chained=chained)
    return (select(*(claimed.c[c.name] for c in _claimed_columns(chained)))
            .add_cte(attempt))


def _success_statement(*, then_next: bool = False) -> Any:
    """A successful attempt, its task, the held condition on the dependents listed in
    ``p_children`` and the task's counter on the job, in one statement.

    Each step reads the previous one's RETURNING, so a second report of the same
    attempt (nothing ``running`` to record) changes nothing at all. The rows are locked
    in the order every recording of an outcome follows (the task, its dependents, then
    the job's counter: :mod:`batchjobs.counters`), so that two completions of one job
    never wait for each other in a circle (PostgreSQL would abort one after a second).
    A dependent gets ``met + 1`` and is ready when that completes its conditions
    (``all``) or at once (``any``); a dependent no longer waiting is left alone. One row
    per dependent decided (or one row with no dependent).

    ``then_next``: the chain's claim of the next task too (:data:`statements.CLAIM_NEXT`,
    only if this statement recorded the success), its columns on every row as
    ``next_<column>``. Every part of one statement sees the same snapshot, so the
    dependents this success readies are not yet the backlog's: they have messages."""
    task, attempt, job = sql.task, sql.attempt, sql.job
    recorded = (update(attempt).where(attempt.c.task_id == bindparam("p_task"),
                                      attempt.c.number == bindparam("p_number"),
                                      attempt.c.outcome == Outcome.RUNNING.value,
                                      sql.reported_by_runner())
                .values(outcome=Outcome.ENDED.value, ended_at=sql.NOW, error=None,
                        log=sql.LOG)
                .returning(attempt.c.task_id).cte("recorded"))
    finished = (update(task).where(task.c.id.in_(select(recorded.c.task_id)),
                                   sql.guard(task.c.status, TaskStatus.EXECUTING.value))
                .values(status=TaskStatus.ENDED.value)
                .returning(task.c.job_id, task.c.name, task.c.dependents, task.c.spawned_by,
                           task.c.counter)
                .cte("finished"))
    met = task.c.met + 1
    ready = or_(task.c.condition_type == ConditionType.ANY.value, met == task.c.n_conditions)
    decided = (update(task).where(
        task.c.id == any_(bindparam("p_children", type_=ARRAY(Integer()))),
        sql.guard(task.c.status, TaskStatus.WAITING.value), exists(select(finished.c.job_id)))
        .values(met=met, status=_when(ready, TaskStatus.READY.value, task.c.status),
                ready_at=_when(ready, sql.NOW, task.c.ready_at),
                queued=_when(ready, True, task.c.queued))
        .returning(task.c.id, task.c.job_id.label("child_job_id"),
                   task.c.name.label("child_name"), task.c.process, task.c.group_name,
                   task.c.client, task.c.status.label("child_status"),
                   task.c.timeout.label("child_timeout"), task.c.rank.label("child_rank"))
        .cte("decided"))
    # The task's counter: the job's own row (counter 0) or one of its job_counters rows,
    # updated once the dependents are: ``decided`` is read first (a one-time filter).
    after_dependents = select(func.count()).select_from(decided).scalar_subquery() >= 0
    on_job = (update(job).where(job.c.id.in_(select(finished.c.job_id)
                                             .where(finished.c.counter == 0)),
                                after_dependents)
              .values(remaining=job.c.remaining - 1).returning(job.c.remaining).cte("on_job"))
    counter = sql.job_counter
    on_counter = (update(counter).where(
        counter.c.job_id.in_(select(finished.c.job_id)),
        counter.c.counter == select(finished.c.counter).scalar_subquery(), after_dependents)
        .values(remaining=counter.c.remaining - 1).returning(counter.c.remaining)
        .cte("on_counter"))
    remaining = func.coalesce(select(on_job.c.remaining).scalar_subquery(),
                              select(on_counter.c.remaining).scalar_subquery()
                              ).label("remaining")
    columns: list[Any] = [
        finished.c.job_id, finished.c.name, finished.c.dependents, remaining,
        finished.c.spawned_by, decided.c.id, decided.c.child_job_id, decided.c.child_name,
        decided.c.process, decided.c.group_name, decided.c.client, decided.c.child_status,
        decided.c.child_timeout, decided.c.child_rank]
    joined = finished.outerjoin(decided, true())
    if not then_next:
        return select(*columns).select_from(joined)
    claimed, started = _claim_ctes(
        sql.CLAIM_NEXT.where(exists(select(finished.c.job_id))), chained=True)
    columns += [claimed.c[c.name].label(f"next_{c.name}") for c in _claimed_columns(True)]
    return (select(*columns).select_from(joined.outerjoin(claimed, true()))
            .add_cte(started))


def _when(condition: Any, then: Any, otherwise: Any) -> Any:
    return case((condition, then), else_=otherwise)


_CLAIM_ONE_STATEMENT = _claim_cte()
_CLAIM_NEXT_ONE_STATEMENT = _claim_cte(sql.CLAIM_NEXT, chained=True)
#: ``statement_timestamp()``: the instant the statement began on the server (``now()`` would
#: be the start of a transaction that may have begun a while ago).
_DATABASE_NOW = select(func.statement_timestamp())
_SUCCESS = _success_statement()
_SUCCESS_AND_NEXT = _success_statement(then_next=True)
