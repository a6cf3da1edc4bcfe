"""The dependency coordinator: claims, outcomes, and what becomes ready next.

Each function works inside the caller's transaction and returns the
:class:`Dispatch` list of tasks that became ready; the caller publishes them
*after* commit (a task is never on a queue before its ``ready`` row is
visible). Every state change is a guarded ``UPDATE ... WHERE status = ...``,
so a duplicated message or a second report of the same outcome changes
nothing. The work per completion is one row per dependent, whatever the size
of the job.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import clock
from .graph import Decision, decide, holds, job_outcome, unmet_reason
from .models import Attempt, BatchServer, Condition, Job, Task
from .status import JobStatus, Outcome, TaskStatus


@dataclass(frozen=True)
class Dispatch:
    """A task that became ready and must be published on its group's queue."""

    task_id: int
    job_id: int
    name: str
    process: str
    group: str


@dataclass(frozen=True)
class Claim:
    """A task this server now executes, with what the process needs."""

    task_id: int
    job_id: int
    name: str
    process: str
    kwargs: dict[str, Any]
    company: str | None
    user: str
    attempt: int


_DISPATCH_COLUMNS = (Task.id, Task.job_id, Task.name, Task.process, Task.group_name)


def start_job(session: Session, job_id: int) -> list[Dispatch]:
    """Move a waiting job to executing and make its unconditioned tasks ready."""
    now = clock.now()
    started = session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.WAITING)
        .values(status=JobStatus.EXECUTING, started_at=now).returning(Job.id)
    ).first()
    if started is None:
        return []
    rows = session.execute(
        update(Task).where(Task.job_id == job_id, Task.status == TaskStatus.WAITING,
                           Task.n_conditions == 0)
        .values(status=TaskStatus.READY, ready_at=now).returning(*_DISPATCH_COLUMNS)
    ).all()
    return [Dispatch(*row) for row in rows]


def claim(session: Session, task_id: int, job_id: int, server: str) -> Claim | None:
    """Atomically take a ready task for ``server``; None if it is not ready any more."""
    row = session.execute(
        update(Task).where(Task.id == task_id, Task.job_id == job_id,
                           Task.status == TaskStatus.READY)
        .values(status=TaskStatus.EXECUTING, attempts=Task.attempts + 1)
        .returning(Task.name, Task.process, Task.kwargs, Task.company, Task.attempts)
    ).first()
    if row is None:
        return None
    name, process, kwargs, company, attempt = row
    user = session.execute(select(Job.created_by).where(Job.id == job_id)).scalar_one()
    session.add(Attempt(task_id=task_id, number=attempt, server=server, company=company,
                        user=user, started_at=clock.now(), outcome=Outcome.RUNNING))
    return Claim(task_id, job_id, name, process, dict(kwargs or {}), company, user, attempt)


def record_outcome(session: Session, task_id: int, attempt: int, outcome: Outcome,
                   error: str | None = None) -> list[Dispatch]:
    """Record how an attempt ended and decide the task's dependents.

    A failed attempt with retries left makes the task ready again. Recording
    the same attempt twice changes nothing and dispatches nothing.
    """
    now = clock.now()
    recorded = session.execute(
        update(Attempt).where(Attempt.task_id == task_id, Attempt.number == attempt,
                              Attempt.outcome == Outcome.RUNNING)
        .values(outcome=outcome, ended_at=now, error=error).returning(Attempt.id)
    ).first()
    if recorded is None:
        return []
    if outcome is Outcome.ERROR:
        retry = session.execute(
            update(Task).where(Task.id == task_id, Task.status == TaskStatus.EXECUTING,
                               Task.attempts <= Task.retries)
            .values(status=TaskStatus.READY, ready_at=now).returning(*_DISPATCH_COLUMNS)
        ).first()
        if retry is not None:
            return [Dispatch(*retry)]
    final = TaskStatus.ENDED if outcome is Outcome.ENDED else TaskStatus.ERROR
    row = session.execute(
        update(Task).where(Task.id == task_id, Task.status == TaskStatus.EXECUTING)
        .values(status=final).returning(Task.job_id, Task.name, Task.ignore_failure)
    ).first()
    if row is None:
        return []
    job_id, name, ignore_failure = row
    failed = 1 if final is TaskStatus.ERROR and not ignore_failure else 0
    return _propagate(session, job_id, task_id, name, final, failed, now)


