"""A job's status, read with plain SQL on a DB-API connection: what ``batchjobs status``,
the console and the HTTP API show.

``batchjobs status`` is the command an operator types most, often in a loop, so it
reads through the database driver alone: importing SQLAlchemy costs more than the
whole read (0.3 s of a 0.6 s command on the 2-core machine). :func:`status` opens the
driver's own connection (``sqlite3``, or ``psycopg`` for ``postgresql+psycopg://``);
a process that has SQLAlchemy loaded anyway (a server, the console) runs the very same
queries on a connection of its engine's pool (:func:`batchjobs.api.status`). There is
one implementation of the view, :func:`job_view`, whatever the connection.

This is the one module outside :mod:`batchjobs.store` that tells databases apart, and
only to open a connection: SQLite's file path, PostgreSQL's libpq URL. Anything else
(another driver, an in-memory database, a URL with SQLAlchemy options), a database
whose tables are behind this version, or a statement the database refuses is read
through the store instead, which upgrades the schema first or reports the error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import clock, priority
from .errors import DatabaseUnavailable, JobNotFound
from .settings import Settings, get_settings


class Reader:
    """A DB-API connection and how its driver spells a parameter.

    ``begin``: the connection is in autocommit (SQLite as batchjobs opens it), so the
    reads are put in one transaction to see one snapshot of the job."""

    def __init__(self, connection: Any, *, qmark: bool, begin: bool) -> None:
        self._connection = connection
        self._qmark = qmark
        if begin:
            connection.execute("BEGIN")

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """The rows of ``sql`` (parameters written ``?``) as dicts by column name."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql if self._qmark else sql.replace("?", "%s"), params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()


def status(job_id: int, *, settings: Settings | None = None) -> dict[str, Any]:
    """The job's view (:func:`job_view`), read without SQLAlchemy where the driver can."""
    settings = settings or get_settings()
    with _bare(settings) as reader:
        if reader is not None:
            # A refused statement (a table behind this version, a locked file) is read
            # again through the store, which upgrades the schema or reports the error.
            with suppress(*driver_errors()):
                return job_view(reader, job_id)
    from .api import status as through_store

    return through_store(job_id, settings=settings)


def job_view(reader: Reader, job_id: int) -> dict[str, Any]:
    """The job and each task's status, last attempt, error and reason (times in UTC
    ISO-8601): the one implementation of ``status``."""
    found = reader.rows(
        "SELECT id, description, status, created_by, created_at, run_at, started_at, "
        "ended_at, alert, company, run_number, recurrence, hold_reason, priority, "
        "max_concurrency FROM jobs WHERE id = ?", job_id)
    if not found:
        raise JobNotFound(job_id)
    job = found[0]
    tasks = reader.rows(
        "SELECT id, name, status, group_name, process, company, attempts, reason, retries, "
        "retry_delay, retry_backoff, retry_max_delay, retry_on, not_before, priority, rank, "
        "spawned_by, open_children FROM tasks WHERE job_id = ? ORDER BY id", job_id)
    last = {row["task_id"]: row for row in reader.rows(
        "SELECT a.task_id, a.server, a.started_at, a.ended_at, a.error FROM attempts a "
        "JOIN tasks t ON t.id = a.task_id WHERE t.job_id = ? ORDER BY a.task_id, a.number",
        job_id)}
    after = _job_conditions(reader, job_id)
    names = {task["id"]: task["name"] for task in tasks}
    return {
        "id": job["id"], "description": job["description"], "status": job["status"],
        "created_by": job["created_by"], "created_at": _iso(job["created_at"]),
        "run_at": _iso(job["run_at"]), "started_at": _iso(job["started_at"]),
        "ended_at": _iso(job["ended_at"]), "alert": job["alert"], "company": job["company"],
        "run": job["run_number"], "recurrence": _json(job["recurrence"]),
        "hold_reason": job["hold_reason"], "changes": changes(reader, job_id),
        "priority": priority.word(job["priority"]), "max_concurrency": job["max_concurrency"],
        "tasks": [{**_task_view(task, last.get(task["id"]), names),
                   "after_jobs": after.get(task["id"], [])} for task in tasks],
    }


def changes(reader: Reader, job_id: int) -> list[dict[str, Any]]:
    """What was changed on the job by hand (its run-as user reassigned): who, when, from,
    to, oldest first."""
    return [{"at": _iso(row["at"]), "by": row["by"], "action": row["action"],
             "from": row["from_user"], "to": row["to_user"]}
            for row in reader.rows('SELECT "at", "by", action, from_user, to_user FROM job_audit '
                                   'WHERE job_id = ? ORDER BY "at", id', job_id)]


