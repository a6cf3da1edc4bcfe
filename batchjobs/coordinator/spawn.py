"""Storing the tasks a process added at run time (``ctx.add_task``) with its success.

The attempt's success, the tasks it added (rows of the same job, in its current run,
``spawned_by`` the adding task), their conditions, the adding task's count of open
children and the job's ``remaining`` counter are one transaction: the added tasks exist
exactly when the success does. The adding task stays ``executing`` and is not counted
as finished on the job, so the job cannot end while one of them remains; the last of
them to finish ends it (:func:`batchjobs.coordinator.settlement.propagate`).

Rows are built and inserted as a submit stores a job (ids reserved in one call, one
``insert_many``: COPY on PostgreSQL from 500 rows), and the ready ones are queued up to
the queue depth like a starting job's (housekeepers feed the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, bindparam, select, update
from sqlalchemy.orm import Session

from .. import store
from ..errors import DuplicateTask
from ..models import SPAWNED, Condition, Task
from ..processes import get_process
from ..queues import Dispatch
from ..settings import Settings
from ..status import Outcome, TaskStatus
from ..store import statements as sql
from .feed import queue_job

if TYPE_CHECKING:
    from ..definition import TaskSpec

_task, _job = sql.task, sql.job
_OPEN = (update(_task).where(_task.c.id == bindparam("p_task"),
                             sql.guard(_task.c.status, TaskStatus.EXECUTING.value),
                             _task.c.open_children == 0)
         .values(open_children=bindparam("p_count", type_=Integer()), failed_children=0)
         .returning(_task.c.job_id, _task.c.run_as, _task.c.priority))
_ADD_REMAINING = (update(_job).where(_job.c.id == bindparam("p_job"))
                  .values(remaining=_job.c.remaining + bindparam("p_count", type_=Integer())))


def record_with_children(session: Session, task_id: int, attempt: int,
                         added: Sequence[TaskSpec], now: datetime, settings: Settings,
                         detail: dict[str, str | None]) -> list[Dispatch]:
    """Record a success whose process added ``added``; return the added tasks to publish.

    Raises :class:`DuplicateTask` (before anything is written) when another task of the
    job took one of the names since the process checked them: the caller records the
    attempt as failed with that reason instead. Recording the same attempt twice changes
    nothing."""
    conn = session.connection()
    job_id = conn.execute(select(_task.c.job_id).where(_task.c.id == task_id)).scalar()
    if job_id is None:
        return []
    # The job's row, locked: adders of one job store one after the other, so the names
    # checked here are still free when they are inserted.
    conn.execute(select(_job.c.id).where(_job.c.id == job_id).with_for_update())
    _check_names_free(conn, job_id, [t.name for t in added])
    if conn.execute(sql.RECORD_ATTEMPT, {
            "p_task": task_id, "p_number": attempt, "p_now": now,
            "p_outcome": Outcome.ENDED.value, "p_error": None, "p_traceback": None,
            "p_log": detail["p_log"], "p_incarnation": detail["p_incarnation"]}).first() is None:
        return []
    parent = conn.execute(_OPEN, {"p_task": task_id, "p_count": len(added)}).first()
    if parent is None:
        return []
    _insert(session, job_id, task_id, parent.run_as, parent.priority, added, now)
    conn.execute(_ADD_REMAINING, {"p_job": job_id, "p_count": len(added)})
    return queue_job(session, job_id, settings.queue_depth)


def _check_names_free(conn: Any, job_id: int, names: list[str]) -> None:
    """The process checked the names against the job as it was at its first ``add_task``;
    only other runtime tasks can have been added since (a submitted job's own tasks never
    change), so only theirs are read."""
    taken = set(conn.execute(select(_task.c.name).where(
        _task.c.job_id == job_id, SPAWNED)).scalars())
    clash = next((name for name in names if name in taken), None) if taken else None
    if clash is not None:
        raise DuplicateTask("the job has a task of this name already (added meanwhile by "
                            "another task)", task=clash, field="name", value=clash)


def _insert(session: Session, job_id: int, parent_id: int, run_as: str, priority: int,
            added: Sequence[TaskSpec], now: datetime) -> None:
    """The added tasks' rows: they run as the adder's user, at the adder's declared
    priority (the work it split keeps its place against other jobs)."""
    ids = dict(zip((t.name for t in added), store.allocate_ids(session, "tasks", len(added)),
                   strict=True))
    dependents: dict[str, list[list[Any]]] = {t.name: [] for t in added}
    conditions = []
    for t in added:
        for d in t.depends_on:
            dependents[d.task].append([ids[t.name], d.status.value])
            conditions.append({"task_id": ids[t.name], "parent_id": ids[d.task],
                               "expected": d.status.value})
    clients = {name: get_process(name).client for name in {t.process for t in added}}
    store.insert_many(session, Task.__table__, [
        {"id": ids[t.name], "job_id": job_id, "name": t.name, "process": t.process,
         "kwargs": t.kwargs, "group_name": t.group, "company": t.company,
         "retries": t.retries, "ignore_failure": t.ignore_failure,
         "condition_type": t.condition.value,
         "status": TaskStatus.WAITING if t.depends_on else TaskStatus.READY,
         "ready_at": None if t.depends_on else now, "queued": False,
         "n_conditions": len(t.depends_on), "met": 0, "unmet": 0, "attempts": 0,
         "attempt_base": 0, "client": clients[t.process], "timeout": t.timeout,
         "run_as": run_as, "dependents": dependents[t.name], "spawned_by": parent_id,
         "open_children": 0, "failed_children": 0, "priority": priority, "rank": priority}
        for t in added
    ])
    if conditions:
        store.insert_many(session, Condition.__table__, conditions)
