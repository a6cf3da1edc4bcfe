"""The housekeepers' duties: start what is due, feed drained queues, and recover what a
crash left behind (attempts of dead servers, lost messages, jobs whose end was not
recorded).

Each duty is a function of the settings and the broker (:class:`Broker`), built from a
read that takes no lock and a guarded update, so any number of housekeepers may run
them at once and never do the same thing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from .. import clock, queues, store
from ..models import RUNNING, Attempt, BatchGroup, BatchServer, Job, User
from ..priority import aging_cutoffs
from ..settings import Settings
from ..status import JobStatus, Outcome
from ..store import statements as sql
from ..store import steps
from .delayed import has_due, release_due
from .feed import queue_ready, queued, try_start_job, unqueued_groups
from .outcome import record
from .settlement import end_settled_job, settled_jobs

log = logging.getLogger(__name__)


class Broker(Protocol):
    """What the duties need to know of the broker."""

    def queue_length(self, queue: str) -> int: ...


def start_due_jobs(settings: Settings, broker: Broker) -> int:
    """Start waiting jobs whose start time (or next occurrence) has come, holding instead
    those whose owner is disabled (:mod:`batchjobs.owners`); how many this call started
    (another housekeeper may have started the others)."""
    with store.read_session(settings) as session:
        due = due_jobs(session)
        disabled = due_jobs_of_disabled_owners(session)
    if disabled:
        hold_for_disabled_owners(disabled, settings)
    started = 0
    for job_id in due:
        with store.transaction(settings) as session:
            dispatches = try_start_job(session, job_id, settings.queue_depth, settings)
        if dispatches is not None:
            started += 1
            queues.publish(dispatches, settings=settings)
    return started


def due_jobs(session: Session, limit: int = 100) -> list[int]:
    """Ids of waiting jobs whose start time has come (and whose owner is not disabled)."""
    return list(session.execute(
        select(Job.id).where(Job.status == JobStatus.WAITING, Job.run_at <= store.now(session),
                             Job.created_by.not_in(_DISABLED))
        .order_by(Job.run_at).limit(limit)
    ).scalars())


#: Names of disabled users (few, if any: the subquery costs one probe of ``users``).
_DISABLED = select(User.name).where(User.disabled_at.is_not(None))


def due_jobs_of_disabled_owners(session: Session, limit: int = 100) -> list[tuple[int, str]]:
    """``(id, owner)`` of due waiting jobs whose owner is disabled: a run that ended while
    its owner was being disabled left its job waiting."""
    return [(int(job_id), str(owner)) for job_id, owner in session.execute(
        select(Job.id, Job.created_by).where(
            Job.status == JobStatus.WAITING, Job.run_at <= store.now(session),
            Job.created_by.in_(_DISABLED)).limit(limit)).all()]


def hold_for_disabled_owners(jobs: list[tuple[int, str]], settings: Settings) -> None:
    from ..owners import hold_jobs_of

    with store.transaction(settings) as session:
        now = clock.now()
        for job_id, owner in jobs:
            if hold_jobs_of(session, owner, now, job_ids=[job_id]):
                log.warning("job %s held: its owner %s is disabled", job_id, owner)


def release_due_retries(settings: Settings, broker: Broker) -> int:
    """Publish the delayed retries whose instant has come (first looked for with a read,
    so an idle installation writes nothing); how many this call released."""
    with store.read_session(settings) as session:
        if not has_due(session):
            return 0
    with store.transaction(settings) as session:
        dispatches = release_due(session, limit=settings.queue_depth)
    queues.publish(dispatches, settings=settings)
    return len(dispatches)


def feed_queues(settings: Settings, broker: Broker) -> None:
    """Publish ready tasks left unqueued once their group's queue has drained to half its
    depth, oldest first: servers never run dry, and the broker never holds a whole
    large job."""
    depth = settings.queue_depth
    with store.read_session(settings) as session:
        groups = unqueued_groups(session)
    for group in groups:
        room = depth - broker.queue_length(queues.queue_name(group))
        if room < depth / 2:
            continue
        with store.transaction(settings) as session:
            dispatches = queue_ready(session, group, room)
        queues.publish(dispatches, settings=settings)


def age_ready(settings: Settings, broker: Broker, *, limit: int = 1000) -> None:
    """Ready tasks that have waited long enough rise one rank (no starvation:
    :mod:`batchjobs.priority`); those with a message on the broker are published again
    with their new rank (the claim drops whichever of the two messages comes second)."""
    if settings.priority_aging <= 0:
        return
    with store.transaction(settings) as session:
        params = {**aging_cutoffs(clock.now(), settings.priority_aging), "p_limit": limit}
        kind, conn = steps.of(session), session.connection()
        conn.execute(kind.choose_some(sql.AGE_UNQUEUED), params)
        risen = queued(conn.execute(kind.choose_some(sql.AGE_QUEUED), params).all())
    if risen:
        log.info("%d waiting ready task(s) rose a priority rank", len(risen))
        queues.publish(risen, settings=settings)


def fail_lost_attempts(settings: Settings, broker: Broker) -> None:
    """Attempts on a server that stopped beating end ``error`` (retried if retries are
    left), so a crash never leaves a task executing forever."""
    timeout = settings.server_timeout
    with store.read_session(settings) as session:
        dead_before = store.now(session) - timedelta(seconds=timeout)
        lost = lost_attempts(session, dead_before=dead_before)
    fail_attempts(lost, f"stopped (no heartbeat for {timeout:g}s)", settings)


def fail_own_attempts(server: str, settings: Settings, *, incarnation: str | None = None,
                      ) -> None:
    """At a server's start, attempts still running under its name by another incarnation
    than its own (``incarnation``) died with its previous process, or were fenced off
    with it."""
    with store.read_session(settings) as session:
        lost = lost_attempts(session, server=server, besides=incarnation)
    fail_attempts(lost, "restarted while the task was executing", settings)


def fail_attempt_of_message(message_id: str, server: str, what: str,
                            settings: Settings) -> bool:
    """The server's main process saw the pool process running this message end without
    an outcome (killed, timed out, stopped): its running attempt ends ``error`` (retried
    if retries are left). False if that attempt had an outcome already.

    The attempt is found by the message alone: the process may have gone on from the
    message's task to its group's backlog (a chain, :mod:`batchjobs.runner`),
    whose attempts keep the message's id; at most one of them runs at a time."""
    with store.read_session(settings) as session:
        found = session.execute(
            select(Attempt.task_id, Attempt.number).where(Attempt.message_id == message_id,
                                                          Attempt.server == server,
                                                          Attempt.outcome == Outcome.RUNNING)
            .order_by(Attempt.id.desc()).limit(1)).first()
    if found is None:
        return False
    task_id, number = found
    dispatches = record(task_id, number, Outcome.ERROR, f"batch server {server}: {what}",
                        settings=settings)
    log.warning("task %s attempt %s: %s", task_id, number, what)
    queues.publish(dispatches, settings=settings)
    return True


