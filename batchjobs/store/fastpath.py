"""One-statement steps on PostgreSQL without SQLAlchemy's per-call work.

Every task a batch server runs costs two statements: the claim and, for the usual
success, the recording (``coordinator``). Run through a SQLAlchemy ``Connection``
each pays for a pool checkout, the compiled-cache lookup and parameter and result
processing: 0.2 ms a statement on the development machine, as much as the
statement's own execution. And PostgreSQL re-plans a prepared statement whenever a
custom plan looks cheaper than the generic one; for the success statement of a task
without dependents it always does (an empty ``ANY`` array is constant-false), which
cost another 0.2 ms of planning per task.

So a statement that is atomic on its own (``store.begin(one_statement=True)``) runs
here instead: compiled once per process with SQLAlchemy's own compiler, executed on a
psycopg connection of this process and thread kept in autocommit, as a server-side
prepared statement with a generic plan (``plan_cache_mode = force_generic_plan``:
every hot statement finds its rows by primary key, whatever the parameters) that never
reads a table whole (``enable_seqscan = off``: the plan may be made while the tables are
nearly empty, and must still be right when they hold millions of rows).
Results are psycopg rows that read like SQLAlchemy's (``fetchone``, ``fetchall``,
attribute access by column name). Any database error closes the connection (the next
call opens a new one) and is raised as SQLAlchemy's exception of the same kind, so
callers handle one family of errors.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InvalidRequestError

_local = threading.local()
#: Statements compiled per connection at most. The fast path is for statements built once
#: at import; one built per call would otherwise be kept forever.
MAX_STATEMENTS = 64


class _Compiled:
    """A Core statement compiled for one dialect: its SQL, the defaults of its literal
    parameters and the converters its typed parameters need (``UTCDateTime``)."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise InvalidRequestError("fastpath runs only statements whose SQL is fixed at "
                                      "compile time")
        self.sql = str(compiled)
        self.processors: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            if processor is not None:
                self.processors[name] = processor
        # The literal values (``status = 'ready'``…) are converted once, here: a status
        # word's enum type would otherwise convert each of them on every call.
        self.defaults = {name: self._convert(name, bind.value)
                         for name, bind in compiled.binds.items()}

    def _convert(self, name: str, value: Any) -> Any:
        processor = self.processors.get(name)
        return value if processor is None or value is None else processor(value)

    def parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        params = dict(self.defaults)
        for name, value in given.items():
            params[name] = self._convert(name, value)
        return params


class Connection:
    """This process's and thread's autocommit connection to one PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._raw: Any = None
        self._compiled: dict[int, tuple[Any, _Compiled]] = {}

    def _driver(self) -> Any:
        if self._raw is None or self._raw.closed:
            fairy = self.engine.raw_connection()
            raw: Any = fairy.driver_connection
            fairy.detach()           # ours for good: never handed back to the pool
            raw.autocommit = True
            raw.execute("SET plan_cache_mode = force_generic_plan")
            # A generic plan is made once, maybe while the tables are still nearly empty,
            # when reading them whole looks cheapest; it would then read them whole for
            # good (a 30,000-task job: two scans of ``tasks`` per success, 3 ms each).
            # Every statement here finds its rows by key: never by scanning a table.
            raw.execute("SET enable_seqscan = off")
            from psycopg.rows import namedtuple_row

            raw.row_factory = namedtuple_row
            self._raw = raw
        return self._raw

    def _compile(self, statement: Any) -> _Compiled:
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            if len(self._compiled) >= MAX_STATEMENTS:   # built per call by mistake: bounded
                self._compiled.clear()
            entry = self._compiled[id(statement)] = (statement, _Compiled(statement, self.engine))
        return entry[1]

    def execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        """Run ``statement`` (a Core statement built once, at import) in autocommit; the
        psycopg cursor holds its rows."""
        compiled = self._compile(statement)
        params = compiled.parameters(parameters or {})
        try:
            return self._driver().execute(compiled.sql, params, prepare=True)
        except Exception as exc:
            self.close()
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise DBAPIError.instance(compiled.sql, params, exc, psycopg.Error,
                                          dialect=self.dialect) from exc
            raise

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass


def connection(engine: Engine) -> Connection:
    """The fast-path connection of this process and thread to ``engine``'s database
    (made after a fork anew: a connection is never shared across processes)."""
    cache = _cache()
    conn = cache.get(engine)
    if conn is None:
        conn = cache[engine] = Connection(engine)
    return conn


def _cache() -> dict[Engine, Connection]:
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid = os.getpid()
        _local.connections = {}
    connections: dict[Engine, Connection] = _local.connections
    return connections


def close_all() -> None:
    """Close this thread's fast-path connections (engines reset, tests between schemas)."""
    for conn in _cache().values():
        conn.close()
    _cache().clear()
