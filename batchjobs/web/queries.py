"""The reads the console needs that :mod:`batchjobs.api` does not offer: a job's owner and
edges, a filtered page of jobs with counts of tasks by status.

Read-only, each in one session; every other read and every change goes through the
public functions of ``api``, ``lifecycle``, ``servers``, ``groups`` and ``alerts``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from .. import clock, store
from ..errors import JobNotFound
from ..models import Attempt, Condition, Job, Task
from ..settings import Settings

#: Largest id a job can have (``jobs.id`` is a 32-bit integer on PostgreSQL): a larger one
#: is not found rather than an error of the database.
MAX_ID = 2**31 - 1
#: Most jobs on one page of the list.
MAX_PER_PAGE = 100


def check_id(job_id: int) -> int:
    """``job_id`` if a job could have it, else :class:`JobNotFound` (404, never 500)."""
    if not 1 <= job_id <= MAX_ID:
        raise JobNotFound(job_id)
    return job_id


def owner(job_id: int, *, settings: Settings | None = None) -> str:
    """Who created the job (to decide whether a ``user`` may see it)."""
    check_id(job_id)
    with store.read_session(settings) as session:
        created_by = session.execute(select(Job.created_by).where(Job.id == job_id)).scalar()
    if created_by is None:
        raise JobNotFound(job_id)
    return created_by


def job_version(job_id: int, *, settings: Settings | None = None) -> tuple[str, str]:
    """The job's creator and a version of what its page shows: status, run, counts of tasks
    by status, attempts started and ended (two statements, whatever the job's size).

    A page that polls sends back the version it has; while nothing changed it gets
    ``304 Not Modified`` and the nine statements of a full render are saved. While an
    attempt runs the version also moves every 5 seconds, so its timeline bar grows.
    """
    check_id(job_id)
    with store.read_session(settings) as session:
        job = session.execute(select(Job.created_by, Job.status, Job.run_number, Job.ended_at)
                              .where(Job.id == job_id)).first()
        if job is None:
            raise JobNotFound(job_id)
        tried = session.execute(
            select(func.count(Attempt.id), func.count(Attempt.ended_at), func.max(Attempt.id))
            .join(Task, Task.id == Attempt.task_id).where(Task.job_id == job_id)).one()
        counts = sorted(session.execute(select(Task.status, func.count())
                                        .where(Task.job_id == job_id)
                                        .group_by(Task.status)).all())
    running = tried[0] != tried[1]
    tick = int(time.time() // 5) if running else 0
    version = hashlib.sha256(repr((job.status, job.run_number, clock.iso(job.ended_at),
                                   tuple(tried), counts, tick)).encode()).hexdigest()[:20]
    return job.created_by, f'"{version}"'


def graph(job_id: int, *, settings: Settings | None = None) -> dict[str, Any]:
    """The job's edges (one per condition, parent -> dependent, with task names) and each
    task's condition type (``all``/``any``)."""
    parent, child = aliased(Task), aliased(Task)
    with store.read_session(settings) as session:
        edges = session.execute(
            select(parent.name, child.name, Condition.expected)
            .join(child, child.id == Condition.task_id)
            .join(parent, parent.id == Condition.parent_id)
            .where(child.job_id == job_id).order_by(Condition.id)).all()
        types = dict(session.execute(select(Task.name, Task.condition_type)
                                     .where(Task.job_id == job_id)).all())
    return {"edges": [{"from": p, "to": c, "expect": e} for p, c, e in edges],
            "condition_types": types}


def jobs_page(*, page: int = 1, per_page: int = 25, status: str | None = None,
              user: str | None = None, description: str | None = None,
              settings: Settings | None = None) -> dict[str, Any]:
    """One page of jobs, newest first, with the counts of their tasks by status."""
    page = max(1, page)
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    where = []
    if status:
        where.append(Job.status == status)
    if user:
        where.append(Job.created_by == user)
    if description:
        escaped = description.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Job.description.ilike(f"%{escaped}%", escape="\\"))
    with store.read_session(settings) as session:
        total = session.execute(select(func.count()).select_from(Job).where(*where)).scalar_one()
        jobs = session.execute(select(Job).where(*where).order_by(Job.id.desc())
                               .offset((page - 1) * per_page).limit(per_page)).scalars().all()
        counts: dict[int, dict[str, int]] = {j.id: {} for j in jobs}
        if jobs:
            for job_id, task_status, n in session.execute(
                    select(Task.job_id, Task.status, func.count())
                    .where(Task.job_id.in_(list(counts))).group_by(Task.job_id, Task.status)):
                counts[job_id][task_status] = n
        rows = [{"id": j.id, "description": j.description, "status": j.status,
                 "run": j.run_number, "created_by": j.created_by,
                 "created_at": clock.iso(j.created_at), "started_at": clock.iso(j.started_at),
                 "ended_at": clock.iso(j.ended_at), "recurring": j.recurrence is not None,
                 "hold_reason": j.hold_reason,
                 "tasks": counts[j.id]} for j in jobs]
    return {"jobs": rows, "page": page, "per_page": per_page, "total": int(total)}
