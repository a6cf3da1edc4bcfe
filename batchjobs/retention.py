"""Retention: deleting finished jobs once they are old enough.

A job is finished when its status is ``ended``, ``error`` or ``canceled`` and it does not
recur; it is as old as its ``ended_at``. Deleting it deletes every row of it: its
tasks, conditions, attempts (with their logs and tracebacks), runs, alerts and their
deliveries, and its audit rows. Jobs go in batches (:data:`BATCH_JOBS` jobs, or fewer
if they hold more than :data:`BATCH_TASKS` tasks together), one transaction each, so no
transaction holds locks for long however much there is to delete; the jobs of a batch
are locked while they go, so a rerun racing with it either waits and finds no job, or
wins and the job (executing again) is no longer finished.

A recurring job is never deleted: its definition is what its next runs are made of, and
even a finished series starts again on a rerun. What grows with it is its attempts (one
per task per run, each with its log), so those of its runs that finished before the
cutoff are deleted, with those runs' alerts and deliveries. Its ``job_runs`` rows stay:
one short row per run, and the series' arithmetic (``every`` counts from run 1's time,
``end_after`` counts the scheduled runs) reads them.

A job that an unfinished job still has a condition on is kept (:func:`_still_needed`).

``BATCHJOBS_RETENTION`` (off by default) makes the housekeepers do it once a day
(:func:`daily`): one housekeeper at a time, by a lease on a ``duty_leases`` row taken
with a guarded update (SQLite and PostgreSQL alike), compared with the database's clock.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import store
from .errors import InvalidValue
from .models import (
    Alert,
    AlertDelivery,
    Attempt,
    Condition,
    DutyLease,
    Job,
    JobAudit,
    JobCondition,
    JobCounter,
    JobRun,
    Task,
)
from .settings import Settings, get_settings, parse_duration
from .status import JOB_FINAL, JobStatus

log = logging.getLogger(__name__)

#: Jobs deleted per transaction at most.
BATCH_JOBS = 500
#: Tasks per transaction at most (a batch holds at least one job, however large).
BATCH_TASKS = 50_000
#: The tables a finished job has rows in, in the order they are deleted (children first).
TABLES = ("alert_deliveries", "alerts", "attempts", "conditions", "job_runs", "job_audit",
          "job_conditions", "tasks", "job_counters", "jobs")
#: The lease's name, how often the housekeepers clean up, and how long one may take
#: before another housekeeper may take over (the work is in batches: nothing is lost).
DUTY = "retention"
PERIOD = timedelta(days=1)
LEASE = timedelta(hours=1)


#: A job that recurs: ``recurrence`` holds a mapping (a job that does not is stored with
#: SQL NULL or JSON ``null``, depending on how it was written).
RECURS = func.coalesce(cast(Job.recurrence, String), "null") != "null"


def _still_needed(session: Session, job_ids: Sequence[int]) -> set[int]:
    """The jobs among ``job_ids`` that an unfinished job still has a condition on
    (:mod:`batchjobs.job_conditions`): kept until that job has finished."""
    from .job_conditions import still_needed

    return still_needed(session, job_ids)


# -- input --------------------------------------------------------------------------------


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (``0s``: every finished job)."""
    seconds = parse_duration(text)
    if seconds is None:
        raise InvalidValue(f"--older-than {text!r} must be an age such as 30d, 12h, 90m, 45s "
                           "or 2w", field="--older-than", value=text)
    return timedelta(seconds=seconds)


