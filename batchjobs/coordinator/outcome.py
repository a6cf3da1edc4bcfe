"""Recording how an attempt ended: the one entry point, :func:`record`.

A success whose dependents all expect ``ended``/``finished`` is one step where the
database has one (:meth:`Steps.success_at_once`: PostgreSQL, one autocommit
statement); everything else is one transaction: the attempt, a retry or the task's
end, its dependents and the job's counters. Recording the same attempt twice changes
nothing and dispatches nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .. import clock, store
from ..errors import DuplicateTask
from ..queues import Dispatch
from ..retry import Failure
from ..settings import Settings
from ..status import Outcome, TaskStatus
from ..store import statements as sql
from .claim import Claim, chained, claim_next
from .delayed import retry_after_failure
from .settlement import end_settled_job, propagate
from .spawn import record_with_children

if TYPE_CHECKING:
    from ..definition import TaskSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: First pause before recording again while the database is unreachable (doubling,
#: at most :data:`MAX_PAUSE`), for up to ``BATCHJOBS_SERVER_TIMEOUT`` in all.
FIRST_PAUSE = 0.1
MAX_PAUSE = 2.0


def record(task_id: int, attempt: int, outcome: Outcome, error: str | None = None, *,
           children: tuple[int, ...] | None = None, traceback: str | None = None,
           log: str | None = None, settings: Settings,
           incarnation: str | None = None, failure: Failure | None = None,
           added: Sequence[TaskSpec] = (), then: NextTask | None = None) -> list[Dispatch]:
    """Record the outcome of attempt ``attempt`` of a task; return the dependents (or the
    retry) that became ready, to be published by the caller after this returns.

    ``children``: the dependents a success decides without a cascade
    (:attr:`Claim.readied_by_success`), which allows the one-step form. ``traceback`` and
    ``log``: what the process raised and logged, kept on the attempt. ``incarnation``: the
    reporting server's fencing token; an outcome counts only from the attempt's own
    incarnation while it still holds the server's name (None: recovery). ``failure``: what
    the process raised, for the retry policy (None: no exception, e.g. a lost server,
    which is retried while retries are left). A database that
    is unreachable is retried with backoff for up to ``settings.server_timeout``
    seconds; after that the error is raised and the attempt is left to recovery.
    ``added``: the tasks a successful process added to its job (``ctx.add_task``), stored
    with the success (:func:`spawn.record_with_children`). ``then``: a chain's request for
    its next task (:class:`NextTask`), given only with a success."""
    dispatches = _retrying(lambda: _record(task_id, attempt, outcome, children, settings,
                                           {"p_error": error, "p_traceback": traceback,
                                            "p_log": log, "p_incarnation": incarnation},
                                           failure, added, then),
                           f"recording task {task_id} attempt {attempt}", settings)
    if then is not None and not then.asked:
        then.claimed = claim_next(then.previous, then.server, then.message_id,
                                  settings=settings, incarnation=incarnation)
    return dispatches


@dataclass
class NextTask:
    """A chain's request to :func:`record`: once the success is recorded, claim the
    chain's next task (the head of the group's backlog: :func:`claim.claim_next`) for the
    thread of message ``message_id``; :attr:`claimed` is the answer.

    A success of the one-step form claims it in the statement that records it where the
    database has one (PostgreSQL: one round trip per chained task, and a shallow queue's
    success learns there that the backlog is empty); otherwise the claim follows the
    recording."""

    previous: Claim
    server: str
    message_id: str | None
    claimed: Claim | None = None
    #: Whether the recording step has looked for the next task already.
    asked: bool = False

    def params(self) -> dict[str, Any]:
        return {"p_job": self.previous.job_id, "p_prev": self.previous.task_id,
                "p_server": self.server, "p_message": self.message_id}

    def take(self, rows: list[Any], settings: Settings) -> None:
        """The answer of a success-and-next step. No row: that step recorded nothing, the
        success being recorded already: perhaps by this very step, tried again because its
        reply was lost with the connection, so the task it claimed then is found by the
        message's id (never left executing with nobody to run it)."""
        self.asked = True
        if not rows:
            with store.read_session(settings) as session:
                row = session.execute(sql.CLAIMED_BY_MESSAGE, self.params()).first()
            self.claimed = None if row is None else chained(tuple(row), self.previous.job_id)
        elif rows[0].next_id is not None:
            self.claimed = chained(tuple(rows[0])[-len(_NEXT_COLUMNS):], self.previous.job_id)


#: The claimed columns a success-and-next row ends with.
_NEXT_COLUMNS = (*sql.CLAIMED_COLUMNS, sql.task.c.id)


def _why(exc: OperationalError) -> str:
    """What the server said (its SQLSTATE names a cause: a deadlock), else that it is
    out of reach (a lost connection has none)."""
    if getattr(exc.orig, "sqlstate", None):
        return str(exc.orig).strip().splitlines()[0]
    return "database unreachable"


