"""The hot path's SQL, built once at import with bind parameters.

Building and ORM-processing these statements per call cost more than the database
round trips themselves, so the coordinator runs Core statements prebuilt here. They
read the same on every database; the few whose best form differs (the claim with its
attempt row, the one-statement success, choosing N rows) take that form in
:mod:`batchjobs.store.steps`, from the pieces defined here.

Every state change is guarded by the status it leaves (``… WHERE status = …``), so
a duplicated message or a second report of the same outcome changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)

from ..models import (
    UNQUEUED,
    Attempt,
    BatchGroup,
    BatchServer,
    Job,
    JobCounter,
    ServerGroup,
    Task,
    UTCDateTime,
)
from ..priority import HIGHEST
from ..status import ConditionType, JobStatus, Outcome, TaskStatus

task = Task.__table__
attempt = Attempt.__table__
job = Job.__table__
job_counter = JobCounter.__table__
server = BatchServer.__table__
server_group = ServerGroup.__table__
batch_group = BatchGroup.__table__

#: A dispatch's columns, then ``client`` (a ready client task is not queued: it waits
#: for ``batchjobs run-client``), then the task's ``timeout`` (its message's time limit)
#: and ``rank`` (its message's priority).
DISPATCH_COLUMNS = (task.c.id, task.c.job_id, task.c.name, task.c.process, task.c.group_name,
                    task.c.client, task.c.timeout, task.c.rank)
#: The order ready tasks are taken in: the highest rank, then the first ready.
READY_ORDER = (task.c.rank.desc(), task.c.ready_at, task.c.id)
#: What a claim returns of the task row: all a process needs to run.
CLAIMED_COLUMNS = (task.c.name, task.c.process, task.c.kwargs, task.c.company, task.c.run_as,
                   task.c.attempts, task.c.attempt_base, task.c.dependents, task.c.spawned_by)
NOW = bindparam("p_now", type_=UTCDateTime())
LIMIT = bindparam("p_limit", type_=Integer())
#: What an attempt's process raised and logged (None when it raised nothing or was quiet).
TRACEBACK = bindparam("p_traceback", value=None, type_=Text())
LOG = bindparam("p_log", value=None, type_=Text())
#: The incarnation of the server that claims or reports (None: ``run-client``, recovery).
INCARNATION = bindparam("p_incarnation", None, type_=String())
SERVER = bindparam("p_server", type_=String())


def guard(column: Any, value: Any) -> Any:
    """A condition on a row found by its primary key (a status or job it must still
    have), written so that no index matches it.

    PostgreSQL must never prefer an index on ``(job_id, status)`` or ``(status, …)`` to
    the primary key: with statistics taken before a large job changed its tasks' status,
    it did, and one claim scanned every ready task of a 20,000-task job (10 ms a task).
    ``IS NOT DISTINCT FROM`` is the same test on these non-null columns, and no index
    serves it."""
    return column.is_not_distinct_from(value)


@dataclass(frozen=True, eq=False)
class ChooseSome:
    """An update of up to ``p_limit`` tasks matching ``where`` (taken in ``order``) that
    returns them as dispatches; rows another caller holds are skipped, not waited for.

    Defined once here; each database's steps write it in their own form
    (:meth:`batchjobs.store.steps.Steps.choose_some`) and keep that form."""

    where: tuple[Any, ...]
    order: tuple[Any, ...]
    values: dict[str, Any] = field(default_factory=dict)

    def chosen(self) -> Any:
        """The rows to update: ``SELECT id … LIMIT n FOR UPDATE SKIP LOCKED``."""
        return (select(task.c.id).where(*self.where).order_by(*self.order).limit(LIMIT)
                .with_for_update(skip_locked=True).correlate(None))


START_JOB = (update(job).where(job.c.id == bindparam("p_job"),
                               job.c.status == JobStatus.WAITING.value)
             .values(status=JobStatus.EXECUTING.value, started_at=NOW).returning(job.c.id))
START_ROOTS = (update(task).where(task.c.job_id == bindparam("p_job"),
                                  task.c.status == TaskStatus.WAITING.value,
                                  task.c.n_conditions == 0)
               .values(status=TaskStatus.READY.value, ready_at=NOW, queued=False))
#: Unqueued ready tasks of a starting job, marked queued to be published.
QUEUE_OF_JOB = ChooseSome((UNQUEUED, task.c.job_id == bindparam("p_job")),
                          (task.c.rank.desc(), task.c.id), {"queued": True})
#: Unqueued ready tasks of a group, highest rank first, then oldest: a housekeeper's feed.
QUEUE_OF_GROUP = ChooseSome((UNQUEUED, task.c.group_name == bindparam("p_group")),
                            READY_ORDER, {"queued": True})

def _serves() -> Any:
    """The claiming batch server still holds its name (its incarnation is the record's:
    a process fenced off by a newer start claims nothing) and serves the task's group (a
    message on another group's queue, forged or misrouted, runs nothing). A claim
    without an incarnation is a person's (``run-client``), not a server's."""
    holds_name = exists(select(server.c.name).where(server.c.name == SERVER,
                                                    server.c.incarnation == INCARNATION))
    serves_group = exists(select(server_group.c.server_name).where(
        server_group.c.server_name == SERVER, server_group.c.group_name == task.c.group_name))
    return or_(cast(INCARNATION, String()).is_(None), and_(holds_name, serves_group))


def _uncapped() -> Any:
    """Neither the task's job nor its group has a concurrency cap: two reads by primary
    key inside the claim. A capped task is claimed by
    :func:`batchjobs.coordinator.concurrency.claim_capped` instead, which counts."""
    job_cap = select(job.c.max_concurrency).where(job.c.id == bindparam("p_job"))
    group_cap = select(batch_group.c.max_concurrency).where(
        batch_group.c.name == task.c.group_name)
    return and_(job_cap.scalar_subquery().is_(None), group_cap.scalar_subquery().is_(None))


def _claim(*where: Any, which: Any = None, returning: tuple[Any, ...] = CLAIMED_COLUMNS,
           ) -> Any:
    return (update(task).where(task.c.id == bindparam("p_task") if which is None else which,
                               guard(task.c.job_id, bindparam("p_job")),
                               guard(task.c.status, TaskStatus.READY.value),
                               # a delayed retry is not claimable before it is released,
                               # even by an old message the broker delivers again
                               task.c.not_before.is_(None), _serves(), *where)
            .values(status=TaskStatus.EXECUTING.value, attempts=task.c.attempts + 1)
            .returning(*returning))


#: The claim of a task without a cap (the hot path); refused for a capped one.
CLAIM = _claim(_uncapped())
#: The claim of a capped task, once its job's and group's rows are locked and counted.
CLAIM_CAPPED = _claim()

_previous = task.alias("previous")
#: The head of a group's backlog (its unqueued ready tasks, in feed order: no message
#: names them), the group being that of task ``p_prev``: a chain's next task, if it is of
#: the chain's job (a higher-priority task of another job ends the chain: the feeders
#: give it a message). A row another chain or a feeder holds is skipped, not waited for.
HEAD_OF_GROUP = (select(task.c.id)
                 .where(UNQUEUED, task.c.group_name == select(_previous.c.group_name).where(
                     _previous.c.id == bindparam("p_prev")).scalar_subquery())
                 .order_by(*READY_ORDER).limit(1).with_for_update(skip_locked=True)
                 .correlate(None))
#: A chain's claim (:func:`batchjobs.coordinator.claim.claim_next`): the head of the
#: group's backlog, if it is of job ``p_job``, has no time limit (a message's limit
#: would be the first task's) and neither its job nor its group has a cap; returns the
#: claimed columns and the task's id.
CLAIM_NEXT = _claim(_uncapped(), task.c.timeout.is_(None),
                    which=task.c.id == HEAD_OF_GROUP.scalar_subquery(),
                    returning=(*CLAIMED_COLUMNS, task.c.id))
#: The task a message's chain claimed if that claim's reply was lost (the statement ran,
#: the connection broke): its running attempt has the message's id and is not task
#: ``p_prev``'s. The claimed columns and its id, as :data:`CLAIM_NEXT` returns them.
CLAIMED_BY_MESSAGE = (select(*CLAIMED_COLUMNS, task.c.id)
                      .join(attempt, and_(attempt.c.task_id == task.c.id,
                                          attempt.c.number == task.c.attempts))
                      .where(attempt.c.message_id == bindparam("p_message"),
                             attempt.c.server == bindparam("p_server"),
                             attempt.c.outcome == Outcome.RUNNING.value,
                             task.c.status == TaskStatus.EXECUTING.value,
                             task.c.id != bindparam("p_prev"))
                      .order_by(attempt.c.id.desc()).limit(1))
#: A capped task refused at its claim: left ready, unqueued (its message is consumed),
#: for a feed to publish again once a slot frees.
UNQUEUE = (update(task).where(task.c.id == bindparam("p_task"),
                              guard(task.c.status, TaskStatus.READY.value))
           .values(queued=False))
#: The run an attempt belongs to: the job's current one.
CURRENT_RUN = select(job.c.run_number).where(job.c.id == bindparam("p_job")).scalar_subquery()
INSERT_ATTEMPT = insert(attempt).values(
    run=CURRENT_RUN, task_id=bindparam("p_task"), number=bindparam("p_number"),
    server=SERVER, company=bindparam("p_company"), user=bindparam("p_user"),
    started_at=NOW, outcome=Outcome.RUNNING.value, message_id=bindparam("p_message"),
    incarnation=INCARNATION)


def reported_by_runner() -> Any:
    """An outcome counts only if reported by the incarnation that runs the attempt, and
    while that incarnation holds the server's name (a fenced-off process changes
    nothing); recovery and the server's main process report without one."""
    holds_name = exists(select(server.c.name).where(server.c.name == attempt.c.server,
                                                    server.c.incarnation == INCARNATION))
    return or_(cast(INCARNATION, String()).is_(None),
               and_(guard(attempt.c.incarnation, INCARNATION), holds_name))

