"""Python operations on batch jobs: submit, status, list, wait.

Everything a user does from code goes through here, and the CLI is a thin
shell over these functions.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from . import clock, counters, priority, queues, reads, store
from .errors import DispatchError, InvalidRecurrence, JobNotFound, TaskNotFound
from .models import Attempt, BatchGroup, Condition, Job, Task
from .settings import Settings, get_settings
from .status import JOB_FINAL, JobStatus, TaskStatus

if TYPE_CHECKING:
    from .definition import JobSpec
    from .retry import Policy

log = logging.getLogger(__name__)

#: Seconds between two looks at the database while waiting for a job.
WAIT_POLL_INTERVAL = 0.05


def current_user() -> str:
    """The OS user of this process: who a job runs as when no user is given."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


def submit(job: JobSpec, *, user: str | None = None, hold: bool = False,
           settings: Settings | None = None,
           on_deferred: Callable[[int, DispatchError], None] | None = None) -> int:
    """Validate and store ``job`` in one transaction, start it if due; return its id.

    Nothing is stored when validation fails, nor when the broker URL can never work
    (:class:`ConfigError`). Tasks without conditions are published as soon as the
    transaction commits. A job committed is a job: if the broker cannot be reached then,
    its id is still returned, ``on_deferred(job_id, error)`` is told (by default a
    warning is logged), and housekeepers publish its ready tasks once the broker answers
    and they have waited ``BATCHJOBS_REPUBLISH_AFTER``.
    """
    # Here, not at the top: reading a status needs none of them (nor croniter, the sinks).
    from . import job_conditions, runs, wakeup
    from .coordinator import start_job
    from .processes import get_process
    from .recurrence import Recurrence, first_occurrence

    settings = settings or get_settings()
    queues.check_broker_url(settings)
    user = user or current_user()
    now = clock.now()
    with store.read_session(settings, create=True) as session:
        groups = set(session.execute(select(BatchGroup.name)).scalars())
    job.validate(groups=groups)
    if any(t.after_jobs for t in job.tasks):
        with store.read_session(settings) as session:
            job_conditions.check_awaited(session, job)
    recurrence = job.recurrence if isinstance(job.recurrence, Recurrence) else None
    run_at = job.run_at
    if recurrence is not None:
        run_at = first_occurrence(recurrence, run_at or now)
        if run_at is None:
            raise InvalidRecurrence("no occurrence before end_by", field="recurrence.end_by",
                                    value=recurrence.to_json()["end_by"])
    # Per process and per priority, not per task: a large job has few of each.
    clients = {name: get_process(name).client for name in {t.process for t in job.tasks}}
    starts_now = not hold and (run_at is None or run_at <= now)
    ready_now = {t.name for t in job.tasks
                 if starts_now and not t.depends_on and not t.after_jobs}
    ranks = {word: priority.rank(word)
             for word in {t.priority or job.priority for t in job.tasks}}
    with store.transaction(settings) as session:
        from .owners import check_submitter

        check_submitter(session, user, settings)
        status = JobStatus.HOLD if hold else JobStatus.WAITING
        ids = dict(zip((t.name for t in job.tasks),
                       store.allocate_ids(session, "tasks", len(job.tasks)), strict=True))
        counter_of = counters.spread(list(ids.values()))
        job_id = session.execute(insert(Job).values(
            description=job.description, status=status, alert=job.alert.value,
            company=job.company, created_by=user, created_at=now, run_at=run_at,
            task_count=len(job.tasks), remaining=counters.on_job(counter_of), failed=0,
            recurrence=recurrence.to_json() if recurrence else None, run_number=1,
            priority=priority.rank(job.priority), max_concurrency=job.max_concurrency,
        ).returning(Job.id)).scalar_one()
        counters.store_counters(session, job_id, counter_of)
        runs.new_run(session, job_id, 1, status=status, scheduled_at=run_at or now)
        dependents: dict[str, list[list[Any]]] = {t.name: [] for t in job.tasks}
        conditions = []
        for t in job.tasks:
            for d in t.depends_on:
                dependents[d.task].append([ids[t.name], d.status.value])
                conditions.append({"task_id": ids[t.name], "parent_id": ids[d.task],
                                   "expected": d.status.value})
        retry_columns: dict[Policy, dict[str, Any]] = {}
        rows = []
        for t in job.tasks:
            policy = job.retry_policy(t)
            if (retry := retry_columns.get(policy)) is None:
                retry = retry_columns[policy] = _retry_columns(policy)
            rank = ranks[t.priority or job.priority]
            rows.append({
                "id": ids[t.name], "job_id": job_id, "name": t.name, "process": t.process,
                "kwargs": t.kwargs, "group_name": t.group,
                "company": t.company if t.company is not None else job.company,
                "retries": t.retries, "ignore_failure": t.ignore_failure,
                "condition_type": t.condition.value,
                # a job that starts now stores its roots ready: no second write of each row
                "status": TaskStatus.READY if t.name in ready_now else TaskStatus.WAITING,
                "ready_at": now if t.name in ready_now else None, "queued": False,
                "n_conditions": len(t.depends_on) + len(t.after_jobs), "met": 0, "unmet": 0,
                "attempts": 0, "attempt_base": 0, "client": clients[t.process],
                "timeout": t.timeout if t.timeout is not None else job.timeout,
                **retry, "priority": rank, "rank": rank,
                "run_as": user, "dependents": dependents[t.name],
                "counter": counter_of[ids[t.name]]})
        store.insert_many(session, Task.__table__, rows)
        if conditions:
            store.insert_many(session, Condition.__table__, conditions)
        job_conditions.store_conditions(session, job_id, ids, job)
        dispatches = []
        if starts_now:
            dispatches = start_job(session, job_id, settings.queue_depth, settings)
        elif not hold:   # due later: the housekeepers wake at run_at, not at a tick
            wakeup.notify(session)
    try:
        queues.publish(dispatches, settings=settings)
    except DispatchError as exc:
        (on_deferred or _log_deferred)(job_id, exc)
    return job_id