def _retrying(step: Callable[[], T], what: str, settings: Settings) -> T:
    """``step()``, again with backoff while the database is unreachable (or aborted the
    transaction: a deadlock, a serialization failure), for up to
    ``settings.server_timeout`` seconds; then its error is raised."""
    deadline = time.monotonic() + settings.server_timeout
    pause = FIRST_PAUSE
    while True:
        try:
            return step()
        except OperationalError as exc:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("%s failed (%s); retrying in %.1fs", what, _why(exc), pause)
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)


def _record(task_id: int, attempt: int, outcome: Outcome, children: tuple[int, ...] | None,
            settings: Settings, detail: dict[str, str | None],
            failure: Failure | None = None, added: Sequence[TaskSpec] = (),
            then: NextTask | None = None) -> list[Dispatch]:
    now = clock.now()
    if outcome is Outcome.ENDED and added:
        try:
            with store.transaction(settings) as session:
                return record_with_children(session, task_id, attempt, added, now, settings,
                                            detail)
        except DuplicateTask as exc:    # a name taken since the process checked it
            outcome, detail = Outcome.ERROR, {**detail, "p_error": str(exc)}
    elif outcome is Outcome.ENDED and children is not None:
        params = {"p_task": task_id, "p_number": attempt, "p_now": now,
                  "p_children": list(children), "p_log": detail["p_log"],
                  "p_incarnation": detail["p_incarnation"]}
        with store.atomic(settings) as (kind, conn):
            rows = (kind.success_at_once(conn, params) if then is None else
                    kind.success_and_next(conn, {**params, **then.params()}))
        if rows is not None:
            if then is not None:
                then.take(rows, settings)
            return _after_success_at_once(rows, settings)
    with store.transaction(settings) as session:
        return record_in(session, task_id, attempt, outcome, now, settings, detail,
                         failure)


def _after_success_at_once(rows: list[Any], settings: Settings) -> list[Dispatch]:
    """The dependents made ready by a one-step success; the job ended in a transaction of
    its own when this was its last task (should this process die first, a housekeeper's
    sweep ends it: :func:`batchjobs.coordinator.sweeps.end_settled_jobs`)."""
    if not rows:
        return []     # recorded already
    first = rows[0]
    dispatches = [Dispatch(r.id, r.child_job_id, r.child_name, r.process, r.group_name,
                           timeout=r.child_timeout, rank=r.child_rank)
                  for r in rows if r.child_status == TaskStatus.READY and not r.client]
    if first.spawned_by is not None:
        # A claim sends a runtime task's success through record_in, where its end is
        # counted on the task that added it atomically; one recorded here all the same
        # (a claim made before this rule) is counted right after.
        with store.transaction(settings) as session:
            dispatches += propagate(session, first.job_id, first.name, TaskStatus.ENDED, [],
                                    0, clock.now(), settings, settled=True,
                                    spawned_by=first.spawned_by)
    if first.remaining <= 0:
        with store.transaction(settings) as session:
            end_settled_job(session, first.job_id, settings)
    return dispatches


def record_in(session: Session, task_id: int, attempt: int, outcome: Outcome, now: datetime,
              settings: Settings, detail: dict[str, str | None],
              failure: Failure | None = None) -> list[Dispatch]:
    """:func:`record`'s transaction: a failed attempt that its task's retry policy retries
    makes the task ready again, at once or later (:mod:`.delayed`); otherwise the task
    ends and decides its dependents, and is counted on the job after them (rows are
    locked in one order everywhere: the tasks, then the job's counters; see
    :mod:`batchjobs.counters`). ``detail``: the attempt's ``p_error``, ``p_traceback``,
    ``p_log`` and the reporter's ``p_incarnation``."""
    conn = session.connection()
    params = {"p_task": task_id, "p_number": attempt, "p_now": now, **detail}
    if conn.execute(sql.RECORD_ATTEMPT, {**params, "p_outcome": outcome.value}
                    ).first() is None:
        return []
    status, reason = TaskStatus.ENDED, None
    if outcome is not Outcome.ENDED:
        decision, retried = retry_after_failure(session, task_id, failure, now)
        if decision.retry:
            return retried
        status, reason = TaskStatus.ERROR, decision.reason
    row = conn.execute(sql.FINISH, {"p_task": task_id, "p_status": status.value}).first()
    if row is None:
        return []
    if reason is not None:
        conn.execute(update(sql.task).where(sql.task.c.id == task_id).values(reason=reason))
    failed = int(status is TaskStatus.ERROR and not row.ignore_failure)
    return propagate(session, row.job_id, row.name, status, row.dependents, failed, now,
                     settings, spawned_by=row.spawned_by, counter=row.counter)
