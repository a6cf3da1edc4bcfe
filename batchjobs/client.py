"""Client tasks: steps a person runs by hand, in the foreground of a terminal.

A task whose process is registered with ``@batchable(client=True)`` is never
queued: when it becomes ready it waits until someone runs ``batchjobs
run-client``, which claims it like a batch server would (so two terminals
never run it twice), runs it here, records the outcome, and the job goes on.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from . import queues, store
from .coordinator import Claim, claim, record
from .execution import execute
from .models import Task
from .settings import Settings, get_settings
from .status import Outcome, TaskStatus


def ready_client_tasks(job_id: int | None = None, *,
                       settings: Settings | None = None) -> list[tuple[int, int, str]]:
    """``(task_id, job_id, name)`` of the client tasks waiting for a person."""
    query = (select(Task.id, Task.job_id, Task.name)
             .where(Task.status == TaskStatus.READY, Task.client.is_(True),
                    Task.not_before.is_(None))   # a delayed retry is not ready to claim yet
             .order_by(Task.id))
    if job_id is not None:
        query = query.where(Task.job_id == job_id)
    with store.read_session(settings) as session:
        return [(row.id, row.job_id, row.name) for row in session.execute(query)]


def run_client(job_id: int | None = None, *, on_start: Callable[[Claim], Any] | None = None,
               settings: Settings | None = None) -> list[dict[str, Any]]:
    """Run every ready client task (of ``job_id``), including those that become ready
    while doing so; return what ran, in order."""
    settings = settings or get_settings()
    where = f"client:{socket.gethostname()}"
    done: list[dict[str, Any]] = []
    while True:
        pending = ready_client_tasks(job_id, settings=settings)
        if not pending:
            return done
        for task_id, task_job, _ in pending:
            claimed = claim(task_id, task_job, where, settings=settings)
            if claimed is None:
                continue  # another terminal took it
            if on_start is not None:
                on_start(claimed)
            result = execute(claimed, where, client=True,
                             log_limit=settings.attempt_log_limit, settings=settings)
            outcome, error = result.outcome, result.error
            queues.publish(record(claimed.task_id, claimed.attempt, outcome, error,
                                  children=claimed.readied_by_success,
                                  traceback=result.traceback, log=result.log,
                                  settings=settings, failure=result.failure,
                                  added=result.added), settings=settings)
            done.append({"job_id": claimed.job_id, "task": claimed.name,
                         "status": (TaskStatus.ENDED if outcome is Outcome.ENDED
                                    else TaskStatus.ERROR).value, "error": error})
