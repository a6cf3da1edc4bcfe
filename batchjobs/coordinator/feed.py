"""What goes onto the queues: a starting job's ready tasks, and the rest of a big
backlog as its group's queue drains.

A group's queue is kept at ``BATCHJOBS_QUEUE_DEPTH`` messages at most: a job that
starts with more ready tasks leaves the rest unqueued (``tasks.queued`` false, found
by a partial index in feed order), and housekeepers publish them, highest priority
first, then oldest, as the queue drains to half. The broker never holds a whole large
job. Which ready task goes next is :func:`next_ready`'s choice alone (priority, then
ready time, within the concurrency caps).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import clock, runs
from ..models import UNQUEUED, BatchGroup
from ..queues import Dispatch
from ..settings import Settings
from ..store import statements as sql
from ..store import steps
from .concurrency import Slots


def start_job(session: Session, job_id: int, depth: int,
              settings: Settings | None = None) -> list[Dispatch]:
    """Move a waiting job to executing and make its unconditioned tasks ready, and those
    whose conditions on other jobs hold already; return the first ``depth`` of them to
    publish (the rest wait for room: :func:`queue_ready`). ``settings``: for a task made
    not_run by such a condition that ends the job (its alert); the environment's if None."""
    return try_start_job(session, job_id, depth, settings) or []


def try_start_job(session: Session, job_id: int, depth: int,
                  settings: Settings | None = None) -> list[Dispatch] | None:
    """:func:`start_job`, or None if the job was not waiting (someone else started it)."""
    conn = session.connection()
    now = clock.now()
    params = {"p_job": job_id, "p_now": now}
    if conn.execute(sql.START_JOB, params).first() is None:
        return None
    runs.start_run(session, job_id, now)
    conn.execute(sql.START_ROOTS, params)
    # Conditions on jobs that have finished already hold (or not) at once.
    from ..job_conditions import resolve_at_start

    readied = resolve_at_start(session, job_id, now, settings)
    return readied + queue_job(session, job_id, depth)


def queue_job(session: Session, job_id: int, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of the job, marked queued, to publish."""
    return next_ready(session, job=job_id, limit=limit)


def queue_ready(session: Session, group: str, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of ``group``, marked queued, to publish: a
    housekeeper's feed when the group's queue has room."""
    return next_ready(session, group=group, limit=limit)


def next_ready(session: Session, *, group: str | None = None, job: int | None = None,
               limit: int) -> list[Dispatch]:
    """THE choice of which ready tasks run next: up to ``limit`` unqueued ready tasks of
    ``group`` or of ``job``, the highest rank first, then the first ready, within the
    free slots of every concurrency cap they meet; marked queued, to publish (in that
    order). Rows another feeder holds are skipped.

    Without a cap in the way (the group and the job uncapped, no capped job executing
    / no capped group) it is one statement, as before caps existed."""
    conn = session.connection()
    slots = Slots(session)
    if job is not None:
        params: dict[str, Any] = {"p_job": job, "p_limit": limit}
        if job not in slots.jobs and not slots.any_capped_group():
            return in_order(conn.execute(steps.of(session).choose_some(sql.QUEUE_OF_JOB),
                                         params))
        where: list[Any] = [sql.task.c.job_id == job]
        limit = min(limit, slots.jobs.get(job, limit))
    else:
        params = {"p_group": group, "p_limit": limit}
        free = slots.group(str(group))
        if free is None and not slots.jobs:
            return in_order(conn.execute(steps.of(session).choose_some(sql.QUEUE_OF_GROUP),
                                         params))
        if free is not None:
            limit = min(limit, free)
        where = [sql.task.c.group_name == group]
    return _within_caps(session, slots, where, limit)


def _within_caps(session: Session, slots: Slots, where: list[Any], limit: int,
                 ) -> list[Dispatch]:
    """:func:`next_ready` where a cap is in the way: the candidates in order, each taken
    if its job and group have a free slot. A candidate passed over fills its job or group,
    which the next round leaves out, so a capped job's backlog never hides the tasks
    behind it; each round takes a task or leaves one more job or group out."""
    conn = session.connection()
    dispatches: list[Dispatch] = []
    while len(dispatches) < limit:
        wanted = limit - len(dispatches)
        query = (select(sql.task.c.id, sql.task.c.job_id, sql.task.c.group_name)
                 .where(UNQUEUED, *where).order_by(*sql.READY_ORDER).limit(wanted)
                 .with_for_update(skip_locked=True))
        if full_jobs := slots.full_jobs():
            query = query.where(sql.task.c.job_id.not_in(full_jobs))
        if full_groups := slots.full_groups():
            query = query.where(sql.task.c.group_name.not_in(full_groups))
        candidates = conn.execute(query).all()
        chosen = [row.id for row in candidates if slots.take(row.job_id, row.group_name)]
        if chosen:
            rows = conn.execute(update(sql.task).where(sql.task.c.id.in_(chosen), UNQUEUED)
                                .values(queued=True).returning(*sql.DISPATCH_COLUMNS)).all()
            order = {task_id: n for n, task_id in enumerate(chosen)}
            dispatches += sorted(queued(rows), key=lambda d: order[d.task_id])
        if len(candidates) < wanted:
            break       # nothing more is ready
    return dispatches


def unqueued_groups(session: Session) -> list[str]:
    """Batch groups with ready tasks waiting for room on their queue (one index probe per
    group, whatever the number of such tasks)."""
    # A correlated LIMIT 1 per group, not EXISTS: PostgreSQL turns EXISTS into a join that
    # reads every unqueued task (5 ms for 15,000), twice a second in every housekeeper.
    first = (select(sql.task.c.id).where(UNQUEUED, sql.task.c.group_name == BatchGroup.name)
             .limit(1).scalar_subquery())
    return list(session.execute(select(BatchGroup.name).where(first.is_not(None))).scalars())



def in_order(rows: Any) -> list[Dispatch]:
    """The dispatches of an update's rows (which come back in no set order) highest rank
    first, then by id (the order tasks of one start, or of one job, became ready), so
    that equal priorities are published first ready first."""
    return sorted(queued(rows), key=lambda d: (-d.rank, d.task_id))


def queued(rows: Any) -> list[Dispatch]:
    """The dispatches among :data:`statements.DISPATCH_COLUMNS` rows: every ready task but
    client ones."""
    return [Dispatch(row[0], row[1], row[2], row[3], row[4], timeout=row[6], rank=row[7])
            for row in rows if not row[5]]