def fail_attempts(lost: list[tuple[int, int, str]], what: str, settings: Settings) -> None:
    for task_id, number, server in lost:
        dispatches = record(task_id, number, Outcome.ERROR, f"batch server {server} {what}",
                            settings=settings)
        log.warning("task %s attempt %s lost with server %s", task_id, number, server)
        queues.publish(dispatches, settings=settings)


def lost_attempts(session: Session, *, dead_before: datetime | None = None,
                  server: str | None = None, besides: str | None = None,
                  limit: int = 100) -> list[tuple[int, int, str]]:
    """Running attempts of servers whose last heartbeat is older than ``dead_before``, or of
    ``server`` (which has just started) by incarnations other than ``besides``:
    ``(task_id, number, server)``."""
    query = lost_attempts_query(dead_before=dead_before, server=server, besides=besides,
                                limit=limit)
    return [(int(task), int(number), str(name)) for task, number, name in session.execute(query)]


def lost_attempts_query(*, dead_before: datetime | None = None, server: str | None = None,
                        besides: str | None = None, limit: int = 100) -> Select[int, int, str]:
    """The statement of :func:`lost_attempts`. Its predicate is RUNNING, that of
    ``ix_attempts_running`` with the word as a literal: every housekeeper's beat reads the
    running attempts through that index, however many finished ones the table holds."""
    query = (select(Attempt.task_id, Attempt.number, Attempt.server)
             .where(RUNNING).limit(limit))
    if server is not None:
        query = query.where(Attempt.server == server)
    if besides is not None:
        query = query.where(Attempt.incarnation.is_distinct_from(besides))
    if dead_before is not None:
        query = query.join(BatchServer, BatchServer.name == Attempt.server).where(
            BatchServer.heartbeat_at < dead_before)
    return query


def end_settled_jobs(settings: Settings, broker: Broker) -> None:
    """End jobs whose last task was recorded by a process that died before it could end
    the job (see :func:`batchjobs.coordinator.outcome.record`)."""
    with store.read_session(settings) as session:
        settled = settled_jobs(session)
    for job_id in settled:
        with store.transaction(settings) as session:
            if end_settled_job(session, job_id, settings):
                log.warning("job %s had no task left to run; ended", job_id)


def republish_lost(settings: Settings, broker: Broker) -> None:
    """Republish queued ready tasks whose message is gone: their queue is empty, yet they
    have waited longer than ``BATCHJOBS_REPUBLISH_AFTER``. The queues are looked at first
    (one length each), so a big backlog is never scanned while it drains."""
    after = timedelta(seconds=settings.republish_after)
    with store.read_session(settings) as session:
        groups = list(session.execute(select(BatchGroup.name)).scalars())
    for group in groups:
        if broker.queue_length(queues.queue_name(group)) > 0:
            continue
        with store.read_session(settings) as session:
            if not has_stale_ready(session, after, group=group):
                continue
        with store.transaction(settings) as session:
            lost = stale_ready(session, after, group=group)
        if lost:
            log.warning("republishing %d ready task(s) of group %s", len(lost), group)
            queues.publish(lost, settings=settings)


def has_stale_ready(session: Session, older_than: timedelta, *, group: str) -> bool:
    """Whether :func:`stale_ready` would find anything (a read, no lock taken)."""
    params = {"p_cutoff": clock.now() - older_than, "p_group": group}
    return session.execute(sql.HAS_STALE, params).first() is not None


def stale_ready(session: Session, older_than: timedelta, *, group: str,
                limit: int = 1000) -> list[queues.Dispatch]:
    """Queued ready tasks of ``group`` unclaimed for longer than ``older_than``; their
    ``ready_at`` is renewed so that only one caller republishes each."""
    now = clock.now()
    statement = steps.of(session).choose_some(sql.REPUBLISH_STALE)
    rows = session.connection().execute(statement, {
        "p_cutoff": now - older_than, "p_group": group, "p_limit": limit, "p_now": now}).all()
    return queued(rows)
