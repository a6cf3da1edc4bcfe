"""What goes onto the queues: a starting job's ready tasks, and the rest of a big
backlog as its group's queue drains.

A group's queue is kept at ``BATCHJOBS_QUEUE_DEPTH`` messages at most: a job that
starts with more ready tasks leaves the rest unqueued (``tasks.queued`` false, found
by a partial index in feed order), and housekeepers publish them, oldest first, as
the queue drains to half. The broker never holds a whole large job.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import clock, runs
from ..models import UNQUEUED, BatchGroup
from ..queues import Dispatch
from ..store import statements as sql
from ..store import steps


def start_job(session: Session, job_id: int, depth: int) -> list[Dispatch]:
    """Move a waiting job to executing and make its unconditioned tasks ready; return the
    first ``depth`` of them to publish (the rest wait for room: :func:`queue_ready`)."""
    return try_start_job(session, job_id, depth) or []


def try_start_job(session: Session, job_id: int, depth: int) -> list[Dispatch] | None:
    """:func:`start_job`, or None if the job was not waiting (someone else started it)."""
    conn = session.connection()
    now = clock.now()
    params = {"p_job": job_id, "p_now": now}
    if conn.execute(sql.START_JOB, params).first() is None:
        return None
    runs.start_run(session, job_id, now)
    conn.execute(sql.START_ROOTS, params)
    return queue_job(session, job_id, depth)


def queue_job(session: Session, job_id: int, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of the job, marked queued, to publish."""
    statement = steps.of(session).choose_some(sql.QUEUE_OF_JOB)
    return queued(session.connection().execute(statement, {"p_job": job_id, "p_limit": limit}))


def queue_ready(session: Session, group: str, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of ``group``, oldest first, marked queued, to
    publish: a housekeeper's feed when the group's queue has room."""
    statement = steps.of(session).choose_some(sql.QUEUE_OF_GROUP)
    return queued(session.connection().execute(statement,
                                                {"p_group": group, "p_limit": limit}))


def unqueued_groups(session: Session) -> list[str]:
    """Batch groups with ready tasks waiting for room on their queue (one index probe per
    group, whatever the number of such tasks)."""
    # A correlated LIMIT 1 per group, not EXISTS: PostgreSQL turns EXISTS into a join that
    # reads every unqueued task (5 ms for 15,000), twice a second in every housekeeper.
    first = (select(sql.task.c.id).where(UNQUEUED, sql.task.c.group_name == BatchGroup.name)
             .limit(1).scalar_subquery())
    return list(session.execute(select(BatchGroup.name).where(first.is_not(None))).scalars())


def queued(rows: Any) -> list[Dispatch]:
    """The dispatches among :data:`statements.DISPATCH_COLUMNS` rows: every ready task but
    client ones."""
    return [Dispatch(row[0], row[1], row[2], row[3], row[4], timeout=row[6])
            for row in rows if not row[5]]