def _propagate(session: Session, job_id: int, task_id: int, name: str, status: TaskStatus,
               failed: int, now: datetime) -> list[Dispatch]:
    """Decide the dependents of a finished task, cascading ``not_run``; settle the job."""
    dispatches: list[Dispatch] = []
    finished = 1
    pending: deque[tuple[int, str, TaskStatus]] = deque([(task_id, name, status)])
    while pending:
        parent_id, parent_name, parent_status = pending.popleft()
        conditions = session.execute(
            select(Condition.task_id, Condition.expected).where(Condition.parent_id == parent_id)
        ).all()
        for child_id, expected in conditions:
            held = holds(expected, parent_status)
            child = session.execute(
                update(Task).where(Task.id == child_id)
                .values(met=Task.met + int(held), unmet=Task.unmet + int(not held))
                .returning(Task.status, Task.condition_type, Task.n_conditions, Task.met,
                           Task.unmet, *_DISPATCH_COLUMNS)
            ).one()
            if child.status != TaskStatus.WAITING:
                continue
            decision = decide(child.condition_type, child.n_conditions, child.met, child.unmet)
            if decision is Decision.READY:
                ready = session.execute(
                    update(Task).where(Task.id == child_id, Task.status == TaskStatus.WAITING)
                    .values(status=TaskStatus.READY, ready_at=now).returning(*_DISPATCH_COLUMNS)
                ).first()
                if ready is not None:
                    dispatches.append(Dispatch(*ready))
            elif decision is Decision.NOT_RUN:
                reason = _not_run_reason(session, child_id, child.condition_type, parent_name,
                                         parent_status, expected)
                skipped = session.execute(
                    update(Task).where(Task.id == child_id, Task.status == TaskStatus.WAITING)
                    .values(status=TaskStatus.NOT_RUN, reason=reason).returning(Task.id)
                ).first()
                if skipped is not None:
                    finished += 1
                    pending.append((child_id, child.name, TaskStatus.NOT_RUN))
    _settle_job(session, job_id, finished, failed, now)
    return dispatches


def _not_run_reason(session: Session, task_id: int, condition_type: str, parent_name: str,
                    parent_status: TaskStatus, expected: str) -> str:
    if condition_type == "all":
        return unmet_reason(parent_name, parent_status, expected)
    # any: none can hold; name them all (this reads the task's own conditions only)
    rows = session.execute(
        select(Task.name, Task.status, Condition.expected)
        .join(Condition, Condition.parent_id == Task.id).where(Condition.task_id == task_id)
        .order_by(Condition.id)
    ).all()
    parts = [f"{n!r} is {s}, needs {e}" for n, s, e in rows]
    return "no condition can hold any more: " + "; ".join(parts)


def _settle_job(session: Session, job_id: int, finished: int, failed: int, now: datetime) -> None:
    """Count finished tasks on the job row; the last one decides the job's status."""
    remaining, total_failed = session.execute(
        update(Job).where(Job.id == job_id)
        .values(remaining=Job.remaining - finished, failed=Job.failed + failed)
        .returning(Job.remaining, Job.failed)
    ).one()
    if remaining <= 0:
        session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.EXECUTING)
            .values(status=job_outcome(total_failed), ended_at=now)
        )


def due_jobs(session: Session, limit: int = 100) -> list[int]:
    """Ids of waiting jobs whose start time has come."""
    return list(session.execute(
        select(Job.id).where(Job.status == JobStatus.WAITING, Job.run_at <= clock.now())
        .order_by(Job.run_at).limit(limit)
    ).scalars())


def stale_ready(session: Session, older_than: timedelta, *, group: str,
                limit: int = 1000) -> list[Dispatch]:
    """Ready tasks of ``group`` unclaimed for longer than ``older_than``; their ``ready_at``
    is renewed so that only one caller republishes each."""
    now = clock.now()
    cutoff = now - older_than
    stale = (Task.status == TaskStatus.READY, Task.ready_at < cutoff, Task.group_name == group)
    rows = session.execute(
        update(Task).where(Task.id.in_(select(Task.id).where(*stale).limit(limit)
                                       .scalar_subquery()), *stale)
        .values(ready_at=now).returning(*_DISPATCH_COLUMNS)
    ).all()
    return [Dispatch(*row) for row in rows]


def lost_attempts(session: Session, *, dead_before: datetime | None = None,
                  server: str | None = None, limit: int = 100) -> list[tuple[int, int, str]]:
    """Running attempts of servers whose last heartbeat is older than ``dead_before``, or of
    ``server`` (which has just started, so runs none): ``(task_id, number, server)``."""
    query = (select(Attempt.task_id, Attempt.number, Attempt.server)
             .where(Attempt.outcome == Outcome.RUNNING).limit(limit))
    if server is not None:
        query = query.where(Attempt.server == server)
    if dead_before is not None:
        query = query.join(BatchServer, BatchServer.name == Attempt.server).where(
            BatchServer.heartbeat_at < dead_before)
    return [(task_id, number, name) for task_id, number, name in session.execute(query)]
