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
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    any_,
    case,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from . import clock, runs
from .graph import holds, job_outcome, unmet_reason
from .models import Attempt, BatchGroup, BatchServer, Condition, Job, Task, UTCDateTime
from .settings import QUEUE_DEPTH
from .status import ConditionType, JobStatus, Outcome, TaskStatus

if TYPE_CHECKING:
    from .fastpath import Connection as FastConnection


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
    #: Attempt number within the current run (``attempt`` counts across runs).
    try_number: int = 1
    #: The dependents a success of this task decides without a cascade (every one
    #: expects ``ended`` or ``finished``); None when a success needs the full
    #: propagation. See :func:`record_success_at_once`.
    readied_by_success: tuple[int, ...] | None = None


# -- prebuilt statements ------------------------------------------------------------
#
# The hot path (claim, outcome, dependents) runs Core statements built once here
# with bind parameters: building and ORM-processing them per call cost more than
# the database round trips themselves.

_task = Task.__table__
_attempt = Attempt.__table__
_job = Job.__table__
#: A dispatch's columns, then ``client``: a ready client task is not queued (it waits
#: for ``batchjobs run-client``).
_DISPATCH_COLUMNS = (_task.c.id, _task.c.job_id, _task.c.name, _task.c.process,
                     _task.c.group_name, _task.c.client)
_NOW = bindparam("p_now", type_=UTCDateTime())

_START_JOB = (update(_job).where(_job.c.id == bindparam("p_job"),
                                 _job.c.status == JobStatus.WAITING.value)
              .values(status=JobStatus.EXECUTING.value, started_at=_NOW).returning(_job.c.id))


def _guard(column: Any, value: Any) -> Any:
    """A condition on a row found by its primary key (a status or job it must still
    have), written so that no index matches it.

    PostgreSQL must never prefer an index on ``(job_id, status)`` or ``(status, …)`` to
    the primary key: with statistics taken before a large job changed its tasks' status,
    it did, and one claim scanned every ready task of a 20,000-task job (10 ms a task).
    ``IS NOT DISTINCT FROM`` is the same test on these non-null columns, and no index
    serves it."""
    return column.is_not_distinct_from(value)


_START_ROOTS = (update(_task).where(_task.c.job_id == bindparam("p_job"),
                                    _task.c.status == TaskStatus.WAITING.value,
                                    _task.c.n_conditions == 0)
                .values(status=TaskStatus.READY.value, ready_at=_NOW, queued=False))
#: Ready tasks waiting for room on their queue (see ``models.UNQUEUED``).
#: Written as the index predicate is, so that PostgreSQL uses ``ix_tasks_unqueued``.
_UNQUEUED = (_task.c.status == TaskStatus.READY.value, not_(_task.c.queued),
             not_(_task.c.client))


@dataclass(frozen=True)
class _Chosen:
    """An update of up to N chosen tasks, written once per dialect (see
    :func:`_update_some`)."""

    postgresql: Any
    sqlite: Any

    def on(self, conn: Connection) -> Any:
        return self.postgresql if conn.dialect.name == "postgresql" else self.sqlite


def _update_some(where: tuple[Any, ...], order: tuple[Any, ...], limit: Any,
                 **values: Any) -> _Chosen:
    """Set ``values`` on up to ``limit`` tasks matching ``where`` (in ``order``) and return
    them as dispatches. Rows another caller holds are skipped, not waited for.

    PostgreSQL: ``id = ANY(ARRAY(SELECT … LIMIT n FOR UPDATE SKIP LOCKED))``. The choice
    is an InitPlan, run once; the rows are then found by primary key, and nothing else
    is tested (the rows are locked, so they still match). Written as ``id IN (SELECT
    … FROM chosen) AND <where>``, PostgreSQL with statistics taken before a big job was
    stored joined the chosen ids against every row matching ``where`` (a nested loop:
    1,000 × 29,000 comparisons, 4 s per feed of a 30,000-task job). SQLite has one writer
    at a time and no arrays: a CTE and ``IN``."""
    chosen = (select(_task.c.id).where(*where).order_by(*order).limit(limit)
              .with_for_update(skip_locked=True).correlate(None))
    postgresql = (update(_task).where(_task.c.id == any_(func.array(chosen.scalar_subquery())))
                  .values(**values).returning(*_DISPATCH_COLUMNS))
    picked = chosen.cte("chosen")
    sqlite = (update(_task).where(_task.c.id.in_(select(picked.c.id)), *where)
              .values(**values).returning(*_DISPATCH_COLUMNS))
    return _Chosen(postgresql, sqlite)


