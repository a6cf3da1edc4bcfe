"""Example processes to smoke-test an installation (all batchable)."""

from __future__ import annotations

import time

from .definition import JobSpec
from .errors import InvalidValue
from .processes import ProcessContext, batchable


class ProcessFailed(Exception):
    """Raised by the example processes that fail on purpose."""


@batchable
def noop() -> None:
    """Do nothing, successfully."""


@batchable
def sleep(seconds: float = 0.0) -> None:
    """Sleep for ``seconds`` seconds, then succeed."""
    time.sleep(float(seconds))


@batchable
def fail(message: str = "failed on purpose") -> None:
    """Always fail with ``message``."""
    raise ProcessFailed(message)


@batchable
def flaky(ctx: ProcessContext, failures: int = 1) -> None:
    """Fail on the first ``failures`` attempts of the task, then succeed."""
    if ctx.attempt <= failures:
        raise ProcessFailed(f"attempt {ctx.attempt} of {ctx.task} fails on purpose")


@batchable
def fan_out(ctx: ProcessContext, n: int = 3, seconds: float = 0.1) -> None:
    """Split the work at run time (AX's ``addRuntimeTask``): add ``n`` tasks that each
    sleep ``seconds``; this task ends when they all have (its dependents wait for them)."""
    for i in range(1, int(n) + 1):
        ctx.add_task(f"{ctx.task} #{i}", "batchjobs.examples.sleep",
                     kwargs={"seconds": seconds})


@batchable(client=True)
def manual(ctx: ProcessContext, message: str = "") -> None:
    """A client task: never sent to a batch server; ``batchjobs run-client`` runs it in the
    foreground of a terminal, where it prints its message."""
    print(f"[job {ctx.job_id} / {ctx.task}] {message or 'manual step done'}", flush=True)


def job1(*, fail: str | None = None, seconds: float = 0.5) -> JobSpec:
    """JOB 1 of the AX walkthrough "Batch processing of dependent tasks".

    TASK 2 runs when TASK 1 finishes (success or failure); TASK 3 and TASK 4 on
    success of TASK 2; TASK 5 on its failure; TASK 6 on failure of TASK 3;
    TASK 7 on success of both TASK 3 and TASK 4. ``fail`` names a task that
    fails on purpose; the others sleep ``seconds``.
    """
    job = JobSpec("JOB 1")
    names = [f"TASK {i}" for i in range(1, 8)]
    if fail is not None and fail not in names:
        raise InvalidValue(f"JOB 1 has no task {fail!r} (TASK 1 .. TASK 7)", field="fail",
                           value=fail)

    def add(name: str, depends_on: list[tuple[str, str]]) -> None:
        if name == fail:
            job.add_task(name, "batchjobs.examples.fail",
                         kwargs={"message": f"{name} failed on purpose"}, depends_on=depends_on)
        else:
            job.add_task(name, "batchjobs.examples.sleep", kwargs={"seconds": seconds},
                         depends_on=depends_on)

    add("TASK 1", [])
    add("TASK 2", [("TASK 1", "finished")])
    add("TASK 3", [("TASK 2", "ended")])
    add("TASK 4", [("TASK 2", "ended")])
    add("TASK 5", [("TASK 2", "error")])
    add("TASK 6", [("TASK 3", "error")])
    add("TASK 7", [("TASK 3", "ended"), ("TASK 4", "ended")])
    return job