def parse_statuses(text: str) -> tuple[JobStatus, ...]:
    """``ended,error,canceled`` (any of them): the statuses of the jobs to delete."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    finished = sorted(s.value for s in JOB_FINAL)
    if not words:
        raise InvalidValue(f"--status {text!r} names no status (any of {', '.join(finished)})",
                           field="--status", value=text)
    for word in words:
        if word not in finished:
            raise InvalidValue(f"--status {word!r} is not a finished status (any of "
                               f"{', '.join(finished)})", field="--status", value=word)
    return tuple(JobStatus(w) for w in dict.fromkeys(words))


# -- cleanup ------------------------------------------------------------------------------


@dataclass
class Report:
    """What a cleanup deleted (or, dry, would delete): rows per table."""

    cutoff: datetime
    statuses: tuple[JobStatus, ...]
    dry_run: bool
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    #: Finished jobs kept because another job depends on them.
    kept: list[int] = field(default_factory=list)
    #: Recurring jobs whose old attempts were deleted.
    recurring: int = 0

    def add(self, counts: dict[str, int]) -> None:
        for table, count in counts.items():
            self.rows[table] += count

    def to_json(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat().replace("+00:00", "Z"),
                "statuses": [s.value for s in self.statuses], "dry_run": self.dry_run,
                "deleted": dict(self.rows), "kept": list(self.kept),
                "recurring_jobs_pruned": self.recurring}


def cleanup(older_than: timedelta, *, statuses: Iterable[JobStatus] = tuple(JOB_FINAL),
            dry_run: bool = False, settings: Settings | None = None) -> Report:
    """Delete the finished jobs (of ``statuses``) that ended more than ``older_than`` ago,
    by the database's clock, and the old attempts of recurring jobs; or only count them
    (``dry_run``)."""
    settings = settings or get_settings()
    chosen = tuple(sorted(set(statuses), key=lambda s: s.value))
    with store.read_session(settings) as session:
        cutoff = store.now(session) - older_than
    report = Report(cutoff, chosen, dry_run)
    after = 0
    while True:
        with store.transaction(settings) as session:
            batch = _finished_jobs(session, cutoff, chosen, after)
            if not batch:
                break
            after = batch[-1]
            kept = _still_needed(session, batch)
            report.kept += sorted(kept)
            report.add(_rows_of_jobs(session, [j for j in batch if j not in kept], dry_run))
    after = 0
    while True:
        with store.transaction(settings) as session:
            batch = _recurring_jobs(session, after)
            if not batch:
                break
            after = batch[-1]
            counts = _old_runs_of_recurring(session, batch, cutoff, chosen, dry_run)
            report.recurring += counts.pop("_jobs")
            report.add(counts)
    if not dry_run and any(report.rows.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in report.rows.items()
                                                     if n))
    return report


def _finished_jobs(session: Session, cutoff: datetime, statuses: Sequence[JobStatus],
                   after: int) -> list[int]:
    """The next batch of finished, non-recurring jobs ended by ``cutoff`` (ids above
    ``after``), locked: at most :data:`BATCH_JOBS`, and :data:`BATCH_TASKS` tasks."""
    rows = session.execute(
        select(Job.id, Job.task_count).where(
            Job.status.in_([s.value for s in statuses]), Job.ended_at <= cutoff,
            ~RECURS, Job.id > after)
        .order_by(Job.id).limit(BATCH_JOBS).with_for_update()).all()
    chosen: list[int] = []
    tasks = 0
    for job_id, count in rows:
        if chosen and tasks + count > BATCH_TASKS:
            break
        chosen.append(int(job_id))
        tasks += count
    return chosen


def _rows_of_jobs(session: Session, job_ids: list[int], dry_run: bool) -> dict[str, int]:
    if not job_ids:
        return {}
    tasks = select(Task.id).where(Task.job_id.in_(job_ids))
    alerts = select(Alert.id).where(Alert.job_id.in_(job_ids))
    return _delete(session, dry_run, [
        ("alert_deliveries", AlertDelivery, AlertDelivery.alert_id.in_(alerts)),
        ("alerts", Alert, Alert.job_id.in_(job_ids)),
        ("attempts", Attempt, Attempt.task_id.in_(tasks)),
        ("conditions", Condition, or_(Condition.task_id.in_(tasks),
                                      Condition.parent_id.in_(tasks))),
        ("job_runs", JobRun, JobRun.job_id.in_(job_ids)),
        ("job_audit", JobAudit, JobAudit.job_id.in_(job_ids)),
        ("job_conditions", JobCondition, JobCondition.job_id.in_(job_ids)),
        ("tasks", Task, Task.job_id.in_(job_ids)),
        ("job_counters", JobCounter, JobCounter.job_id.in_(job_ids)),
        ("jobs", Job, Job.id.in_(job_ids)),
    ])


def _recurring_jobs(session: Session, after: int) -> list[int]:
    return [int(i) for i in session.execute(
        select(Job.id).where(RECURS, Job.id > after)
        .order_by(Job.id).limit(BATCH_JOBS).with_for_update()).scalars()]


def _old_runs_of_recurring(session: Session, job_ids: list[int], cutoff: datetime,
                           statuses: Sequence[JobStatus], dry_run: bool) -> dict[str, int]:
    """Attempts, alerts and deliveries of the runs of recurring jobs that finished (with
    one of ``statuses``) by ``cutoff``, the current run excepted; the runs stay."""
    old_run = (select(JobRun.id).join(Job, Job.id == JobRun.job_id).where(
        JobRun.job_id.in_(job_ids), JobRun.number < Job.run_number,
        JobRun.status.in_([s.value for s in statuses]), JobRun.ended_at <= cutoff))
    old_attempt = (select(Attempt.id).join(Task, Task.id == Attempt.task_id)
                   .join(JobRun, and_(JobRun.job_id == Task.job_id,
                                      JobRun.number == Attempt.run))
                   .where(Task.job_id.in_(job_ids), JobRun.id.in_(old_run)))
    old_alert = (select(Alert.id).join(JobRun, and_(JobRun.job_id == Alert.job_id,
                                                    JobRun.number == Alert.run))
                 .where(Alert.job_id.in_(job_ids), JobRun.id.in_(old_run)))
    counts = _delete(session, dry_run, [
        ("alert_deliveries", AlertDelivery, AlertDelivery.alert_id.in_(old_alert)),
        ("alerts", Alert, Alert.id.in_(old_alert)),
        ("attempts", Attempt, Attempt.id.in_(old_attempt)),
    ])
    counts["_jobs"] = len(job_ids) if any(counts.values()) else 0
    return counts


def _delete(session: Session, dry_run: bool,
            tables: list[tuple[str, Any, ColumnElement[bool]]]) -> dict[str, int]:
    """Delete (or count) each table's rows matching its predicate, children first."""
    counts: dict[str, int] = {}
    for name, model, where in tables:
        if dry_run:
            counts[name] = int(session.execute(
                select(func.count()).select_from(model).where(where)).scalar_one())
        else:
            result = session.execute(delete(model).where(where),
                                     execution_options={"synchronize_session": False})
            counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