def _queue_statement(*where: Any, order: tuple[Any, ...]) -> Any:
    """Mark up to ``p_limit`` unqueued ready tasks (``where``, in ``order``) queued, to be
    published."""
    return _update_some((*_UNQUEUED, *where), order,
                        bindparam("p_limit", type_=Integer()), queued=True)


_QUEUE_OF_JOB = _queue_statement(_task.c.job_id == bindparam("p_job"), order=(_task.c.id,))
_QUEUE_OF_GROUP = _queue_statement(_task.c.group_name == bindparam("p_group"),
                                   order=(_task.c.ready_at, _task.c.id))
_CLAIM = (update(_task).where(_task.c.id == bindparam("p_task"),
                              _guard(_task.c.job_id, bindparam("p_job")),
                              _guard(_task.c.status, TaskStatus.READY.value))
          .values(status=TaskStatus.EXECUTING.value, attempts=_task.c.attempts + 1)
          .returning(_task.c.name, _task.c.process, _task.c.kwargs, _task.c.company,
                     _task.c.run_as, _task.c.attempts, _task.c.attempt_base,
                     _task.c.dependents))
_INSERT_ATTEMPT = insert(_attempt).values(
    run=select(_job.c.run_number).where(_job.c.id == bindparam("p_job")).scalar_subquery(),
    task_id=bindparam("p_task"), number=bindparam("p_number"), server=bindparam("p_server"),
    company=bindparam("p_company"), user=bindparam("p_user"), started_at=_NOW,
    outcome=Outcome.RUNNING.value, message_id=bindparam("p_message"))


def _claim_cte() -> Any:
    """PostgreSQL: the claim and its attempt row in one statement (one round trip).

    The data-modifying CTE updates the task only if it is ready and inserts the
    attempt from what that update returned, so a lost race inserts nothing."""
    claimed = _CLAIM.cte("claimed")
    attempt = insert(_attempt).from_select(
        ["run", "task_id", "number", "server", "company", "user", "started_at", "outcome",
         "message_id"],
        select(select(_job.c.run_number).where(_job.c.id == bindparam("p_job"))
               .scalar_subquery(), bindparam("p_task", type_=Integer()), claimed.c.attempts,
               bindparam("p_server", type_=String()), claimed.c.company, claimed.c.run_as,
               _NOW, literal(Outcome.RUNNING.value), bindparam("p_message", type_=String()))
    ).returning(_attempt.c.id).cte("attempt")
    return select(claimed.c.name, claimed.c.process, claimed.c.kwargs, claimed.c.company,
                  claimed.c.run_as, claimed.c.attempts, claimed.c.attempt_base,
                  claimed.c.dependents).add_cte(attempt)


_CLAIM_ONE_STATEMENT = _claim_cte()

_RECORD_ATTEMPT = (update(_attempt).where(_attempt.c.task_id == bindparam("p_task"),
                                          _attempt.c.number == bindparam("p_number"),
                                          _attempt.c.outcome == Outcome.RUNNING.value)
                   .values(outcome=bindparam("p_outcome"), ended_at=_NOW,
                           error=bindparam("p_error"))
                   .returning(_attempt.c.id))
_RETRY = (update(_task).where(_task.c.id == bindparam("p_task"),
                              _guard(_task.c.status, TaskStatus.EXECUTING.value),
                              _task.c.attempts - _task.c.attempt_base <= _task.c.retries)
          .values(status=TaskStatus.READY.value, ready_at=_NOW, queued=True)
          .returning(*_DISPATCH_COLUMNS))
_FINISH = (update(_task).where(_task.c.id == bindparam("p_task"),
                               _guard(_task.c.status, TaskStatus.EXECUTING.value))
           .values(status=bindparam("p_status"))
           .returning(_task.c.job_id, _task.c.name, _task.c.ignore_failure,
                      _task.c.dependents))