def _task_view(task: dict[str, Any], attempt: dict[str, Any] | None,
               names: dict[int, str]) -> dict[str, Any]:
    return {
        "name": task["name"], "status": task["status"], "group": task["group_name"],
        "process": task["process"], "company": task["company"], "attempts": task["attempts"],
        "server": attempt["server"] if attempt else None,
        "started_at": _iso(attempt["started_at"]) if attempt else None,
        "ended_at": _iso(attempt["ended_at"]) if attempt else None,
        "error": attempt["error"] if attempt else None, "reason": task["reason"],
        "retries": task["retries"], "retry_delay": task["retry_delay"],
        "retry_backoff": task["retry_backoff"], "retry_max_delay": task["retry_max_delay"],
        "retry_on": _json(task["retry_on"]), "not_before": _iso(task["not_before"]),
        "priority": priority.word(task["priority"]),
        "effective_priority": priority.word(task["rank"]),
        # A task that added tasks at run time stays executing until they have all
        # finished: open_children says how many have not; spawned_by names the adder.
        "spawned_by": None if task["spawned_by"] is None else names.get(task["spawned_by"]),
        "open_children": task["open_children"],
    }


def _job_conditions(reader: Reader, job_id: int) -> dict[int, list[dict[str, Any]]]:
    """The job's conditions on other jobs, by task id: ``[{"job": 42, "status": "ended"}]``."""
    found: dict[int, list[dict[str, Any]]] = {}
    for row in reader.rows("SELECT task_id, after_job_id, expected FROM job_conditions "
                           "WHERE job_id = ? ORDER BY id", job_id):
        found.setdefault(int(row["task_id"]), []).append(
            {"job": row["after_job_id"], "status": row["expected"]})
    return found


def _iso(value: datetime | str | None) -> str | None:
    """An instant as the views print it; SQLite hands back the stored UTC text."""
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        value = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return clock.iso(value)


def _json(value: Any) -> Any:
    """A JSON column's value; SQLite hands back the stored text (PostgreSQL never a str
    for the columns read here: a list, an object or NULL)."""
    return json.loads(value) if isinstance(value, str) else value


# -- the driver's own connection ------------------------------------------------------


@contextmanager
def _bare(settings: Settings) -> Iterator[Reader | None]:
    """A reader on the driver's own connection, or None where the store must read."""
    url = settings.database_url
    if url.startswith("sqlite:///") and "?" not in url and url != "sqlite:///:memory:":
        with _sqlite(settings, url.removeprefix("sqlite:///")) as reader:
            yield reader
    elif url.startswith("postgresql+psycopg://"):
        with _postgres(settings, "postgresql://" + url.removeprefix("postgresql+psycopg://")
                       ) as reader:
            yield reader
    else:
        yield None


@contextmanager
def _sqlite(settings: Settings, path: str) -> Iterator[Reader | None]:
    import sqlite3

    if not Path(path).exists():     # a read never leaves an empty database behind
        raise settings.no_database()
    with _connected(settings, lambda: sqlite3.connect(path, timeout=30, isolation_level=None),
                    sqlite3.Error, qmark=True, begin=True) as reader:
        yield reader


@contextmanager
def _postgres(settings: Settings, conninfo: str) -> Iterator[Reader | None]:
    try:
        import psycopg
    except ImportError:             # the store says which extra to install
        yield None
        return
    with _connected(settings, lambda: psycopg.connect(conninfo), psycopg.Error,
                    qmark=False, begin=False) as reader:
        yield reader


@contextmanager
def _connected(settings: Settings, connect: Callable[[], Any], refused: type[Exception], *,
               qmark: bool, begin: bool) -> Iterator[Reader]:
    """A reader on ``connect()``'s connection, closed after; a refused connection is
    :class:`DatabaseUnavailable` (one line, the password masked)."""
    try:
        connection = connect()
    except refused as exc:
        raise DatabaseUnavailable(settings.safe_database_url(), first_line(exc)) from None
    try:
        yield Reader(connection, qmark=qmark, begin=begin)
    finally:
        connection.close()


def driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own error roots (``DatabaseError``), of whichever driver is loaded: a
    process that never imported one cannot have raised its errors."""
    found: list[type[Exception]] = []
    for module in ("sqlite3", "psycopg"):
        loaded = sys.modules.get(module)
        if loaded is not None:
            found.append(loaded.DatabaseError)
    return tuple(found)


def first_line(exc: BaseException) -> str:
    """An error's first line (its type's name if it says nothing), for one-line reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