RECORD_ATTEMPT = (update(attempt).where(attempt.c.task_id == bindparam("p_task"),
                                        attempt.c.number == bindparam("p_number"),
                                        attempt.c.outcome == Outcome.RUNNING.value,
                                        reported_by_runner())
                  .values(outcome=bindparam("p_outcome"), ended_at=NOW,
                          error=bindparam("p_error", value=None), traceback=TRACEBACK, log=LOG)
                  .returning(attempt.c.id))
RETRY = (update(task).where(task.c.id == bindparam("p_task"),
                            guard(task.c.status, TaskStatus.EXECUTING.value),
                            task.c.attempts - task.c.attempt_base <= task.c.retries)
         .values(status=TaskStatus.READY.value, ready_at=NOW, queued=True)
         .returning(*DISPATCH_COLUMNS))
FINISH = (update(task).where(task.c.id == bindparam("p_task"),
                             guard(task.c.status, TaskStatus.EXECUTING.value))
          .values(status=bindparam("p_status"))
          .returning(task.c.job_id, task.c.name, task.c.ignore_failure, task.c.dependents,
                     task.c.spawned_by, task.c.counter))
#: Finished tasks counted on the job's own row (counter 0), failures too.
SETTLE = (update(job).where(job.c.id == bindparam("p_job"))
          .values(remaining=job.c.remaining - bindparam("p_finished"),
                  failed=job.c.failed + bindparam("p_failed"))
          .returning(job.c.remaining, job.c.failed))
