"""Pure rules of the task graph: when a dependent becomes ready or can never run.

The coordinator keeps two counters per task, ``met`` (conditions that hold)
and ``unmet`` (conditions that can no longer hold, because their parent
finished with another status). Every decision is a function of those counters
alone, which is what keeps a completion's cost proportional to its dependents.
"""

from __future__ import annotations

from enum import Enum

from .status import ConditionType, Expected, JobStatus, TaskStatus, condition_holds

__all__ = ["Decision", "condition_holds", "decide", "job_outcome", "unmet_reason"]


class Decision(Enum):
    WAIT = "wait"
    READY = "ready"
    NOT_RUN = "not_run"


def decide(condition_type: ConditionType | str, n_conditions: int, met: int,
           unmet: int) -> Decision:
    """What a waiting task with these counters should do now.

    ``all``: ready when every condition holds, not_run as soon as one cannot.
    ``any``: ready as soon as one holds, not_run when none can.
    A task without conditions is ready at once.
    """
    if n_conditions == 0:
        return Decision.READY
    if ConditionType(condition_type) is ConditionType.ALL:
        if unmet > 0:
            return Decision.NOT_RUN
        return Decision.READY if met == n_conditions else Decision.WAIT
    if met > 0:
        return Decision.READY
    return Decision.NOT_RUN if unmet == n_conditions else Decision.WAIT


def unmet_reason(parent: str, parent_status: TaskStatus | str, expected: Expected | str) -> str:
    """Why a condition can no longer hold, in words shown as the task's ``reason``."""
    status = TaskStatus(parent_status).value
    return (f"condition on {parent!r} can no longer hold: it is {status}, "
            f"the condition needs {Expected(expected).value}")


def job_outcome(failed_tasks: int) -> JobStatus:
    """A finished job is ``error`` if a task failed without ignore_failure, else ``ended``."""
    return JobStatus.ERROR if failed_tasks else JobStatus.ENDED


def holds(expected: Expected | str, parent_status: TaskStatus | str) -> bool:
    return condition_holds(Expected(expected), TaskStatus(parent_status))
