"""Concurrency caps: at most N tasks of a job (``max_concurrency``) or of a batch group
(``group set --max-concurrency``; 0 pauses it) execute at once, across all servers.

The cap is kept by the claim. A task without a cap is claimed by the hot path's one
statement, which refuses a capped one (:data:`statements.CLAIM`); the capped claim
(:func:`claim_capped`) then locks the group's row and the job's row, in that order,
counts what executes, and claims or refuses in the same transaction: two servers
claiming at once are serialised by the locks, so the cap is exact.

A refused task stays ready and becomes unqueued (its message is consumed); it is fed
again when a slot frees: by the server that ends a task of the capped job or group
(:func:`feed_freed`, under the same locks, so a refusal committed meanwhile is seen),
and by every housekeeper's feed, which honours the caps
(:func:`batchjobs.coordinator.feed.next_ready`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import store
from ..models import IN_FLIGHT
from ..queues import Dispatch
from ..settings import Settings
from ..status import JobStatus, TaskStatus
from ..store import statements as sql
from ..store import steps

log = logging.getLogger(__name__)

task, job, group = sql.task, sql.job, sql.batch_group


def claim_capped(params: dict[str, Any], settings: Settings) -> tuple[Any, str] | None:
    """The claim of a task the hot path refused: ``(claimed row, group)`` if the task is
    ready and its job and group are below their caps (or have none any more); None if it
    is not ready, or is refused (then left ready and unqueued, to be fed again)."""
    with store.transaction(settings) as session:
        conn = session.connection()
        found = conn.execute(select(task.c.group_name).where(
            task.c.id == params["p_task"], sql.guard(task.c.job_id, params["p_job"]),
            sql.guard(task.c.status, TaskStatus.READY.value))).first()
        if found is None:
            return None
        group_name = found.group_name
        group_cap, job_cap = lock_caps(session, group_name, params["p_job"])
        full = ("group" if group_cap is not None
                and executing(session, group=group_name) >= group_cap
                else "job" if job_cap is not None
                and executing(session, job=params["p_job"]) >= job_cap else None)
        if full is not None:
            conn.execute(sql.UNQUEUE, {"p_task": params["p_task"]})
            log.info("task %s of job %s refused: its %s is at its concurrency cap; fed again "
                     "when a slot frees", params["p_task"], params["p_job"], full)
            return None
        row = steps.of(session).claim_in(conn, params, sql.CLAIM_CAPPED)
        return None if row is None else (row, group_name)


def lock_caps(session: Session, group_name: str, job_id: int) -> tuple[int | None, int | None]:
    """The caps of a group and a job, their rows locked in that order (every locker takes
    the group first), until the transaction ends."""
    conn = session.connection()
    group_cap = conn.execute(select(group.c.max_concurrency).where(group.c.name == group_name)
                             .with_for_update()).scalar()
    job_cap = conn.execute(select(job.c.max_concurrency).where(job.c.id == job_id)
                           .with_for_update()).scalar()
    return group_cap, job_cap


def executing(session: Session, *, group: str | None = None, job: int | None = None) -> int:
    """Tasks of a group or a job executing now (read through the in-flight index)."""
    query = select(func.count()).select_from(task).where(
        IN_FLIGHT, task.c.status == TaskStatus.EXECUTING.value)
    query = query.where(task.c.group_name == group) if group is not None \
        else query.where(task.c.job_id == job)
    return int(session.connection().execute(query).scalar_one())


def in_flight(session: Session, *, group: str | None = None,
              jobs: list[int] | None = None) -> dict[Any, int]:
    """Tasks executing or with a message on the broker, of a group (``{group: n}``) or
    of each job in ``jobs`` (``{job: n}``)."""
    if group is not None:
        count = session.connection().execute(select(func.count()).select_from(task).where(
            IN_FLIGHT, task.c.group_name == group)).scalar_one()
        return {group: int(count)}
    rows = session.connection().execute(
        select(task.c.job_id, func.count()).where(IN_FLIGHT, task.c.job_id.in_(jobs or []))
        .group_by(task.c.job_id)).all()
    return {int(row[0]): int(row[1]) for row in rows}


class Slots:
    """Free slots of the caps a feed meets, read once per feed: taking a task of a capped
    job or group uses one of its slots. A job or group without a cap has no limit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._groups: dict[str, int | None] = {}
        capped: dict[int, int] = dict(session.connection().execute(
            select(job.c.id, job.c.max_concurrency).where(
                job.c.status == JobStatus.EXECUTING.value,
                job.c.max_concurrency.is_not(None))).all())
        counts = in_flight(session, jobs=list(capped)) if capped else {}
        #: Free slots of each executing capped job.
        self.jobs: dict[int, int] = {j: cap - counts.get(j, 0) for j, cap in capped.items()}

    def any_capped_group(self) -> bool:
        return self.session.connection().execute(
            select(group.c.name).where(group.c.max_concurrency.is_not(None)).limit(1)
        ).first() is not None

    def group(self, name: str) -> int | None:
        """Free slots of a group; None if it has no cap."""
        if name not in self._groups:
            cap = self.session.connection().execute(
                select(group.c.max_concurrency).where(group.c.name == name)).scalar()
            self._groups[name] = None if cap is None else \
                cap - in_flight(self.session, group=name)[name]
        return self._groups[name]

    def full_jobs(self) -> list[int]:
        return [j for j, free in self.jobs.items() if free <= 0]

    def full_groups(self) -> list[str]:
        return [g for g, free in self._groups.items() if free is not None and free <= 0]

    def take(self, job_id: int, group_name: str) -> bool:
        """Use a slot of the task's job and group if both have one (or no cap)."""
        job_free = self.jobs.get(job_id)
        group_free = self.group(group_name)
        if (job_free is not None and job_free <= 0) or (group_free is not None
                                                        and group_free <= 0):
            return False
        if job_free is not None:
            self.jobs[job_id] = job_free - 1
        if group_free is not None:
            self._groups[group_name] = group_free - 1
        return True


def feed_freed(job_id: int, group_name: str, settings: Settings) -> list[Dispatch]:
    """After a task of a capped job or group ended: the next ready tasks of that job and
    of that group, as many as their caps now allow, marked queued, to publish. Under the
    claim's locks, so a task refused meanwhile is seen here (or saw this slot free)."""
    from .feed import next_ready

    with store.transaction(settings) as session:
        group_cap, job_cap = lock_caps(session, group_name, job_id)
        dispatches: list[Dispatch] = []
        if job_cap is not None:
            dispatches += next_ready(session, job=job_id, limit=settings.queue_depth)
        if group_cap is not None:
            dispatches += next_ready(session, group=group_name, limit=settings.queue_depth)
        return dispatches
