"""The one exception hierarchy of batchjobs.

Every error the package raises on purpose derives from :class:`BatchJobsError`
and carries its culprit as attributes, so callers (and the CLI) can say exactly
what was wrong without parsing messages::

    BatchJobsError                                                          exit 1
    ├── DefinitionError          a job definition is invalid (nothing is stored)  exit 2
    │   ├── MalformedDefinition  the file or value cannot be read as a job
    │   ├── UnknownProcess       process not found or not marked batchable
    │   ├── UnknownGroup         a batch group that does not exist is named
    │   ├── DuplicateTask        two tasks share a name
    │   ├── UnknownDependency    a condition names a task not in the job, or no job
    │   ├── DependencyCycle      conditions form a cycle
    │   ├── InvalidValue         a field holds a bad word or value
    │   └── InvalidRecurrence    a recurrence (cron, every, timezone, end) is malformed
    ├── StoreError               the database refused or lacks something          exit 2
    │   ├── JobNotFound          no job with that id
    │   ├── TaskNotFound         no task of that name in the job
    │   ├── ServerNotFound       no batch server with that name
    │   ├── InUse                a group or server cannot go while something uses it
    │   ├── InvalidState         hold/release/cancel/rerun does not apply to the job now
    │   ├── UserNotFound         no user with that name
    │   ├── UserDisabled         the user is disabled: their jobs do not start
    │   ├── UserHasJobs          a user with jobs cannot be removed
    │   └── ServerNameTaken      a live process holds the batch server's name
    ├── DispatchError            a ready task could not be handed to the broker   exit 1
    ├── RunError                 a task cannot be run where it was sent            exit 1
    │   ├── ClientOnly           a client process reached a batch server
    │   ├── CannotAddTasks       ctx.add_task where no attempt runs the process
    │   └── TaskFailed           a task's process failed (Celery, Flower: FAILURE)
    ├── ServerStartError         a batch server started here did not come up       exit 1
    ├── DeliveryError            an alert sink (SMTP, webhook) refused or is down  exit 1
    └── ConfigError              a setting is missing or malformed                 exit 2
        ├── InvalidSchedule      a server's schedule or time zone is malformed
        └── MissingDriver        the database URL needs a driver that is not installed

Each sub-base carries the exit code of the CLI (``exit_code``): the CLI reports any
error of the tree as one line and exits with it. Every error survives pickling (a
batch server's pool process hands its exceptions to the main process that way).
"""

from __future__ import annotations

from typing import Any


class BatchJobsError(Exception):
    """Root of every error raised by batchjobs on purpose."""

    #: The CLI's exit code for this kind of error.
    exit_code: int = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt without calling ``__init__`` (whose keyword-only culprits pickle's
        # default would not pass), with the same message and attributes.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(kind: type[BatchJobsError], args: tuple[Any, ...],
             state: dict[str, Any]) -> BatchJobsError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


# -- definition --------------------------------------------------------------


class DefinitionError(BatchJobsError):
    """Raised when a job definition is invalid; nothing has been stored."""

    exit_code = 2

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
    """Raised when a batch group that does not exist is named (by a task, a server
    record or a group command); ``value`` is its name."""

    @classmethod
    def named(cls, name: str, **culprit: Any) -> UnknownGroup:
        return cls(f"no batch group named {name!r} (create it with: batchjobs group add "
                   f"{name})", value=name, **culprit)


class DuplicateTask(DefinitionError):
    """Raised when two tasks of one job share a name."""


class UnknownDependency(DefinitionError):
    """Raised when a condition names a parent task that is not in the job, or a job that
    does not exist."""


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

    exit_code = 2


class JobNotFound(StoreError):
    """Raised when no job has the given id."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class TaskNotFound(StoreError):
    """Raised when a job has no task of the given name."""

    def __init__(self, job_id: int, task: str) -> None:
        self.job_id = job_id
        self.task = task
        super().__init__(f"job {job_id} has no task named {task!r}")


class ServerNotFound(StoreError):
    """Raised when no batch server has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no batch server named {name!r}")


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
    """Raised when ready tasks cannot be handed to the broker (unreachable); ``count``
    says how many. They stay ready in the database: housekeepers publish them later."""

    def __init__(self, message: str, *, count: int = 0) -> None:
        self.count = count
        super().__init__(message)


