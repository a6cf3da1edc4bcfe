"""Status words of jobs, tasks and conditions, and the rules between them.

The words are those of the AX batch framework; they are stored as-is.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    HOLD = "hold"
    WAITING = "waiting"
    EXECUTING = "executing"
    ENDED = "ended"
    ERROR = "error"
    CANCELED = "canceled"


class TaskStatus(StrEnum):
    WAITING = "waiting"
    READY = "ready"
    EXECUTING = "executing"
    ENDED = "ended"
    ERROR = "error"
    NOT_RUN = "not_run"
    CANCELED = "canceled"


class Expected(StrEnum):
    """The status a parent task must reach for a condition to hold."""

    ENDED = "ended"
    ERROR = "error"
    FINISHED = "finished"  # ended or error


class ConditionType(StrEnum):
    ALL = "all"
    ANY = "any"


class Alert(StrEnum):
    ALWAYS = "always"
    ERROR = "error"
    NEVER = "never"


class Outcome(StrEnum):
    """What one attempt came to."""

    RUNNING = "running"
    ENDED = "ended"
    ERROR = "error"
    CANCELED = "canceled"


class RunKind(StrEnum):
    """Why a job run started."""

    SCHEDULED = "scheduled"   # the first run, or an occurrence of its recurrence
    RERUN = "rerun"           # ``batchjobs rerun``


class Sink(StrEnum):
    """Where an alert is delivered."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    """How far one alert delivery got."""

    PENDING = "pending"       # to be (re)tried at ``next_try_at``
    SENT = "sent"
    FAILED = "failed"         # given up


JOB_FINAL = frozenset({JobStatus.ENDED, JobStatus.ERROR, JobStatus.CANCELED})
TASK_FINAL = frozenset({TaskStatus.ENDED, TaskStatus.ERROR, TaskStatus.NOT_RUN,
                        TaskStatus.CANCELED})

def condition_holds(expected: Expected, parent: TaskStatus) -> bool:
    """Whether a parent that finished with ``parent`` satisfies ``expected``.

    A parent that ended ``not_run`` or ``canceled`` never ran, so it satisfies
    no condition: its dependents cannot rely on it.
    """
    if expected is Expected.FINISHED:
        return parent in (TaskStatus.ENDED, TaskStatus.ERROR)
    return parent.value == expected.value
