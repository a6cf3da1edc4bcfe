"""The database tables, as typed SQLAlchemy 2.x models.

Counters on ``tasks`` (``met``/``unmet``), ``jobs`` (``remaining``/``failed``) and
``job_counters`` (the rest of a large job's ``remaining``) let the coordinator decide
from the rows it touches, never by scanning a job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    literal_column,
    not_,
    or_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .status import (
    Alert as AlertSetting,
)
from .status import (
    ConditionType,
    DeliveryStatus,
    Expected,
    JobStatus,
    Outcome,
    RunKind,
    Sink,
    TaskStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored in UTC; SQLite's naive values come back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        # SQLite's DATETIME writes the wall time and drops the offset, which is UTC here.
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: store aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def words(kind: type[StrEnum], length: int = 16) -> Enum:
    """A column of one enum's words, stored as the lowercase words themselves (a
    ``VARCHAR``, no database enum type: adding a word needs no schema change). Values
    come back as the enum; a word outside it is refused before it reaches the database."""
    return Enum(kind, native_enum=False, create_constraint=False, length=length,
                validate_strings=True, values_callable=lambda members: [m.value for m in members])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime,
                                                     dict[str, Any]: JSON, list[Any]: JSON}
    #: Every model here maps one table; Core statements are built on it.
    __table__: ClassVar[Table]


class BatchGroup(Base):
    """A batch group: the attribute of a task that decides which servers may run it."""

    __tablename__ = "batch_groups"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    #: At most this many of its tasks execute at once, across all servers (0: paused;
    #: None: no cap). Changed live: :func:`batchjobs.groups.set_group`.
    max_concurrency: Mapped[int | None] = mapped_column(Integer)


class BatchServer(Base):
    """A batch server (a Celery worker) and what it serves."""

    __tablename__ = "batch_servers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    threads: Mapped[int] = mapped_column(Integer, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    schedule: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime | None]
    #: What the running worker applies now (written by it), for operators and tests.
    applied_groups: Mapped[list[Any]] = mapped_column(default=list)
    applied_threads: Mapped[int | None]
    #: The start of the server's process that holds the name now (a fencing token), and
    #: where that process runs: one live process per server name.
    incarnation: Mapped[str | None] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    groups: Mapped[list[ServerGroup]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ServerGroup.group_name")


class ServerGroup(Base):
    """Affinity: server ``server_name`` serves batch group ``group_name``."""

    __tablename__ = "server_groups"

    server_name: Mapped[str] = mapped_column(
        ForeignKey("batch_servers.name", ondelete="CASCADE"), primary_key=True)
    group_name: Mapped[str] = mapped_column(ForeignKey("batch_groups.name"), primary_key=True)


class Job(Base):
    """A batch job: the unit a user submits.

    ``remaining`` counts its unfinished tasks of counter 0; a large job spreads the rest
    over its ``job_counters`` rows (:mod:`batchjobs.counters`): the job has unfinished
    tasks while the sum is above 0."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[JobStatus] = mapped_column(words(JobStatus), index=True)
    alert: Mapped[AlertSetting] = mapped_column(words(AlertSetting))
    company: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    run_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    task_count: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: ``Recurrence.to_json()`` of a recurring job, else None.
    recurrence: Mapped[dict[str, Any] | None]
    #: The current (or last) run; each run is a ``job_runs`` row.
    run_number: Mapped[int] = mapped_column(Integer, default=1)
    #: Why a held job is held when the system held it ("owner alice disabled"); None
    #: for a hold by hand and for any other status.
    hold_reason: Mapped[str | None] = mapped_column(Text)
    #: The rank of its tasks' default priority (:mod:`batchjobs.priority`).
    priority: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: At most this many of its tasks execute at once, across all servers (None: no cap).
    max_concurrency: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_jobs_status_run_at", "status", "run_at"),
                      Index("ix_jobs_status_ended_at", "status", "ended_at"))


class JobCounter(Base):
    """One more share of a large job's count of unfinished tasks (``Task.counter``):
    completions of one job decrement different rows, instead of queueing on the lock
    of the job's own row (:mod:`batchjobs.counters`)."""

    __tablename__ = "job_counters"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    counter: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    remaining: Mapped[int] = mapped_column(Integer)


class JobRun(Base):
    """One run of a job: the first, each recurrence, each rerun.

    ``(job_id, number)`` is unique, so however many schedulers race, one
    occurrence makes one run. ``skipped`` counts occurrences passed over
    because the previous run was still going (or nothing was running).
    """

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[RunKind] = mapped_column(words(RunKind), default=RunKind.SCHEDULED)
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    status: Mapped[JobStatus] = mapped_column(words(JobStatus))
    skipped: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_job_runs_job_id_number"),)


class User(Base):
    """A user jobs run as; ``email`` receives their alerts."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    #: ``admin``, ``operator`` or ``user`` (:mod:`batchjobs.auth`); an argon2 hash or None.
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    password_hash: Mapped[str | None] = mapped_column(Text)
    #: When the user was disabled (:mod:`batchjobs.owners`): their jobs no longer start.
    disabled_at: Mapped[datetime | None]


class Alert(Base):
    """A run's end, told to the job's user; ``payload`` is what every sink receives."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run: Mapped[int] = mapped_column(Integer)
    user: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[JobStatus] = mapped_column(words(JobStatus))
    created_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (UniqueConstraint("job_id", "run", name="uq_alerts_job_id_run"),)