class RunError(BatchJobsError):
    """Raised when a claimed task cannot be run, or its process failed."""


class ClientOnly(RunError):
    """Raised when a client process (run by a person: ``batchjobs run-client``) reaches a
    batch server; ``process`` names it."""

    def __init__(self, process: str) -> None:
        self.process = process
        super().__init__(f"{process} is a client process; it is not run on a batch server")


class CannotAddTasks(RunError):
    """Raised when a process adds a task through a context that runs no attempt (one
    built by hand, not by a batch server or ``run-client``)."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(f"task {task!r}: this context runs no attempt, so it cannot add "
                         "tasks (only a process run by a batch server or run-client can)")


class TaskFailed(RunError):
    """Raised by a batch server after recording a failed attempt, so Celery's events (and
    Flower) show the attempt as failed; the batch outcome is already stored."""

    def __init__(self, *, job_id: int, task: str, attempt: int, error: str) -> None:
        self.job_id = job_id
        self.task = task
        self.attempt = attempt
        self.error = error
        super().__init__(f"job {job_id} task {task!r} attempt {attempt} failed: {error}")


class ServerStartError(BatchJobsError):
    """Raised when a batch server started on this host exits or does not register in
    time; ``server`` names it."""

    def __init__(self, server: str, message: str) -> None:
        self.server = server
        super().__init__(message)


class DeliveryError(BatchJobsError):
    """Raised when an alert sink cannot take an alert; ``sink`` names it (``email`` or
    ``webhook``). Delivery is retried later; a job's outcome never depends on it."""

    def __init__(self, sink: str, message: str) -> None:
        self.sink = sink
        super().__init__(f"{sink}: {message}")


class DatabaseUnavailable(BatchJobsError):
    """Raised when the database refuses a connection (down, a wrong password, no such
    database); ``url`` is its URL with any password masked, ``reason`` the driver's first
    line. Exit 1: the input was fine, the service was not."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"database {url} refused: {reason}")


class ConfigError(BatchJobsError):
    """Raised when a setting is missing or malformed; ``name`` is the setting."""

    exit_code = 2

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


class UserNotFound(StoreError):
    """Raised when no user has the given name (``batchjobs user add`` creates one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no user named {name!r} (add one with: batchjobs user add {name})")


class UserDisabled(StoreError):
    """Raised when a disabled user would submit, or own a job that starts (``job_id``
    names it) or is given to them; ``batchjobs user enable`` lifts it."""

    def __init__(self, name: str, *, job_id: int | None = None, doing: str = "") -> None:
        self.name = name
        self.job_id = job_id
        what = f"job {job_id} is owned by {name!r}, who is disabled" if job_id is not None \
            else f"user {name!r} is disabled"
        super().__init__(f"{what}{': ' + doing if doing else ''} (batchjobs user enable "
                         f"{name}, or reassign: batchjobs job reassign)")


class UserHasJobs(StoreError):
    """Raised when a user who still owns jobs is removed; ``jobs`` says how many."""

    def __init__(self, name: str, jobs: int) -> None:
        self.name = name
        self.jobs = jobs
        super().__init__(f"user {name!r} owns {jobs} job(s) and cannot be removed: reassign "
                         f"them (batchjobs job reassign --from {name} --to OTHER) or delete "
                         "the finished ones (batchjobs cleanup) first")


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


class ServerNameTaken(StoreError):
    """Raised when a batch server starts under a name a live process holds; ``name``,
    ``host`` and ``pid`` say which (``batchjobs worker --replace`` takes over)."""

    def __init__(self, name: str, host: str | None, pid: int | None) -> None:
        self.name = name
        self.host = host
        self.pid = pid
        super().__init__(f"batch server {name!r} is running on host {host} as pid {pid} "
                         "(stop it first, or start with --replace to take over)")
