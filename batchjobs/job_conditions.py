"""Conditions on other jobs (Slurm's afterok / afternotok / afterany): a task waits for
another job to end ``ended``, ``error`` or either (``finished``), counted on the task's
``met``/``unmet`` like its conditions on tasks, with the same ``all``/``any`` rules.

Each condition is counted once per run of the task's job (``counted_run``), at one of
two moments, both in a transaction that holds the awaited job's row:

* when the task's job starts (:func:`resolve_at_start`, from ``feed.start_job`` and
  ``rerun``): a condition on a job that has finished already is counted at once;
* when the awaited job ends (:func:`resolve_at_end`, from ``runs.end_run``): its
  conditions on tasks of executing jobs are counted; the tasks made ready are
  published after that transaction commits.

The start locks the awaited jobs' rows and the end updates them first, so whichever
comes second sees the other: no condition is missed or counted twice. A job that
recurs is refused as the parent of a condition: between runs it waits again, so no
one outcome of it is "the" outcome. A job may depend only on jobs that exist when it
is submitted, so these conditions never form a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from . import queues
from .errors import InvalidValue, UnknownDependency
from .graph import holds
from .models import Job, JobCondition
from .queues import Dispatch
from .settings import Settings, get_settings
from .status import JOB_FINAL, ConditionType, Expected, JobStatus, TaskStatus

if TYPE_CHECKING:
    from .definition import JobSpec

_cond = JobCondition.__table__
_job = Job.__table__
#: Dispatches of tasks made ready by a job's end, kept on the session until it commits.
_AFTER_COMMIT = "batchjobs.job_conditions.dispatches"

#: A finished job's status as its conditions read it (a canceled job satisfies none).
AS_TASK = {JobStatus.ENDED: TaskStatus.ENDED, JobStatus.ERROR: TaskStatus.ERROR,
           JobStatus.CANCELED: TaskStatus.CANCELED}

_MARK = (update(_cond).where(_cond.c.id == bindparam("p_id"),
                             _cond.c.counted_run != bindparam("p_run"))
         .values(counted_run=bindparam("p_run")).returning(_cond.c.id))


def check_awaited(session: Session, job: JobSpec) -> None:
    """Refuse a condition on a job that does not exist, or that recurs; naming the task
    and the job id (before anything is stored)."""
    wanted = {dep.job for task in job.tasks for dep in task.after_jobs}
    if not wanted:
        return
    found: dict[int, Any] = dict(session.execute(select(Job.id, Job.recurrence)
                                 .where(Job.id.in_(wanted))).all())
    for task in job.tasks:
        for dep in task.after_jobs:
            if dep.job not in found:
                raise UnknownDependency(f"condition on job {dep.job}, which does not exist",
                                        task=task.name, field="depends_on.job", value=dep.job)
            if found[dep.job] is not None:
                raise InvalidValue(
                    f"job {dep.job} recurs: each run ends and the next one waits, so no one "
                    "outcome of it can be waited for; depend on a job that runs once",
                    task=task.name, field="depends_on.job", value=dep.job)


def store_conditions(session: Session, job_id: int, ids: dict[str, int],
                     job: JobSpec) -> None:
    """The job's conditions on other jobs, as rows (in the submit's transaction)."""
    rows = [{"task_id": ids[task.name], "job_id": job_id, "after_job_id": dep.job,
             "expected": dep.status.value, "counted_run": 0}
            for task in job.tasks for dep in task.after_jobs]
    if rows:
        session.connection().execute(insert(_cond), rows)


def resolve_at_start(session: Session, job_id: int, now: datetime,
                     settings: Settings | None) -> list[Dispatch]:
    """The job starts a run: count its conditions on jobs that have finished already
    (their rows locked, so an end racing with this start waits or is seen). Return the
    tasks made ready, to publish after commit. One indexed read for a job without such
    conditions."""
    conn = session.connection()
    rows = conn.execute(
        select(_cond.c.id, _cond.c.task_id, _cond.c.after_job_id, _cond.c.expected,
               _job.c.run_number).join(_job, _job.c.id == _cond.c.job_id)
        .where(_cond.c.job_id == job_id, _cond.c.counted_run != _job.c.run_number)
        .order_by(_cond.c.id)).all()
    if not rows:
        return []
    awaited: dict[int, str] = dict(conn.execute(
        select(_job.c.id, _job.c.status).where(_job.c.id.in_({r.after_job_id for r in rows}))
        .order_by(_job.c.id).with_for_update()).all())
    due = []
    for row in rows:
        status = awaited.get(row.after_job_id)
        if status is None or JobStatus(status) in JOB_FINAL:
            due.append((row.id, row.task_id, row.after_job_id, row.expected,
                        None if status is None else JobStatus(status).value))
    return _count(session, job_id, rows[0].run_number, due, now, settings or get_settings())


def resolve_at_end(session: Session, ended_job_id: int, status: JobStatus, now: datetime,
                   settings: Settings) -> None:
    """Job ``ended_job_id`` has ended with ``status`` (in this transaction): count its
    conditions on tasks of executing jobs; the tasks made ready are published once this
    transaction commits."""
    conn = session.connection()
    rows = conn.execute(
        select(_cond.c.id, _cond.c.task_id, _cond.c.job_id, _job.c.run_number,
               _cond.c.expected)
        .join(_job, _job.c.id == _cond.c.job_id)
        .where(_cond.c.after_job_id == ended_job_id,
               _job.c.status == JobStatus.EXECUTING.value,
               _cond.c.counted_run != _job.c.run_number)
        .order_by(_cond.c.job_id, _cond.c.id)).all()
    by_job: dict[tuple[int, int], list[tuple[int, int, int, str, str | None]]] = {}
    for row in rows:
        by_job.setdefault((row.job_id, row.run_number), []).append(
            (row.id, row.task_id, ended_job_id, row.expected, status.value))
    dispatches: list[Dispatch] = []
    for (job_id, run), due in by_job.items():
        dispatches += _count(session, job_id, run, due, now, settings)
    publish_after_commit(session, dispatches, settings)


def _count(session: Session, job_id: int, run: int,
           due: list[tuple[int, int, int, str, str | None]], now: datetime,
           settings: Settings) -> list[Dispatch]:
    """Count each condition (once per run: marked with ``run``) on its task's counters,
    deciding the task as :data:`statements.DECIDE` does; a task made not_run cascades
    through its own dependents and is settled on the job."""
    from .coordinator.settlement import decide, explain_any, propagate, ready_dispatch

    conn = session.connection()
    dispatches: list[Dispatch] = []
    for condition_id, task_id, after_job_id, expected, status in due:
        if conn.execute(_MARK, {"p_id": condition_id, "p_run": run}).first() is None:
            continue
        parent = AS_TASK[JobStatus(status)] if status is not None else None
        held = parent is not None and holds(expected, parent)
        child = decide(conn, task_id, held, unmet_reason(after_job_id, status, expected), now)
        if child is None:
            continue
        if child.status == TaskStatus.READY:
            dispatches += ready_dispatch(child)
        elif child.status == TaskStatus.NOT_RUN:
            if child.condition_type == ConditionType.ANY:
                explain_any(session, task_id)
            dispatches += propagate(session, job_id, child.name, TaskStatus.NOT_RUN,
                                    child.dependents, 0, now, settings,
                                    spawned_by=child.spawned_by, counter=child.counter)
    return dispatches


def unmet_reason(job_id: int, status: str | None, expected: Expected | str) -> str:
    """Why a condition on a job can no longer hold, in words (the task's ``reason``)."""
    needs = Expected(expected).value
    if status is None:
        return f"condition on job {job_id} can no longer hold: the job no longer exists"
    return (f"condition on job {job_id} can no longer hold: it is {JobStatus(status).value}, "
            f"the condition needs {needs}")


def describe_unmet(session: Session, task_id: int) -> list[str]:
    """Each condition of a task on another job, as ``job N is S, needs E`` (for the
    reason of an ``any`` task none of whose conditions can hold)."""
    rows = session.execute(
        select(_cond.c.after_job_id, _job.c.status, _cond.c.expected)
        .outerjoin(_job, _job.c.id == _cond.c.after_job_id)
        .where(_cond.c.task_id == task_id).order_by(_cond.c.id)).all()
    return [f"job {j} is {s if s is not None else 'gone'}, needs {e}" for j, s, e in rows]


def still_needed(session: Session, job_ids: Iterable[int]) -> set[int]:
    """Those of ``job_ids`` that a task of an unfinished job (waiting, held, executing; a
    recurring job between runs is waiting) still has a condition on: not to be deleted.
    A finished job's conditions keep nothing (rerun, it finds a deleted job's condition
    unmet: "the job no longer exists")."""
    ids = list(job_ids)
    if not ids:
        return set()
    return set(session.execute(
        select(_cond.c.after_job_id).distinct().join(_job, _job.c.id == _cond.c.job_id)
        .where(_cond.c.after_job_id.in_(ids),
               _job.c.status.not_in([s.value for s in JOB_FINAL]))).scalars())


def publish_after_commit(session: Session, dispatches: list[Dispatch],
                         settings: Settings) -> None:
    """Publish ``dispatches`` once the session's transaction commits (never if it rolls
    back): a task is never on a queue before its ``ready`` row is visible."""
    if not dispatches:
        return
    pending: list[Dispatch] | None = session.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = session.info[_AFTER_COMMIT] = []

        def publish(done: Session) -> None:
            queues.publish_or_defer(done.info.pop(_AFTER_COMMIT, []), settings=settings)

        def forget(done: Session) -> None:
            done.info.pop(_AFTER_COMMIT, None)

        event.listen(session, "after_commit", publish, once=True)
        event.listen(session, "after_rollback", forget, once=True)
    pending.extend(dispatches)