class AlertDelivery(Base):
    """One alert to one sink: retried with backoff until sent or given up."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    sink: Mapped[Sink] = mapped_column(words(Sink))
    status: Mapped[DeliveryStatus] = mapped_column(words(DeliveryStatus))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_alert_deliveries_status_next_try_at", "status", "next_try_at"),
                      Index("ix_alert_deliveries_alert_id", "alert_id"))


class Task(Base):
    """A batch task: one process run for one company in one batch group.

    ``met``/``unmet`` count the conditions that hold / can no longer hold, so a
    parent's completion decides each dependent from that dependent's row alone;
    ``dependents`` lists those rows, so the completion needs no other lookup.
    """

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    process: Mapped[str] = mapped_column(String(300))
    kwargs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Checked against batch_groups at submit; no foreign key, so a group can be removed
    #: once no unfinished task uses it while finished tasks keep its name.
    group_name: Mapped[str] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(100))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    ignore_failure: Mapped[bool] = mapped_column(default=False)
    condition_type: Mapped[ConditionType] = mapped_column(words(ConditionType, 8),
                                                          default=ConditionType.ALL)
    status: Mapped[TaskStatus] = mapped_column(words(TaskStatus))
    n_conditions: Mapped[int] = mapped_column(Integer, default=0)
    met: Mapped[int] = mapped_column(Integer, default=0)
    unmet: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    ready_at: Mapped[datetime | None]
    #: The job's user, copied here so a claim reads one row.
    run_as: Mapped[str] = mapped_column(String(200))
    #: ``[[child_task_id, expected], ...]``: the conditions on this task, copied from
    #: ``conditions`` at submit so a completion finds its dependents in its own row.
    dependents: Mapped[list[Any]] = mapped_column(default=list)
    #: ``attempts`` before the current run: retries count from here, numbers go on.
    attempt_base: Mapped[int] = mapped_column(Integer, default=0)
    #: A client task waits, ready, for ``batchjobs run-client``; never queued.
    client: Mapped[bool] = mapped_column(default=False)
    #: A ready task whose message has been handed to the broker. A job that starts with
    #: more ready tasks than a queue is kept at leaves the rest unqueued; housekeepers
    #: publish them as the queue drains (oldest ``ready_at`` first).
    queued: Mapped[bool] = mapped_column(default=False)
    #: Seconds a process may run before it is stopped and its attempt ends ``error``.
    timeout: Mapped[float | None] = mapped_column(Float)
    #: The retry policy (:mod:`batchjobs.retry`): seconds before the first retry (None:
    #: none), the backoff factor (None: 1), the cap, the exception classes retried (None:
    #: every one).
    retry_delay: Mapped[float | None] = mapped_column(Float)
    retry_backoff: Mapped[float | None] = mapped_column(Float)
    retry_max_delay: Mapped[float | None] = mapped_column(Float)
    retry_on: Mapped[list[Any] | None]
    #: A ready task whose retry is delayed: not queued, not claimable before this instant
    #: (the database's clock); a housekeeper clears it when it is due.
    not_before: Mapped[datetime | None]
    #: Its priority's rank as declared, and as it stands now: ``rank`` orders ready tasks
    #: (highest first) and rises as the task waits (:mod:`batchjobs.priority`).
    priority: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rank: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: The task whose process added this one at run time (``ctx.add_task``), else None.
    spawned_by: Mapped[int | None] = mapped_column(Integer)
    #: Tasks this one added that have not finished: it stays ``executing`` until none is.
    open_children: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Tasks this one added that ended ``error`` without ``ignore_failure``: it ends
    #: ``error`` if any did.
    failed_children: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Which of its job's counters counts it unfinished: 0 is ``jobs.remaining``, any
    #: other a ``job_counters`` row (:mod:`batchjobs.counters`).
    counter: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("job_id", "name", name="uq_tasks_job_id_name"),
        Index("ix_tasks_job_id_status", "job_id", "status"),
        Index("ix_tasks_status_ready_at", "status", "ready_at"),
    )


#: Ready tasks waiting for room on their queue (never client tasks): what the feeders
#: look for, and the predicate of the partial index that finds them in feed order. The
#: statements use this very expression, so that PostgreSQL sees they match the index;
#: the status is written into the SQL, not bound: a prepared statement's generic plan
#: cannot prove that a parameter matches the index's ``'ready'`` (a chain's claim read
#: every ready task of the table through another index: 4.7 ms instead of 0.7 ms).
UNQUEUED = and_(Task.__table__.c.status == literal_column(f"'{TaskStatus.READY.value}'",
                                                           String()),
                not_(Task.__table__.c.queued), not_(Task.__table__.c.client),
                Task.__table__.c.not_before.is_(None))
Index("ix_tasks_unqueued", Task.__table__.c.group_name, Task.__table__.c.rank.desc(),
      Task.__table__.c.ready_at, Task.__table__.c.id, postgresql_where=UNQUEUED,
      sqlite_where=UNQUEUED)
#: Ready tasks whose retry waits for its instant: what the housekeepers release when due.
DELAYED = and_(Task.__table__.c.status == TaskStatus.READY.value,
               Task.__table__.c.not_before.is_not(None))
Index("ix_tasks_delayed", Task.__table__.c.not_before, postgresql_where=DELAYED,
      sqlite_where=DELAYED)
#: Tasks that hold or will soon hold a thread: executing, or ready with a message on the
#: broker. What a concurrency cap counts (:mod:`batchjobs.coordinator.concurrency`); the
#: index stays as small as the queues and the threads, whatever the backlog. A task that
#: only waits for the tasks it added at run time holds no thread: counting it would keep
#: its own children from a slot of a capped job.
IN_FLIGHT = or_(and_(Task.__table__.c.status == TaskStatus.EXECUTING.value,
                     Task.__table__.c.open_children == 0),
                and_(Task.__table__.c.status == TaskStatus.READY.value,
                     Task.__table__.c.queued))
Index("ix_tasks_in_flight", Task.__table__.c.group_name, Task.__table__.c.job_id,
      postgresql_where=IN_FLIGHT, sqlite_where=IN_FLIGHT)
#: Runtime tasks (added by a running process): found by the task that added them.
SPAWNED = Task.__table__.c.spawned_by.is_not(None)
Index("ix_tasks_spawned_by", Task.__table__.c.spawned_by, postgresql_where=SPAWNED,
      sqlite_where=SPAWNED)


class Condition(Base):
    """A dependency: ``task`` may run when ``parent`` reaches ``expected``."""

    __tablename__ = "conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    expected: Mapped[Expected] = mapped_column(words(Expected))


class JobCondition(Base):
    """A dependency on another job: ``task`` (of job ``job_id``) may run when job
    ``after_job_id`` ends ``expected``. No foreign key to that job: the condition outlives
    it (retention asks :func:`batchjobs.job_conditions.still_needed` first).
    ``counted_run``: the run of ``job_id`` in which this condition was counted on the
    task's ``met``/``unmet`` (each counts once per run)."""

    __tablename__ = "job_conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: No foreign key: a task goes only with its job (``job_id``'s cascade), and a key
    #: here would cost a scan of this table per task deleted.
    task_id: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    after_job_id: Mapped[int] = mapped_column(Integer, index=True)
    expected: Mapped[Expected] = mapped_column(words(Expected))
    counted_run: Mapped[int] = mapped_column(Integer, default=0)