def _retry_columns(policy: Policy) -> dict[str, Any]:
    """A task's retry policy as its row stores it (None where it is the default)."""
    return {"retry_delay": policy.delay or None,
            "retry_backoff": None if policy.backoff == 1 else policy.backoff,
            "retry_max_delay": policy.max_delay,
            "retry_on": None if policy.retry_on is None else list(policy.retry_on),
            "not_before": None}


def _log_deferred(job_id: int, error: DispatchError) -> None:
    log.warning("job %s stored; dispatch deferred (%s): housekeepers publish its ready "
                "tasks once the broker answers", job_id, error)


def status(job_id: int, *, settings: Settings | None = None) -> dict[str, Any]:
    """The job and each task's status, last attempt, error and reason (times in UTC
    ISO-8601): :func:`batchjobs.reads.job_view` on a connection of the store's pool."""
    with store.reader(settings) as reader:
        return reads.job_view(reader, job_id)


def history(job_id: int, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every run of the job: number, kind, scheduled, start, end, status, skipped."""
    with store.read_session(settings) as session:
        if session.get(Job, job_id) is None:
            raise JobNotFound(job_id)
        from . import runs

        return runs.history(session, job_id)


def changes(job_id: int, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """What was changed on the job by hand (its run-as user reassigned): who, when, from,
    to, oldest first."""
    with store.reader(settings) as reader:
        if not reader.rows("SELECT id FROM jobs WHERE id = ?", job_id):
            raise JobNotFound(job_id)
        return reads.changes(reader, job_id)


def attempts(job_id: int, *, task: str | None = None, number: int | None = None,
             settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every attempt of every task of the job (or of ``task``, or its attempt ``number``),
    oldest first, each with its error, traceback and log."""
    with store.read_session(settings) as session:
        if session.get(Job, job_id) is None:
            raise JobNotFound(job_id)
        query = (select(Task.name, Attempt).join(Attempt, Attempt.task_id == Task.id)
                 .where(Task.job_id == job_id).order_by(Attempt.started_at, Attempt.id))
        if task is not None:
            if session.execute(select(Task.id).where(Task.job_id == job_id,
                                                     Task.name == task)).first() is None:
                raise TaskNotFound(job_id, task)
            query = query.where(Task.name == task)
        if number is not None:
            query = query.where(Attempt.number == number)
        return [{"task": name, "number": a.number, "run": a.run, "server": a.server,
                 "company": a.company, "user": a.user, "started_at": clock.iso(a.started_at),
                 "ended_at": clock.iso(a.ended_at), "outcome": a.outcome, "error": a.error,
                 "traceback": a.traceback, "log": a.log}
                for name, a in session.execute(query).all()]


def list_jobs(*, limit: int = 100, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The most recent jobs, newest first."""
    with store.read_session(settings) as session:
        jobs = session.execute(select(Job).order_by(Job.id.desc()).limit(limit)).scalars()
        return [{"id": j.id, "description": j.description, "status": j.status,
                 "created_by": j.created_by, "created_at": clock.iso(j.created_at),
                 "hold_reason": j.hold_reason} for j in jobs]


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

