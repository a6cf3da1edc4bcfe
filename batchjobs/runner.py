"""The Celery task a batch server runs: claim the task, run its process, record it.

The message names a task id; everything else comes from the database. The
claim is atomic, so a duplicated or redelivered message runs nothing twice.
The outcome and the dependents' decisions are recorded by one function
(:func:`batchjobs.coordinator.record`), and the tasks that became ready are
published right after it returns: the next task starts milliseconds after this
one ends, with no polling.
"""

from __future__ import annotations

import logging
from typing import Any

from . import queues
from .app import app
from .coordinator import claim, record
from .errors import TaskFailed
from .execution import execute
from .processes import registered
from .settings import get_settings
from .status import Outcome

log = logging.getLogger(__name__)


def server_name(hostname: str | None) -> str:
    """The batch server's name: the part of the Celery hostname before ``@``."""
    return (hostname or "unknown").split("@", 1)[0]


#: Options of every Celery task a batch server runs.
OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "ignore_result": True,
                           "throws": (TaskFailed,)}


def _run(self: Any, task_id: int, *, job: int, task: str = "", process: str = "") -> str:
    """Run one batch task (the message's ``task`` names it, for Flower; its process is the
    database's word, not the message's)."""
    server = server_name(self.request.hostname)
    settings = get_settings()    # once per task: reading it means reading the environment
    claimed = claim(task_id, job, server, self.request.id, settings=settings)
    if claimed is None:
        log.info("task %s of job %s is not ready any more; message dropped", task_id, job)
        return "skipped"
    result = execute(claimed, server, log_limit=settings.attempt_log_limit)
    dispatches = record(claimed.task_id, claimed.attempt, result.outcome, result.error,
                        children=claimed.readied_by_success, traceback=result.traceback,
                        log=result.log, settings=settings)
    queues.publish(dispatches, settings=settings)
    if result.outcome is Outcome.ERROR:
        # Chained to the process's own exception, so the traceback Celery sends with its
        # task-failed event (and Flower shows) is the process's.
        raise TaskFailed(job_id=claimed.job_id, task=claimed.name, attempt=claimed.attempt,
                         error=result.error or "") from result.exception
    return result.outcome.value


#: The task of messages that name no process (published before processes had their own).
run = app.task(name=queues.RUN_TASK, **OPTIONS)(_run)


def register_processes() -> list[str]:
    """One Celery task per registered batchable process, each named after it and running
    the same :func:`_run`: Flower's task list (name, UUID, state, worker: no arguments)
    then names the process, and the message's id names the job and the task
    (:func:`queues.message_id`). Called when a server starts, after its processes'
    modules (``BATCHJOBS_IMPORTS``) are imported."""
    added = []
    for name in registered():
        if name not in app.tasks:
            app.task(name=name, **OPTIONS)(_run)
            added.append(name)
    return added