_SETTLE = (update(_job).where(_job.c.id == bindparam("p_job"))
           .values(remaining=_job.c.remaining - bindparam("p_finished"),
                   failed=_job.c.failed + bindparam("p_failed"))
           .returning(_job.c.remaining, _job.c.failed))
_END_JOB = (update(_job).where(_job.c.id == bindparam("p_job"),
                               _job.c.status == JobStatus.EXECUTING.value)
            .values(status=bindparam("p_status"), ended_at=_NOW).returning(_job.c.id))


def _decide_statement() -> Any:
    """One more condition outcome applied to a waiting task, deciding it in the same row.

    The rules of :func:`graph.decide`, written over the *new* counters (SET
    expressions read the old row): ``all`` is ready when every condition holds
    and not_run as soon as one cannot; ``any`` is ready as soon as one holds and
    not_run when none can. A task that is no longer waiting is left alone.
    """
    met = _task.c.met + bindparam("p_held", type_=Integer())
    unmet = _task.c.unmet + bindparam("p_unheld", type_=Integer())
    is_all = _task.c.condition_type == ConditionType.ALL.value
    ready = or_(and_(is_all, met == _task.c.n_conditions), and_(not_(is_all), met > 0))
    never = or_(and_(is_all, unmet > 0), and_(not_(is_all), unmet == _task.c.n_conditions))
    return (update(_task).where(_task.c.id == bindparam("p_task"),
                                _guard(_task.c.status, TaskStatus.WAITING.value))
            .values(met=met, unmet=unmet,
                    status=case((ready, TaskStatus.READY.value),
                                (never, TaskStatus.NOT_RUN.value), else_=_task.c.status),
                    ready_at=case((ready, _NOW), else_=_task.c.ready_at),
                    queued=case((ready, True), else_=_task.c.queued),
                    reason=case((never, bindparam("p_reason")), else_=_task.c.reason))
            .returning(_task.c.status, _task.c.condition_type, _task.c.dependents,
                       *_DISPATCH_COLUMNS))


_DECIDE = _decide_statement()


def start_job(session: Session, job_id: int, depth: int = QUEUE_DEPTH) -> list[Dispatch]:
    """Move a waiting job to executing and make its unconditioned tasks ready; return the
    first ``depth`` of them to publish (the rest wait for room: :func:`queue_ready`)."""
    conn = session.connection()
    params = {"p_job": job_id, "p_now": clock.now()}
    if conn.execute(_START_JOB, params).first() is None:
        return []
    runs.start_run(session, job_id, params["p_now"])
    conn.execute(_START_ROOTS, params)
    return queue_job(session, job_id, depth)