#: Finished tasks counted on one of the job's other counters.
COUNT_DOWN = (update(job_counter).where(job_counter.c.job_id == bindparam("p_job"),
                                        job_counter.c.counter == bindparam("p_counter"))
              .values(remaining=job_counter.c.remaining - bindparam("p_finished"))
              .returning(job_counter.c.remaining))


def unfinished(job_id: Any) -> Any:
    """The number of unfinished tasks of the job ``job_id`` (a column or a parameter):
    its own row's counter and its other counters."""
    others = (select(func.sum(job_counter.c.remaining))
              .where(job_counter.c.job_id == job_id).scalar_subquery())
    return job.c.remaining + func.coalesce(others, 0)


END_JOB = (update(job).where(job.c.id == bindparam("p_job"),
                             job.c.status == JobStatus.EXECUTING.value)
           .values(status=bindparam("p_status"), ended_at=NOW).returning(job.c.id))


def _decide_statement() -> Any:
    """One more condition outcome applied to a waiting task, deciding it in the same row.

    The rules of :func:`graph.decide`, written over the *new* counters (SET
    expressions read the old row): ``all`` is ready when every condition holds
    and not_run as soon as one cannot; ``any`` is ready as soon as one holds and
    not_run when none can. A task that is no longer waiting is left alone.
    """
    met = task.c.met + bindparam("p_held", type_=Integer())
    unmet = task.c.unmet + bindparam("p_unheld", type_=Integer())
    is_all = task.c.condition_type == ConditionType.ALL.value
    ready = or_(and_(is_all, met == task.c.n_conditions), and_(not_(is_all), met > 0))
    never = or_(and_(is_all, unmet > 0), and_(not_(is_all), unmet == task.c.n_conditions))
    return (update(task).where(task.c.id == bindparam("p_task"),
                               guard(task.c.status, TaskStatus.WAITING.value))
            .values(met=met, unmet=unmet,
                    status=case((ready, TaskStatus.READY.value),
                                (never, TaskStatus.NOT_RUN.value), else_=task.c.status),
                    ready_at=case((ready, NOW), else_=task.c.ready_at),
                    queued=case((ready, True), else_=task.c.queued),
                    reason=case((never, bindparam("p_reason")), else_=task.c.reason))
            .returning(task.c.status, task.c.condition_type, task.c.dependents,
                       task.c.spawned_by, task.c.counter, *DISPATCH_COLUMNS))


