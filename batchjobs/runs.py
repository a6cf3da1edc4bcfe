"""Runs of a job: what happens when one starts and when one ends.

A job is one definition with one or more runs (``job_runs``): its first, each
occurrence of its recurrence, each rerun. The job row shows the current run.
When the last task of a run finishes, :func:`end_run` runs in that same
transaction: it closes the run, creates the alert the job asks for, and for a
recurring job schedules the next run at the next occurrence after now, with
the tasks waiting again. Occurrences that passed meanwhile are skipped (and
counted), never replayed as a burst; ``(job_id, number)`` is unique, so one
occurrence makes at most one run whatever races.

Resetting the tasks touches every task of the job, once per run, never per
task event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from . import alerts, clock, counters, wakeup
from .models import Job, JobRun, Task, UTCDateTime
from .recurrence import Recurrence, next_occurrence, skips_are_a_lower_bound
from .settings import Settings
from .status import JobStatus, RunKind, TaskStatus

_run = JobRun.__table__
_job = Job.__table__
_task = Task.__table__
_NOW = bindparam("p_now", type_=UTCDateTime())
_CURRENT = select(_job.c.run_number).where(_job.c.id == bindparam("p_job")).scalar_subquery()

_START_RUN = (update(_run).where(_run.c.job_id == bindparam("p_job"), _run.c.number == _CURRENT)
              .values(status=JobStatus.EXECUTING.value, started_at=_NOW))


def new_run(session: Session, job_id: int, number: int, *, status: JobStatus,
            scheduled_at: datetime | None, kind: RunKind = RunKind.SCHEDULED,
            skipped: int = 0) -> None:
    """Record run ``number`` of a job (unique per job: a second insert fails)."""
    session.connection().execute(insert(_run).values(
        job_id=job_id, number=number, kind=kind, scheduled_at=scheduled_at,
        status=status.value, skipped=skipped))


def start_run(session: Session, job_id: int, now: datetime) -> None:
    """The job's current run starts executing."""
    session.connection().execute(_START_RUN, {"p_job": job_id, "p_now": now})


def set_run_status(session: Session, job_id: int, status: JobStatus, now: datetime) -> None:
    """Close (or hold/release) the job's current run."""
    values: dict[str, Any] = {"status": status.value}
    if status in (JobStatus.ENDED, JobStatus.ERROR, JobStatus.CANCELED):
        values["ended_at"] = now
    session.connection().execute(
        update(_run).where(_run.c.job_id == job_id,
                           _run.c.number == select(_job.c.run_number)
                           .where(_job.c.id == job_id).scalar_subquery()).values(**values))


def end_run(session: Session, job_id: int, status: JobStatus, now: datetime,
            settings: Settings) -> None:
    """The job's current run has ended with ``status``: record it, alert, schedule the next."""
    set_run_status(session, job_id, status, now)
    job = session.execute(select(Job).where(Job.id == job_id)).scalar_one()
    alerts.create_alert(session, job, status, now, settings)
    from .job_conditions import resolve_at_end  # it decides tasks: coordinator's business

    resolve_at_end(session, job_id, status, now, settings)
    if job.recurrence and status is not JobStatus.CANCELED:
        schedule_next(session, job, now)


def schedule_next(session: Session, job: Job, now: datetime) -> datetime | None:
    """Put a recurring job back to ``waiting`` for its next occurrence after ``now``."""
    recurrence = Recurrence.from_json(job.recurrence or {})
    times = dict(session.execute(
        select(JobRun.number, JobRun.scheduled_at).where(
            JobRun.job_id == job.id, JobRun.number.in_([1, job.run_number]))).all())
    anchor = times.get(1) or job.created_at
    previous = times.get(job.run_number) or anchor
    runs_done = session.execute(
        select(func.count()).where(JobRun.job_id == job.id, JobRun.kind == RunKind.SCHEDULED)
    ).scalar_one()
    next_at, skipped = next_occurrence(recurrence, anchor=anchor, previous=previous, now=now,
                                       runs_done=runs_done)
    if next_at is None:
        return None
    # held instead when its owner has been disabled
    from .owners import next_status

    status, reason = next_status(session, job.created_by)
    number = job.run_number + 1
    new_run(session, job.id, number, status=status, scheduled_at=next_at,
            skipped=skipped)
    reset_tasks(session, job.id)
    session.connection().execute(update(_job).where(_job.c.id == job.id).values(
        status=status.value, run_at=next_at, remaining=counters.recount(session, job.id),
        failed=0,
        run_number=number, started_at=None, ended_at=None, hold_reason=reason))
    wakeup.notify(session)   # the housekeepers wake at next_at, not at their next tick
    return next_at


def reset_tasks(session: Session, job_id: int, task_ids: list[int] | None = None) -> None:
    """Tasks wait again for a new run; their attempts (and numbering) are kept. The tasks
    they added at run time in the last run are removed (with their attempts): a task's
    process adds its runtime tasks anew each time it runs."""
    remove_runtime_tasks(session, job_id, task_ids)
    query = update(_task).where(_task.c.job_id == job_id)
    if task_ids is not None:
        query = query.where(_task.c.id.in_(task_ids))
    session.connection().execute(query.values(
        status=TaskStatus.WAITING.value, met=0, unmet=0, reason=None, ready_at=None,
        not_before=None, attempt_base=_task.c.attempts, rank=_task.c.priority,
        open_children=0, failed_children=0))


def remove_runtime_tasks(session: Session, job_id: int, task_ids: list[int] | None) -> None:
    """Delete the tasks added at run time by ``task_ids`` (every one of the job: None),
    and those they added in turn."""
    conn = session.connection()
    spawned = _task.c.spawned_by.is_not(None)
    if task_ids is None:
        conn.execute(delete(_task).where(_task.c.job_id == job_id, spawned))
        return
    parents = list(task_ids)
    while parents:
        parents = list(conn.execute(delete(_task).where(
            _task.c.job_id == job_id, spawned, _task.c.spawned_by.in_(parents))
            .returning(_task.c.id)).scalars())


def history(session: Session, job_id: int) -> list[dict[str, Any]]:
    """Every run of the job, oldest first."""
    rows = session.execute(select(JobRun).where(JobRun.job_id == job_id)
                           .order_by(JobRun.number)).scalars()
    rec = session.execute(select(Job.recurrence).where(Job.id == job_id)).scalar()
    return [{"number": r.number, "kind": r.kind, "scheduled_at": clock.iso(r.scheduled_at),
             "started_at": clock.iso(r.started_at), "ended_at": clock.iso(r.ended_at),
             "status": r.status, "skipped": r.skipped,
             # a cron count stops at MAX_COUNTED_SKIPS: then "skipped" means at least that
             "skipped_at_least": rec is not None and skips_are_a_lower_bound(rec, r.skipped)}
            for r in rows]

