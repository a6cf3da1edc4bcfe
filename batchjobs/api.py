"""Python operations on batch jobs: submit, status, list, wait.

Everything a user does from code goes through here, and the CLI is a thin
shell over these functions.
"""

from __future__ import annotations

import getpass
import time
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from . import clock, queues, store
from .coordinator import start_job
from .definition import JobSpec
from .errors import JobNotFound
from .models import Attempt, BatchGroup, Condition, Job, Task
from .settings import Settings
from .status import JOB_FINAL, JobStatus, TaskStatus

#: Seconds between two looks at the database while waiting for a job.
WAIT_POLL_INTERVAL = 0.05


def current_user() -> str:
    """The OS user of this process: who a job runs as when no user is given."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def submit(job: JobSpec, *, user: str | None = None, hold: bool = False,
           settings: Settings | None = None) -> int:
    """Validate and store ``job`` in one transaction, start it if due; return its id.

    Nothing is stored when validation fails. Tasks without conditions are
    published as soon as the transaction commits.
    """
    user = user or current_user()
    now = clock.now()
    with store.read_session(settings) as session:
        groups = set(session.execute(select(BatchGroup.name)).scalars())
    job.validate(groups=groups)
    with store.transaction(settings) as session:
        status = JobStatus.HOLD if hold else JobStatus.WAITING
        job_id = session.execute(insert(Job).values(
            description=job.description, status=status, alert=job.alert.value,
            company=job.company, created_by=user, created_at=now, run_at=job.run_at,
            task_count=len(job.tasks), remaining=len(job.tasks), failed=0,
        ).returning(Job.id)).scalar_one()
        ids = dict(zip((t.name for t in job.tasks),
                       store.allocate_ids(session, "tasks", len(job.tasks)), strict=True))
        dependents: dict[str, list[list[Any]]] = {t.name: [] for t in job.tasks}
        conditions = []
        for t in job.tasks:
            for d in t.depends_on:
                dependents[d.task].append([ids[t.name], d.status.value])
                conditions.append({"task_id": ids[t.name], "parent_id": ids[d.task],
                                   "expected": d.status.value})
        session.execute(insert(Task), [
            {"id": ids[t.name], "job_id": job_id, "name": t.name, "process": t.process,
             "kwargs": t.kwargs, "group_name": t.group,
             "company": t.company if t.company is not None else job.company,
             "retries": t.retries, "ignore_failure": t.ignore_failure,
             "condition_type": t.condition.value,
             "status": TaskStatus.HOLD if hold else TaskStatus.WAITING,
             "n_conditions": len(t.depends_on), "met": 0, "unmet": 0, "attempts": 0,
             "run_as": user, "dependents": dependents[t.name]}
            for t in job.tasks
        ])
        if conditions:
            session.execute(insert(Condition), conditions)
        dispatches = []
        if not hold and (job.run_at is None or job.run_at <= now):
            dispatches = start_job(session, job_id)
    queues.publish(dispatches)
    return job_id


def status(job_id: int, *, settings: Settings | None = None) -> dict[str, Any]:
    """The job and each task's status, last attempt, error and reason (times in UTC ISO-8601)."""
    with store.read_session(settings) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        tasks = session.execute(select(Task).where(Task.job_id == job_id).order_by(Task.id)
                                ).scalars().all()
        last: dict[int, Attempt] = {}
        for attempt in session.execute(
            select(Attempt).join(Task, Task.id == Attempt.task_id)
            .where(Task.job_id == job_id).order_by(Attempt.task_id, Attempt.number)
        ).scalars():
            last[attempt.task_id] = attempt
        return {
            "id": job.id, "description": job.description, "status": job.status,
            "created_by": job.created_by, "created_at": _iso(job.created_at),
            "run_at": _iso(job.run_at), "started_at": _iso(job.started_at),
            "ended_at": _iso(job.ended_at), "alert": job.alert, "company": job.company,
            "tasks": [_task_status(t, last.get(t.id)) for t in tasks],
        }


def _task_status(task: Task, attempt: Attempt | None) -> dict[str, Any]:
    return {
        "name": task.name, "status": task.status, "group": task.group_name,
        "process": task.process, "company": task.company, "attempts": task.attempts,
        "server": attempt.server if attempt else None,
        "started_at": _iso(attempt.started_at) if attempt else None,
        "ended_at": _iso(attempt.ended_at) if attempt else None,
        "error": attempt.error if attempt else None, "reason": task.reason,
    }


def attempts(job_id: int, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every attempt of every task of the job, oldest first."""
    with store.read_session(settings) as session:
        if session.get(Job, job_id) is None:
            raise JobNotFound(job_id)
        rows = session.execute(
            select(Task.name, Attempt).join(Attempt, Attempt.task_id == Task.id)
            .where(Task.job_id == job_id).order_by(Attempt.started_at, Attempt.id)
        ).all()
        return [{"task": name, "number": a.number, "server": a.server, "company": a.company,
                 "user": a.user, "started_at": _iso(a.started_at), "ended_at": _iso(a.ended_at),
                 "outcome": a.outcome, "error": a.error} for name, a in rows]


def list_jobs(*, limit: int = 100, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The most recent jobs, newest first."""
    with store.read_session(settings) as session:
        jobs = session.execute(select(Job).order_by(Job.id.desc()).limit(limit)).scalars()
        return [{"id": j.id, "description": j.description, "status": j.status,
                 "created_by": j.created_by, "created_at": _iso(j.created_at)} for j in jobs]


def job_status(job_id: int, *, settings: Settings | None = None) -> JobStatus:
    with store.read_session(settings) as session:
        value = session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    if value is None:
        raise JobNotFound(job_id)
    return JobStatus(value)


def wait(job_id: int, *, timeout: float | None = None,
         settings: Settings | None = None) -> JobStatus | None:
    """Block until the job is final and return its status; None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = job_status(job_id, settings=settings)
        if current in JOB_FINAL:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(WAIT_POLL_INTERVAL)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