DECIDE = _decide_statement()


def _settle_spawner_statement() -> Any:
    """One of the tasks a task added at run time has finished: count it on the adding
    task, which ends (``ended``, or ``error`` if one of them failed) with the last one.

    ``p_failed`` is 1 when the finished task ended ``error`` without ``ignore_failure``;
    the first such names itself in the adding task's reason. A task that is no longer
    executing (its job was canceled) is left alone."""
    failed = bindparam("p_failed", type_=Integer())
    left = task.c.open_children - 1
    failures = task.c.failed_children + failed
    last = left <= 0
    return (update(task).where(task.c.id == bindparam("p_task"),
                               guard(task.c.status, TaskStatus.EXECUTING.value),
                               task.c.open_children > 0)
            .values(open_children=left, failed_children=failures,
                    status=case((and_(last, failures > 0), TaskStatus.ERROR.value),
                                (last, TaskStatus.ENDED.value), else_=task.c.status),
                    reason=case((and_(failed > 0, task.c.failed_children == 0),
                                 bindparam("p_reason")), else_=task.c.reason))
            .returning(task.c.status, task.c.name, task.c.ignore_failure, task.c.dependents,
                       task.c.spawned_by, task.c.failed_children, task.c.reason,
                       task.c.counter))


SETTLE_SPAWNER = _settle_spawner_statement()


def _stale() -> tuple[Any, ...]:
    """Queued ready tasks of ``p_group`` unclaimed since before ``p_cutoff``."""
    return (task.c.status == TaskStatus.READY.value,
            task.c.ready_at < bindparam("p_cutoff", type_=UTCDateTime()),
            task.c.group_name == bindparam("p_group"),
            task.c.client.is_(False), task.c.queued.is_(True))


HAS_STALE = select(task.c.id).where(*_stale()).limit(1)


def _aged(queued: bool) -> ChooseSome:
    """Ready tasks (with a message on the broker or not) that have waited long enough
    to rise one rank: ``k`` agings for the ``k``-th rise (``p_aged<k>``)."""
    risen = task.c.rank - task.c.priority
    cutoffs = [bindparam(f"p_aged{k}", type_=UTCDateTime()) for k in range(1, HIGHEST + 1)]
    due = or_(*(and_(risen == k, task.c.ready_at < cutoff) for k, cutoff in enumerate(cutoffs)))
    # ``ready_at < p_aged1`` (the latest cutoff) on its own too: an index range to scan.
    return ChooseSome((task.c.status == TaskStatus.READY.value, task.c.ready_at < cutoffs[0],
                       task.c.rank < HIGHEST, task.c.queued.is_(queued), due),
                      (task.c.ready_at, task.c.id), {"rank": task.c.rank + 1})


#: Queued tasks that rise a rank: republished with it (the claim drops the older message).
AGE_QUEUED = _aged(True)
#: Unqueued tasks that rise a rank: the feeders take them sooner.
AGE_UNQUEUED = _aged(False)
#: Stale ready tasks, their ``ready_at`` renewed so that only one caller republishes each.
REPUBLISH_STALE = ChooseSome(_stale(), (task.c.ready_at, task.c.id), {"ready_at": NOW})
