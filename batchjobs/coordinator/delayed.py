"""Delayed retries: a failed attempt whose retry must wait leaves its task ``ready`` with
``not_before`` set (the database's clock), off every queue; a housekeeper releases it
when that instant has come and publishes it.

The wait is in the database, never in the broker: a message delayed in Redis would be
delivered again after the visibility timeout and run twice, and one in a queue holds a
server's prefetch slot. A task with ``not_before`` set is not fed (it is outside
``ix_tasks_unqueued``) and not claimable (the claim requires ``not_before IS NULL``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.orm import Session

from .. import wakeup
from ..models import DELAYED, UTCDateTime
from ..queues import Dispatch
from ..retry import Decision, Failure, Policy
from ..status import TaskStatus
from ..store import statements as sql
from ..store import steps
from .feed import queued

task = sql.task
DUE = bindparam("p_due", type_=UTCDateTime())

#: The retry policy of a task, and how many attempts its run has made.
POLICY = select(task.c.retries, task.c.attempts - task.c.attempt_base, task.c.retry_delay,
                task.c.retry_backoff, task.c.retry_max_delay, task.c.retry_on).where(
    task.c.id == bindparam("p_task", type_=Integer()))
#: A failed attempt's task waits, ready but not queued, until ``p_due``.
RETRY_LATER = (update(task).where(task.c.id == bindparam("p_task"),
                                  sql.guard(task.c.status, TaskStatus.EXECUTING.value),
                                  task.c.attempts - task.c.attempt_base <= task.c.retries)
               .values(status=TaskStatus.READY.value, not_before=DUE, ready_at=sql.NOW,
                       queued=False)
               .returning(task.c.id))
#: Delayed retries whose instant has come, released and marked queued, to publish.
RELEASE_DUE = sql.ChooseSome((DELAYED, task.c.not_before <= sql.NOW),
                             (task.c.not_before, task.c.id),
                             {"not_before": None, "ready_at": sql.NOW, "queued": True})
NEXT_DUE = select(func.min(task.c.not_before)).where(DELAYED)


def policy(session: Session, task_id: int) -> tuple[Policy, int]:
    """The task's retry policy and the number of attempts of its current run."""
    row: Any = session.connection().execute(POLICY, {"p_task": task_id}).one()
    retries, made, delay, backoff, max_delay, retry_on = row
    return Policy(retries=retries, delay=delay or 0.0, backoff=backoff or 1.0,
                  max_delay=max_delay,
                  retry_on=None if retry_on is None else tuple(retry_on)), made


def retry_after_failure(session: Session, task_id: int, failure: Failure | None,
                        now: datetime) -> tuple[Decision, list[Dispatch]]:
    """A failed attempt has been recorded: retry its task now (returned to publish), later
    (``not_before``), or not at all (the decision says so, and why)."""
    rule, made = policy(session, task_id)
    decision = rule.decide(failure, made)
    if not decision.retry:
        return decision, []
    conn = session.connection()
    params = {"p_task": task_id, "p_now": now}
    if decision.delay <= 0:
        row = conn.execute(sql.RETRY, params).first()
        return (decision, queued([row])) if row is not None else (_no_retry(), [])
    due = steps.of(session).now(conn) + timedelta(seconds=decision.delay)
    if conn.execute(RETRY_LATER, {**params, "p_due": due}).first() is None:
        return _no_retry(), []
    wakeup.notify(session)   # the housekeepers wake at its instant, not at their next tick
    return decision, []


def _no_retry() -> Decision:
    return Decision(False, 0.0, None)


def release_due(session: Session, *, limit: int) -> list[Dispatch]:
    """Up to ``limit`` delayed retries whose instant has come (the database's clock),
    released: ready, queued, to publish after commit."""
    now = steps.of(session).now(session.connection())
    statement = steps.of(session).choose_some(RELEASE_DUE)
    return queued(session.connection().execute(statement, {"p_now": now, "p_limit": limit}))


def next_due(session: Session) -> datetime | None:
    """The next instant a delayed retry is due (None: none waits): what a housekeeper may
    sleep until."""
    value: datetime | None = session.execute(NEXT_DUE).scalar()
    return value


def has_due(session: Session) -> bool:
    """Whether a delayed retry is due now (a read: housekeepers look before they write)."""
    due = next_due(session)
    return due is not None and due <= steps.of(session).now(session.connection())
