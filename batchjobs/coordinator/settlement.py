"""What a finished task decides: its dependents (cascading ``not_run``) and, through
the job's counters, the job's end.

The dependents come from the finished task's own row and each is decided from its
own counters, so the work per completion is one row per dependent, whatever the
size of the job; the job is settled by its counters (:mod:`batchjobs.counters`), never
a scan.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from .. import clock, counters, runs
from ..graph import holds, job_outcome, unmet_reason
from ..models import Condition, Task
from ..queues import Dispatch
from ..settings import Settings
from ..status import ConditionType, JobStatus, TaskStatus
from ..store import statements as sql


def propagate(session: Session, job_id: int, name: str, status: TaskStatus,
              dependents: list[Any], failed: int, now: datetime, settings: Settings, *,
              settled: bool = False, spawned_by: int | None = None, counter: int = 0
              ) -> list[Dispatch]:
    """Decide the dependents of a finished task, cascading ``not_run``; settle the job.

    One statement per dependent (:data:`statements.DECIDE`). ``failed``: 1 if the task
    ended ``error`` without ``ignore_failure``. ``settled``: the task itself is counted on
    the job already. ``spawned_by``: the task that added this one at run time, if any: the
    end (and a failure) is counted on that task instead of the job's ``failed``, and the
    last of its runtime tasks to finish ends it, which decides its own dependents in
    turn (:data:`statements.SETTLE_SPAWNER`). ``counter``: the task's counter on the
    job (``tasks.counter``), the one it is counted down on."""
    conn = session.connection()
    dispatches: list[Dispatch] = []
    finished: Counter[int] = Counter() if settled else Counter({counter: 1})
    job_failed = 0
    pending: deque[tuple[str, TaskStatus, list[Any], int | None, int]] = deque(
        [(name, status, dependents, spawned_by, failed)])
    while pending:
        parent_name, parent_status, children, spawner, failure = pending.popleft()
        for child_id, expected in children or ():
            child = decide(conn, child_id, holds(expected, parent_status),
                           unmet_reason(parent_name, parent_status, expected), now)
            if child is None:
                continue
            if child.status == TaskStatus.READY:
                dispatches += ready_dispatch(child)
            elif child.status == TaskStatus.NOT_RUN:
                finished[child.counter] += 1
                if child.condition_type == ConditionType.ANY:
                    explain_any(session, child_id)
                pending.append((child.name, TaskStatus.NOT_RUN, child.dependents,
                                child.spawned_by, 0))
        if spawner is None:
            job_failed += failure
            continue
        ended = _settle_spawner(session, spawner, parent_name, failure)
        if ended is not None:
            end, its_counter = ended
            finished[its_counter] += 1
            pending.append(end)
    if finished or job_failed:
        settle_job(session, job_id, finished, job_failed, settings)
    return dispatches


def _settle_spawner(session: Session, task_id: int, child: str, failed: int
                    ) -> tuple[tuple[str, TaskStatus, list[Any], int | None, int], int] | None:
    """Count a finished runtime task on the task that added it; that task's own end
    (name, status, dependents, spawner, failure) and its counter on the job when this
    was the last one."""
    conn = session.connection()
    row = conn.execute(sql.SETTLE_SPAWNER, {
        "p_task": task_id, "p_failed": failed,
        "p_reason": f"added task {child!r} ended error"}).first()
    if row is None or row.status not in (TaskStatus.ENDED, TaskStatus.ERROR):
        return None
    status = TaskStatus(row.status)
    if row.failed_children > 1:
        conn.execute(update(sql.task).where(sql.task.c.id == task_id).values(
            reason=f"{row.reason} (and {row.failed_children - 1} more of its added tasks)"))
    failure = int(status is TaskStatus.ERROR and not row.ignore_failure)
    return (row.name, status, row.dependents, row.spawned_by, failure), row.counter


def decide(conn: Any, task_id: int, held: bool, reason: str, now: datetime) -> Any:
    """Count one condition of ``task_id`` (held or not) and decide it from its own
    counters (:data:`statements.DECIDE`): its row, or None if it no longer waited."""
    return conn.execute(sql.DECIDE, {"p_task": task_id, "p_held": int(held),
                                     "p_unheld": int(not held), "p_reason": reason,
                                     "p_now": now}).first()


def ready_dispatch(child: Any) -> list[Dispatch]:
    """What to publish for a task :func:`decide` made ready: nothing for a client task."""
    if child.client:
        return []
    return [Dispatch(child.id, child.job_id, child.name, child.process, child.group_name,
                     timeout=child.timeout, rank=child.rank)]


def explain_any(session: Session, task_id: int) -> None:
    """An ``any`` task became not_run: its reason names every condition (its own rows),
    on tasks and on other jobs."""
    from ..job_conditions import describe_unmet

    parent = aliased(Task)
    rows = session.execute(
        select(parent.name, parent.status, Condition.expected)
        .join(Condition, Condition.parent_id == parent.id).where(Condition.task_id == task_id)
        .order_by(Condition.id)
    ).all()
    parts = [f"{n!r} is {s}, needs {e}" for n, s, e in rows] + describe_unmet(session, task_id)
    session.connection().execute(update(sql.task).where(sql.task.c.id == task_id).values(
        reason="no condition can hold any more: " + "; ".join(parts)))


def settle_job(session: Session, job_id: int, finished: Mapping[int, int], failed: int,
               settings: Settings) -> None:
    """Count finished tasks (how many on each of the job's counters) and failures; when
    a counter reaches 0, the job ends if no task of it is left."""
    if counters.count_down(session, job_id, finished, failed):
        end_settled_job(session, job_id, settings)


def end_job(session: Session, job_id: int, failed: int, now: datetime,
            settings: Settings) -> None:
    """The job's last task has finished: the job (and its run) ends ended|error."""
    status = job_outcome(failed)
    if session.connection().execute(sql.END_JOB, {"p_job": job_id, "p_status": status.value,
                                                  "p_now": now}).first() is not None:
        runs.end_run(session, job_id, status, now, settings)


def end_settled_job(session: Session, job_id: int, settings: Settings) -> bool:
    """End the job if none of its tasks is left to finish; False if some is, or if it
    was ended already.

    The job's row is locked before its counters are summed, in a statement of its own:
    that statement sees every decrement committed before the lock was granted, which is
    how two last tasks on different counters never both miss the end
    (:mod:`batchjobs.counters`)."""
    conn = session.connection()
    row = conn.execute(select(sql.job.c.failed).where(
        sql.job.c.id == job_id, sql.job.c.status == JobStatus.EXECUTING.value)
        .with_for_update()).first()
    if row is None:
        return False
    left: int = conn.execute(select(sql.unfinished(sql.job.c.id))
                        .where(sql.job.c.id == job_id)).scalar_one()
    if left > 0:
        return False
    end_job(session, job_id, row.failed, clock.now(), settings)
    return True


def settled_jobs(session: Session, limit: int = 100) -> list[int]:
    """Executing jobs with no task left to finish: their end was not recorded (the
    process that finished their last task died first)."""
    found: Any = session.scalars(
        select(sql.job.c.id).where(sql.job.c.status == JobStatus.EXECUTING.value,
                                   sql.unfinished(sql.job.c.id) <= 0)
        .limit(limit))
    return [int(i) for i in found]
