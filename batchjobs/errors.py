"""The one exception hierarchy of batchjobs.

Every error the package raises on purpose derives from :class:`BatchJobsError`
and carries its culprit as attributes, so callers (and the CLI) can say exactly
what was wrong without parsing messages::

    BatchJobsError
    ├── DefinitionError          a job definition is invalid (nothing is stored)
    │   ├── MalformedDefinition  the file or value cannot be read as a job
    │   ├── UnknownProcess       process not found or not marked batchable
    │   ├── UnknownGroup         task names a batch group that does not exist
    │   ├── DuplicateTask        two tasks share a name
    │   ├── UnknownDependency    a condition names a task that is not in the job
    │   ├── DependencyCycle      conditions form a cycle
    │   ├── InvalidValue         a field holds a bad word or value
    │   └── InvalidRecurrence    a recurrence (cron, every, timezone, end) is malformed
    ├── StoreError               the database refused or lacks something
    │   ├── JobNotFound          no job with that id
    │   ├── ServerNotFound       no batch server with that name
    │   ├── GroupNotFound        no batch group with that name
    │   ├── InUse                a group or server cannot go while something uses it
    │   └── InvalidState         hold/release/cancel/rerun does not apply to the job now
    ├── DispatchError            a ready task could not be handed to the broker
    ├── TaskFailed               a task's process failed (Celery and Flower show FAILURE)
    ├── DeliveryError            an alert sink (SMTP, webhook) refused or is down
    └── ConfigError              a setting is missing or malformed
        ├── InvalidSchedule      a server's schedule or time zone is malformed
        └── MissingDriver        the database URL needs a driver that is not installed
"""

from __future__ import annotations


class BatchJobsError(Exception):
    """Root of every error raised by batchjobs on purpose."""


# -- definition --------------------------------------------------------------


class DefinitionError(BatchJobsError):
    """Raised when a job definition is invalid; nothing has been stored."""

    def __init__(self, message: str, *, task: str | None = None, field: str | None = None,
                 value: object = None) -> None:
        self.task = task
        self.field = field
        self.value = value
        where = []
        if task is not None:
            where.append(f"task {task!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)


class MalformedDefinition(DefinitionError):
    """Raised when a job file or value cannot be read as a job definition."""


class UnknownProcess(DefinitionError):
    """Raised when a task names a process that is not registered as batchable."""


class UnknownGroup(DefinitionError):
    """Raised when a task names a batch group that does not exist."""


class DuplicateTask(DefinitionError):
    """Raised when two tasks of one job share a name."""


class UnknownDependency(DefinitionError):
    """Raised when a condition names a parent task that is not in the job."""


class DependencyCycle(DefinitionError):
    """Raised when the conditions of a job form a cycle; ``cycle`` lists it."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle), task=cycle[0],
                         field="depends_on")


class InvalidValue(DefinitionError):
    """Raised when a field holds a word or value outside what it accepts."""


class InvalidRecurrence(DefinitionError):
    """Raised when a job's recurrence is malformed; ``field`` is e.g. ``recurrence.cron``
    and ``value`` the culprit."""


# -- store -------------------------------------------------------------------


class StoreError(BatchJobsError):
    """Raised when the database refuses an operation or lacks a record."""


class JobNotFound(StoreError):
    """Raised when no job has the given id."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class ServerNotFound(StoreError):
    """Raised when no batch server has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no batch server named {name!r}")


class GroupNotFound(StoreError):
    """Raised when no batch group has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no batch group named {name!r} (create it with: batchjobs group add "
                         f"{name})")


class InUse(StoreError):
    """Raised when a group or server is removed while something still uses it; ``users``
    names what does."""

    def __init__(self, what: str, name: str, users: list[str]) -> None:
        self.name = name
        self.users = users
        super().__init__(f"{what} {name!r} is in use by {', '.join(users)}")


class InvalidState(StoreError):
    """Raised when an operation does not apply to a job in its current status (e.g. hold
    on an executing job); ``job_id`` and ``status`` name it."""

    def __init__(self, job_id: int, status: str, message: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"job {job_id} is {status}: {message}")


# -- dispatch / run / config -------------------------------------------------


class DispatchError(BatchJobsError):
    """Raised when a ready task cannot be handed to the broker."""


class TaskFailed(BatchJobsError):
    """Raised by a batch server after recording a failed attempt, so Celery's events (and
    Flower) show the attempt as failed; the batch outcome is already stored."""

    def __init__(self, *, job_id: int, task: str, attempt: int, error: str) -> None:
        self.job_id = job_id
        self.task = task
        self.attempt = attempt
        self.error = error
        super().__init__(f"job {job_id} task {task!r} attempt {attempt} failed: {error}")


class DeliveryError(BatchJobsError):
    """Raised when an alert sink cannot take an alert; ``sink`` names it (``email`` or
    ``webhook``). Delivery is retried later; a job's outcome never depends on it."""

    def __init__(self, sink: str, message: str) -> None:
        self.sink = sink
        super().__init__(f"{sink}: {message}")


class ConfigError(BatchJobsError):
    """Raised when a setting is missing or malformed; ``name`` is the setting."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)


class InvalidSchedule(ConfigError):
    """Raised when a server schedule or time zone is malformed; ``value`` is the culprit
    (a window such as ``"25:00-07:00=2"`` or a zone name)."""

    def __init__(self, message: str, *, field: str = "schedule", value: object = None) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {value!r}: {message}" if value is not None else message,
                         name=field)


#: Database driver module -> the extra of batchjobs that installs it.
_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg_binary": "postgres", "psycopg_c": "postgres"}


class MissingDriver(ConfigError):
    """Raised when the database URL needs a driver that is not installed; ``driver`` names
    the missing module and ``extra`` the batchjobs extra that brings it."""

    def __init__(self, driver: str, *, extra: str = "postgres") -> None:
        self.driver = driver
        self.extra = extra
        super().__init__(f"BATCHJOBS_DATABASE_URL needs the {driver!r} driver, which is not "
                         f"installed: pip install 'batchjobs[{extra}]' (from a checkout: "
                         f"pip install '.[{extra}]')", name="BATCHJOBS_DATABASE_URL")

    @classmethod
    def from_import_error(cls, exc: ImportError) -> MissingDriver | None:
        """The error to raise instead of ``exc`` when ``exc`` is a known database driver
        missing (call it where the engine is created), else None (re-raise ``exc``)."""
        name = (getattr(exc, "name", None) or "").partition(".")[0]
        extra = _DRIVER_EXTRAS.get(name)
        return cls(name, extra=extra) if extra else None
