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


JOB_FINAL = frozenset({JobStatus.ENDED, JobStatus.ERROR, JobStatus.CANCELED})
TASK_FINAL = frozenset({TaskStatus.ENDED, TaskStatus.ERROR, TaskStatus.NOT_RUN,
                        TaskStatus.CANCELED})

#: Allowed task transitions; the store guards every change with the source status.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset({TaskStatus.READY, TaskStatus.NOT_RUN, TaskStatus.CANCELED}),
    TaskStatus.READY: frozenset({TaskStatus.EXECUTING, TaskStatus.CANCELED}),
    TaskStatus.EXECUTING: frozenset({TaskStatus.ENDED, TaskStatus.ERROR, TaskStatus.READY,
                                     TaskStatus.CANCELED}),
    # A rerun (or the next run of a recurring job) starts a finished task afresh.
    TaskStatus.ENDED: frozenset({TaskStatus.WAITING}),
    TaskStatus.ERROR: frozenset({TaskStatus.WAITING}),
    TaskStatus.NOT_RUN: frozenset({TaskStatus.WAITING}),
    TaskStatus.CANCELED: frozenset({TaskStatus.WAITING}),
}


def condition_holds(expected: Expected, parent: TaskStatus) -> bool:
    """Whether a parent that finished with ``parent`` satisfies ``expected``.

    A parent that ended ``not_run`` or ``canceled`` never ran, so it satisfies
    no condition: its dependents cannot rely on it.
    """
    if expected is Expected.FINISHED:
        return parent in (TaskStatus.ENDED, TaskStatus.ERROR)
    return parent.value == expected.value