def queue_job(session: Session, job_id: int, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of the job, marked queued, to publish."""
    conn = session.connection()
    return queued(conn.execute(_QUEUE_OF_JOB.on(conn), {"p_job": job_id, "p_limit": limit}))


def queue_ready(session: Session, group: str, limit: int) -> list[Dispatch]:
    """Up to ``limit`` unqueued ready tasks of ``group``, oldest first, marked queued, to
    publish: a housekeeper's feed when the group's queue has room."""
    conn = session.connection()
    return queued(conn.execute(_QUEUE_OF_GROUP.on(conn), {"p_group": group, "p_limit": limit}))


def unqueued_groups(session: Session) -> list[str]:
    """Batch groups with ready tasks waiting for room on their queue (one index probe per
    group, whatever the number of such tasks)."""
    # A correlated LIMIT 1 per group, not EXISTS: PostgreSQL turns EXISTS into a join that
    # reads every unqueued task (5 ms for 15,000), twice a second in every housekeeper.
    first = (select(_task.c.id).where(*_UNQUEUED, _task.c.group_name == BatchGroup.name)
             .limit(1).scalar_subquery())
    return list(session.execute(select(BatchGroup.name).where(first.is_not(None))).scalars())


def queued(rows: Any) -> list[Dispatch]:
    """The dispatches among ``_DISPATCH_COLUMNS`` rows: every ready task but client ones."""
    return [Dispatch(*row[:5]) for row in rows if not row[5]]


def claim(session: Session | Connection | FastConnection, task_id: int, job_id: int, server: str,
          message_id: str | None = None) -> Claim | None:
    """Atomically take a ready task for ``server``; None if it is not ready any more.

    ``message_id`` (Celery's) is kept on the attempt so ``cancel`` can revoke it."""
    conn = session.connection() if isinstance(session, Session) else session
    params = {"p_job": job_id, "p_task": task_id, "p_server": server, "p_now": clock.now(),
              "p_message": message_id}
    one_statement = conn.dialect.name == "postgresql"
    rows = conn.execute(_CLAIM_ONE_STATEMENT if one_statement else _CLAIM, params).fetchall()
    if not rows:
        return None
    row = rows[0]
    name, process, kwargs, company, user, attempt, base, dependents = row
    if not one_statement:   # SQLite has no data-modifying CTE: the attempt row follows
        conn.execute(_INSERT_ATTEMPT, {**params, "p_number": attempt, "p_company": company,
                                       "p_user": user})
    return Claim(task_id, job_id, name, process, dict(kwargs or {}), company, user, attempt,
                 attempt - base, readied_by_success(dependents))


def readied_by_success(dependents: list[Any] | None) -> tuple[int, ...] | None:
    """The ids of the dependents if a success of their parent decides them all without a
    cascade: each expects ``ended`` or ``finished``, so the condition holds, and a held
    condition only ever makes a waiting task ready (or leaves it waiting). None otherwise
    (a dependent expects ``error``: it becomes not_run, and so may its own dependents)."""
    children = tuple(child for child, _ in dependents or ())
    if len(set(children)) != len(children):
        return None
    if all(holds(expected, TaskStatus.ENDED) for _, expected in dependents or ()):
        return children
    return None


def record_outcome(session: Session, task_id: int, attempt: int, outcome: Outcome,
                   error: str | None = None) -> list[Dispatch]:
    """Record how an attempt ended and decide the task's dependents.

    A failed attempt with retries left makes the task ready again. Recording
    the same attempt twice changes nothing and dispatches nothing.
    """
    conn = session.connection()
    now = clock.now()
    if outcome is Outcome.ENDED and conn.dialect.name == "postgresql":
        return _record_success(session, task_id, attempt, now)
    recorded = conn.execute(_RECORD_ATTEMPT, {"p_task": task_id, "p_number": attempt,
                                              "p_outcome": outcome.value, "p_error": error,
                                              "p_now": now}).first()
    if recorded is None:
        return []
    if outcome is Outcome.ERROR:
        retry = conn.execute(_RETRY, {"p_task": task_id, "p_now": now}).first()
        if retry is not None:
            return queued([retry])
    final = TaskStatus.ENDED if outcome is Outcome.ENDED else TaskStatus.ERROR
    row = conn.execute(_FINISH, {"p_task": task_id, "p_status": final.value}).first()
    if row is None:
        return []
    job_id, name, ignore_failure, dependents = row
    failed = 1 if final is TaskStatus.ERROR and not ignore_failure else 0
    return propagate(session, job_id, name, final, dependents, failed, now)


def _record_success(session: Session, task_id: int, attempt: int,
                    now: datetime) -> list[Dispatch]:
    """PostgreSQL, an attempt that ended well: attempt, task and job counter in one
    statement; then only the dependents (if any) cost more."""
    row = session.connection().execute(_SUCCESS, {
        "p_task": task_id, "p_number": attempt, "p_now": now, "p_children": []}).first()
    if row is None:
        return []
    job_id, name, dependents, remaining, failed = row[:5]
    if remaining <= 0:
        _end_job(session, job_id, failed, now)
        return []
    return propagate(session, job_id, name, TaskStatus.ENDED, dependents, 0, now,
                     settled=True)


def record_success_at_once(conn: Connection | FastConnection, task_id: int, attempt: int,
                           children: tuple[int, ...]) -> tuple[list[Dispatch], int | None]:
    """PostgreSQL, in autocommit: a success that decides its dependents without a cascade
    (``children``, from :attr:`Claim.readied_by_success`).

    One statement records the attempt, ends the task, counts it on the job and
    applies the held condition to every dependent: one round trip, no transaction.
    Returns the dependents that became ready, and the job's id when this was its
    last task; the caller then ends the job in a transaction of its own
    (:func:`end_settled_job`). Should it die before that, the housekeepers' sweep
    (:func:`settled_jobs`) ends the job.
    """
    rows = conn.execute(_SUCCESS, {"p_task": task_id, "p_number": attempt,
                                   "p_now": clock.now(), "p_children": list(children)}).fetchall()
    if not rows:
        return [], None
    first = rows[0]
    dispatches = [Dispatch(r.id, r.child_job_id, r.child_name, r.process, r.group_name)
                  for r in rows if r.child_status == TaskStatus.READY and not r.client]
    return dispatches, (first.job_id if first.remaining <= 0 else None)


def settled_jobs(session: Session, limit: int = 100) -> list[int]:
    """Executing jobs with no task left to finish: their end was not recorded (the
    process that finished their last task died first)."""
    return list(session.execute(
        select(Job.id).where(Job.status == JobStatus.EXECUTING, Job.remaining <= 0)
        .limit(limit)).scalars())


def end_settled_job(session: Session, job_id: int) -> bool:
    """End a job whose tasks have all finished; False if it was ended already."""
    row = session.connection().execute(
        select(_job.c.failed).where(_job.c.id == job_id,
                                    _job.c.status == JobStatus.EXECUTING.value,
                                    _job.c.remaining <= 0).with_for_update()).first()
    if row is None:
        return False
    _end_job(session, job_id, row.failed, clock.now())
    return True


def _success_statement() -> Any:
    """PostgreSQL: a successful attempt, its task, the job's counter and the held
    condition on the dependents listed in ``p_children``, in one statement.

    Each step reads the previous one's RETURNING, so a second report of the same
    attempt (nothing ``running`` to record) changes nothing at all. A dependent gets
    ``met + 1`` and is ready when that completes its conditions (``all``) or at once
    (``any``); a dependent no longer waiting is left alone. One row per dependent
    decided (or one row with no dependent)."""
    recorded = (update(_attempt).where(_attempt.c.task_id == bindparam("p_task"),
                                       _attempt.c.number == bindparam("p_number"),
                                       _attempt.c.outcome == Outcome.RUNNING.value)
                .values(outcome=Outcome.ENDED.value, ended_at=_NOW, error=None)
                .returning(_attempt.c.task_id).cte("recorded"))
    finished = (update(_task).where(_task.c.id.in_(select(recorded.c.task_id)),
                                    _guard(_task.c.status, TaskStatus.EXECUTING.value))
                .values(status=TaskStatus.ENDED.value)
                .returning(_task.c.job_id, _task.c.name, _task.c.dependents).cte("finished"))
    settled = (update(_job).where(_job.c.id.in_(select(finished.c.job_id)))
               .values(remaining=_job.c.remaining - 1)
               .returning(_job.c.remaining, _job.c.failed).cte("settled"))
    met = _task.c.met + 1
    ready = or_(_task.c.condition_type == ConditionType.ANY.value, met == _task.c.n_conditions)
    decided = (update(_task).where(
        _task.c.id == any_(bindparam("p_children", type_=ARRAY(Integer()))),
        _guard(_task.c.status, TaskStatus.WAITING.value), exists(select(finished.c.job_id)))
        .values(met=met, status=case((ready, TaskStatus.READY.value), else_=_task.c.status),
                ready_at=case((ready, _NOW), else_=_task.c.ready_at),
                queued=case((ready, True), else_=_task.c.queued))
        .returning(_task.c.id, _task.c.job_id.label("child_job_id"),
                   _task.c.name.label("child_name"), _task.c.process, _task.c.group_name,
                   _task.c.client, _task.c.status.label("child_status"))
        .cte("decided"))
    return (select(finished.c.job_id, finished.c.name, finished.c.dependents,
                   settled.c.remaining, settled.c.failed, decided.c.id, decided.c.child_job_id,
                   decided.c.child_name, decided.c.process, decided.c.group_name,
                   decided.c.client, decided.c.child_status)
            .select_from(finished.join(settled, true()).outerjoin(decided, true())))


_SUCCESS = _success_statement()


def propagate(session: Session, job_id: int, name: str, status: TaskStatus,
              dependents: list[Any], failed: int, now: datetime, *,
              settled: bool = False) -> list[Dispatch]:
    """Decide the dependents of a finished task, cascading ``not_run``; settle the job.

    One statement per dependent (:data:`_DECIDE`); the dependents come from the
    finished task's own row, so nothing else of the job is read.
    """
    conn = session.connection()
    dispatches: list[Dispatch] = []
    finished = 0 if settled else 1     # ``settled``: the task itself is already counted
    pending: deque[tuple[str, TaskStatus, list[Any]]] = deque([(name, status, dependents)])
    while pending:
        parent_name, parent_status, children = pending.popleft()
        for child_id, expected in children or ():
            held = holds(expected, parent_status)
            child = conn.execute(_DECIDE, {
                "p_task": child_id, "p_held": int(held), "p_unheld": int(not held),
                "p_reason": unmet_reason(parent_name, parent_status, expected), "p_now": now,
            }).first()
            if child is None:
                continue
            if child.status == TaskStatus.READY:
                if not child.client:
                    dispatches.append(Dispatch(child.id, child.job_id, child.name,
                                               child.process, child.group_name))
            elif child.status == TaskStatus.NOT_RUN:
                finished += 1
                if child.condition_type == ConditionType.ANY:
                    _explain_any(session, child_id)
                pending.append((child.name, TaskStatus.NOT_RUN, child.dependents))
    if finished or failed:
        _settle_job(session, job_id, finished, failed, now)
    return dispatches


def _explain_any(session: Session, task_id: int) -> None:
    """An ``any`` task became not_run: its reason names every condition (its own rows)."""
    parent = aliased(Task)
    rows = session.execute(
        select(parent.name, parent.status, Condition.expected)
        .join(Condition, Condition.parent_id == parent.id).where(Condition.task_id == task_id)
        .order_by(Condition.id)
    ).all()
    parts = [f"{n!r} is {s}, needs {e}" for n, s, e in rows]
    session.connection().execute(update(_task).where(_task.c.id == task_id).values(
        reason="no condition can hold any more: " + "; ".join(parts)))


def _settle_job(session: Session, job_id: int, finished: int, failed: int, now: datetime) -> None:
    """Count finished tasks on the job row; the last one decides the job's status."""
    conn = session.connection()
    remaining, total_failed = conn.execute(_SETTLE, {"p_job": job_id, "p_finished": finished,
                                                     "p_failed": failed}).one()
    if remaining <= 0:
        _end_job(session, job_id, total_failed, now)


def _end_job(session: Session, job_id: int, failed: int, now: datetime) -> None:
    """The job's last task has finished: the job (and its run) ends ended|error."""
    status = job_outcome(failed)
    if session.connection().execute(_END_JOB, {"p_job": job_id, "p_status": status.value,
                                               "p_now": now}).first() is not None:
        runs.end_run(session, job_id, status, now)


def due_jobs(session: Session, limit: int = 100) -> list[int]:
    """Ids of waiting jobs whose start time has come."""
    return list(session.execute(
        select(Job.id).where(Job.status == JobStatus.WAITING, Job.run_at <= clock.now())
        .order_by(Job.run_at).limit(limit)
    ).scalars())


def _stale() -> tuple[Any, ...]:
    """Queued ready tasks of ``p_group`` unclaimed since before ``p_cutoff``."""
    return (_task.c.status == TaskStatus.READY.value,
            _task.c.ready_at < bindparam("p_cutoff", type_=UTCDateTime()),
            _task.c.group_name == bindparam("p_group"),
            _task.c.client.is_(False), _task.c.queued.is_(True))


_HAS_STALE = select(_task.c.id).where(*_stale()).limit(1)
_REPUBLISH_STALE = _update_some(_stale(), (_task.c.ready_at, _task.c.id),
                                bindparam("p_limit", type_=Integer()), ready_at=_NOW)


def has_stale_ready(session: Session, older_than: timedelta, *, group: str) -> bool:
    """Whether :func:`stale_ready` would find anything (a read, no lock taken)."""
    params = {"p_cutoff": clock.now() - older_than, "p_group": group}
    return session.execute(_HAS_STALE, params).first() is not None


def stale_ready(session: Session, older_than: timedelta, *, group: str,
                limit: int = 1000) -> list[Dispatch]:
    """Queued ready tasks of ``group`` unclaimed for longer than ``older_than``; their
    ``ready_at`` is renewed so that only one caller republishes each."""
    conn = session.connection()
    now = clock.now()
    rows = conn.execute(_REPUBLISH_STALE.on(conn), {
        "p_cutoff": now - older_than, "p_group": group, "p_limit": limit, "p_now": now}).all()
    return queued(rows)


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