class Attempt(Base):
    """One execution of a task: never overwritten by the next one."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    server: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(100))
    user: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[Outcome] = mapped_column(words(Outcome))
    error: Mapped[str | None] = mapped_column(Text)
    #: The process's traceback (batchjobs' own frames left out), when it raised.
    traceback: Mapped[str | None] = mapped_column(Text)
    #: What the process logged and printed during the attempt, bounded in size.
    log: Mapped[str | None] = mapped_column(Text)
    #: The job run this attempt belongs to.
    run: Mapped[int] = mapped_column(Integer, default=1)
    #: Celery's id of the message being executed, so ``cancel`` can revoke it.
    message_id: Mapped[str | None] = mapped_column(String(64))
    #: The incarnation of the server that runs it: only that start may record its outcome.
    incarnation: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("task_id", "number", name="uq_attempts_task_id_number"),)


# -- users' rights (web console and HTTP API) ---------------------------------------


class ApiToken(Base):
    """A bearer token of a user for the HTTP API; only its SHA-256 is kept.

    A token is 32 random bytes, so a fast hash suffices (nothing to guess from it) and
    lets a request find its token by the hash alone.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class Secret(Base):
    """A value generated once for the installation, e.g. the session signing key."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class JobAudit(Base):
    """A change made to a job by someone, e.g. its run-as user reassigned: who, when,
    from what to what (``batchjobs history`` shows them)."""

    __tablename__ = "job_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    #: Who made the change (the OS user of the CLI, the console's user).
    by: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    from_user: Mapped[str | None] = mapped_column(String(200))
    to_user: Mapped[str | None] = mapped_column(String(200))


class DutyLease(Base):
    """A housekeeping duty that one housekeeper at a time does, now and then (retention):
    taken by a guarded update of ``holder``/``expires_at``; ``done_at`` says when it was
    last done."""

    __tablename__ = "duty_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]


#: Running attempts, by server: what recovery looks for (a restarted server's own, those
#: of servers without heartbeat) without reading the attempts' history. The word is a
#: literal in the SQL, not a parameter: only then can a query's plan use the partial index
#: (a generic plan of ``outcome = $1`` cannot know that $1 is 'running').
RUNNING = Attempt.__table__.c.outcome == literal_column(f"'{Outcome.RUNNING.value}'")
Index("ix_attempts_running", Attempt.__table__.c.server, postgresql_where=RUNNING,
      sqlite_where=RUNNING)