# -- the housekeepers' daily duty -----------------------------------------------------------


def daily(settings: Settings, broker: Any = None) -> Report | None:
    """The housekeepers' duty (every heartbeat): when ``BATCHJOBS_RETENTION`` is set and a
    day has passed since the last cleanup, the one housekeeper that takes the lease
    cleans up. Off, it reads nothing; on, it costs one primary-key read until due."""
    if settings.retention is None:
        return None
    holder = take_lease(settings)
    if holder is None:
        return None
    try:
        report = cleanup(timedelta(seconds=settings.retention), settings=settings)
    except BaseException:
        give_back(holder, settings, done=False)
        raise
    give_back(holder, settings, done=True)
    return report


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take_lease(settings: Settings, *, period: timedelta = PERIOD,
               lease: timedelta = LEASE) -> str | None:
    """This process's holder id if it took the retention lease (due: not done within
    ``period``, nobody holding it), else None. A guarded update: one taker wins."""
    with store.read_session(settings) as session:
        now = store.now(session)
        row = session.execute(select(DutyLease.done_at, DutyLease.expires_at)
                              .where(DutyLease.name == DUTY)).first()
    if row is not None and not _due(row.done_at, row.expires_at, now, period):
        return None
    if row is None:
        try:
            with store.transaction(settings) as session:
                session.execute(insert(DutyLease).values(name=DUTY))
        except IntegrityError:
            pass       # another housekeeper made it first
    holder = _me()
    with store.transaction(settings) as session:
        now = store.now(session)
        taken = session.execute(update(DutyLease).where(
            DutyLease.name == DUTY,
            or_(DutyLease.done_at.is_(None), DutyLease.done_at <= now - period),
            or_(DutyLease.expires_at.is_(None), DutyLease.expires_at <= now))
            .values(holder=holder, expires_at=now + lease).returning(DutyLease.name)).first()
    return holder if taken is not None else None


def _due(done_at: datetime | None, expires_at: datetime | None, now: datetime,
         period: timedelta) -> bool:
    return (done_at is None or done_at <= now - period) and (
        expires_at is None or expires_at <= now)


def give_back(holder: str, settings: Settings, *, done: bool) -> None:
    """Free the lease ``holder`` took; ``done`` records the cleanup's time."""
    with store.transaction(settings) as session:
        values: dict[str, Any] = {"holder": None, "expires_at": None}
        if done:
            values["done_at"] = store.now(session)
        session.execute(update(DutyLease).where(DutyLease.name == DUTY,
                                                DutyLease.holder == holder).values(**values))
