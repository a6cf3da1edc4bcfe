"""What an operator does to a job: hold, release, cancel, rerun.

Each operation is one transaction guarded by the job's status, so it either
applies whole or not at all (:class:`InvalidState` says why not), and it
races safely with the servers: a task canceled here is refused by the claim,
an outcome reported after a cancel changes nothing. Executing tasks of a
canceled job are revoked with ``terminate`` after the commit; their attempts
are already recorded ``canceled``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import clock, counters, queues, runs, store, wakeup
from .coordinator import propagate, queue_job, start_job
from .errors import InvalidState, JobNotFound
from .graph import Decision, decide, holds, unmet_reason
from .job_conditions import resolve_at_start
from .models import Attempt, Condition, Job, Task
from .owners import check_owner_enabled
from .queues import Dispatch
from .settings import Settings, get_settings
from .status import JOB_FINAL, JobStatus, Outcome, RunKind, TaskStatus

log = logging.getLogger(__name__)

RERUN_FROM = (TaskStatus.ERROR, TaskStatus.NOT_RUN, TaskStatus.CANCELED)


def _job(session: Session, job_id: int) -> Job:
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar()
    if job is None:
        raise JobNotFound(job_id)
    return job


def hold(job_id: int, *, settings: Settings | None = None) -> None:
    """Keep a waiting job from starting until :func:`release`."""
    with store.transaction(settings) as session:
        job = _job(session, job_id)
        if job.status != JobStatus.WAITING:
            raise InvalidState(job_id, job.status, "only a waiting job can be held"
                               + (" (cancel it instead)" if job.status == JobStatus.EXECUTING
                                  else ""))
        job.status = JobStatus.HOLD
        runs.set_run_status(session, job_id, JobStatus.HOLD, clock.now())


def release(job_id: int, *, settings: Settings | None = None) -> None:
    """A held job waits again, and starts at once if its time has come."""
    settings = settings or get_settings()
    with store.transaction(settings) as session:
        job = _job(session, job_id)
        if job.status != JobStatus.HOLD:
            raise InvalidState(job_id, job.status, "only a held job can be released")
        check_owner_enabled(session, job, "it cannot be released")
        job.status = JobStatus.WAITING
        job.hold_reason = None
        now = clock.now()
        runs.set_run_status(session, job_id, JobStatus.WAITING, now)
        session.flush()
        if job.run_at is None or job.run_at <= now:
            dispatches = start_job(session, job_id, settings.queue_depth, settings)
        else:   # due later: the housekeepers wake at run_at
            dispatches = []
            wakeup.notify(session)
    queues.publish_or_defer(dispatches, settings=settings)


def cancel(job_id: int, *, settings: Settings | None = None) -> int:
    """Cancel a job: tasks not started become ``canceled``, executing ones are revoked and
    end ``canceled``; no dependent starts afterwards. Return how many were executing."""
    settings = settings or get_settings()
    now = clock.now()
    with store.transaction(settings) as session:
        job = _job(session, job_id)
        if job.status in JOB_FINAL:
            raise InvalidState(job_id, job.status, "it has already finished")
        conn = session.connection()
        task = Task.__table__
        conn.execute(update(task).where(
            task.c.job_id == job_id,
            task.c.status.in_([TaskStatus.WAITING.value, TaskStatus.READY.value]))
            .values(status=TaskStatus.CANCELED.value, reason="the job was canceled"))
        executing = [row.id for row in conn.execute(update(task).where(
            task.c.job_id == job_id, task.c.status == TaskStatus.EXECUTING.value)
            .values(status=TaskStatus.CANCELED.value, reason="canceled while executing")
            .returning(task.c.id))]
        messages: list[str] = []
        if executing:
            attempt = Attempt.__table__
            messages = [row.message_id for row in conn.execute(update(attempt).where(
                attempt.c.task_id.in_(executing), attempt.c.outcome == Outcome.RUNNING.value)
                .values(outcome=Outcome.CANCELED.value, ended_at=now,
                        error="canceled while executing")
                .returning(attempt.c.message_id)) if row.message_id]
        job.status = JobStatus.CANCELED
        job.ended_at = now
        job.remaining = 0
        counters.clear(session, job_id)
        session.flush()
        runs.end_run(session, job_id, JobStatus.CANCELED, now, settings)
    if messages:
        from kombu.exceptions import OperationalError

        from .app import app

        try:   # SIGKILL: a pool process ignores SIGTERM while it runs a task (runner.deaf)
            app.control.revoke(messages, terminate=True, signal="SIGKILL")
        except (OperationalError, OSError) as exc:
            log.warning("job %s canceled, but its %d executing task(s) could not be stopped "
                        "(broker unreachable: %s); their outcomes no longer count", job_id,
                        len(messages), exc)
        else:
            log.info("job %s canceled; revoked %d executing task(s)", job_id, len(messages))
    return len(executing)


def rerun(job_id: int, *, failed: bool = False, settings: Settings | None = None) -> int:
    """Run a finished job again: every task, or (``failed``) the tasks that ended
    ``error``, ``not_run`` or ``canceled`` and whatever depends on them. Earlier attempts
    are kept; attempt numbers go on. Return how many tasks run again."""
    settings = settings or get_settings()
    now = clock.now()
    with store.transaction(settings) as session:
        job = _job(session, job_id)
        if job.status not in JOB_FINAL:
            raise InvalidState(job_id, job.status, "only a finished job can be rerun")
        check_owner_enabled(session, job, "it cannot be rerun")
        tasks = {t.id: t for t in session.execute(
            select(Task).where(Task.job_id == job_id)).scalars()}
        seeds = _submitted({t.id for t in tasks.values()
                            if not failed or t.status in RERUN_FROM}, tasks)
        if not seeds:
            raise InvalidState(job_id, job.status, "no task ended error, not_run or canceled")
        chosen = _with_dependents(tasks, seeds)
        runs.reset_tasks(session, job_id, sorted(chosen))
        session.expire_all()   # reload every task in one query, not one per attribute access
        tasks = {t.id: t for t in session.execute(
            select(Task).where(Task.job_id == job_id)).scalars()}
        number = job.run_number + 1
        outside_failed = sum(1 for t in tasks.values() if t.id not in chosen
                             and t.status == TaskStatus.ERROR and not t.ignore_failure
                             and t.spawned_by is None)
        remaining = counters.recount(session, job_id, sorted(chosen))
        session.execute(update(Job).where(Job.id == job_id).values(
            status=JobStatus.EXECUTING, remaining=remaining, failed=outside_failed,
            run_number=number, started_at=now, ended_at=None))
        runs.new_run(session, job_id, number, status=JobStatus.EXECUTING, scheduled_at=now,
                     kind=RunKind.RERUN)
        runs.start_run(session, job_id, now)
        dispatches = _restart(session, job_id, tasks, chosen, now, settings)
        dispatches += resolve_at_start(session, job_id, now, settings)
        dispatches += queue_job(session, job_id, settings.queue_depth)
    queues.publish_or_defer(dispatches, settings=settings)
    return len(chosen)


def _submitted(chosen: set[int], tasks: dict[int, Task]) -> list[int]:
    """The chosen tasks with each runtime task replaced by the submitted task that added
    it (through its own adder, if need be): a runtime task runs again only as its adder
    reruns and adds it anew."""
    seeds: set[int] = set()
    for task_id in chosen:
        adder = tasks[task_id].spawned_by
        while adder is not None:
            task_id, adder = adder, tasks[adder].spawned_by
        seeds.add(task_id)
    return sorted(seeds)


def _with_dependents(tasks: dict[int, Task], seeds: list[int]) -> set[int]:
    chosen: set[int] = set()
    pending = deque(seeds)
    while pending:
        task_id = pending.popleft()
        if task_id in chosen:
            continue
        chosen.add(task_id)
        pending.extend(child for child, _ in tasks[task_id].dependents or ())
    return chosen


def _restart(session: Session, job_id: int, tasks: dict[int, Task], chosen: set[int],
             now: Any, settings: Settings) -> list[Dispatch]:
    """Count the conditions whose parent is not rerun (it keeps its status), then decide
    the rerun tasks those alone settle: ready now, or not_run (cascading)."""
    counts: dict[int, list[int]] = {task_id: [0, 0] for task_id in chosen}
    reasons: dict[int, str] = {}
    for task_id, parent_id, expected in session.execute(
            select(Condition.task_id, Condition.parent_id, Condition.expected)
            .where(Condition.task_id.in_(chosen))).all():
        if parent_id in chosen:
            continue
        parent = tasks[parent_id]
        if holds(expected, parent.status):
            counts[task_id][0] += 1
        else:
            counts[task_id][1] += 1
            reasons.setdefault(task_id, unmet_reason(parent.name, parent.status, expected))
    conn = session.connection()
    table = Task.__table__
    for task_id, (met, unmet) in counts.items():
        if met or unmet:
            conn.execute(update(table).where(table.c.id == task_id).values(met=met, unmet=unmet))
    # Deciding one task may decide others (a not_run cascades), so every change is
    # guarded by ``waiting`` and only a change made here dispatches.
    dispatches: list[Dispatch] = []
    waiting = (table.c.status == TaskStatus.WAITING.value)
    for task_id in sorted(chosen):
        t = tasks[task_id]
        decision = decide(t.condition_type, t.n_conditions, *counts[task_id])
        if decision is Decision.READY:
            # left unqueued: the caller queues as many as a queue is kept at
            conn.execute(update(table).where(table.c.id == task_id, waiting).values(
                status=TaskStatus.READY.value, ready_at=now, queued=False))
        elif decision is Decision.NOT_RUN and conn.execute(
                update(table).where(table.c.id == task_id, waiting).values(
                    status=TaskStatus.NOT_RUN.value, reason=reasons.get(task_id))
                .returning(table.c.id)).first():
                dispatches += propagate(session, job_id, t.name, TaskStatus.NOT_RUN,
                                        t.dependents, 0, now, settings, counter=t.counter)
    return dispatches
