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
from .settings import get_settings
from .status import Outcome

log = logging.getLogger(__name__)


def server_name(hostname: str | None) -> str:
    """The batch server's name: the part of the Celery hostname before ``@``."""
    return (hostname or "unknown").split("@", 1)[0]


@app.task(name=queues.RUN_TASK, bind=True, acks_late=True, ignore_result=True,
          throws=(TaskFailed,), Request="batchjobs.request:BatchRequest")
def run(self: Any, task_id: int, *, job: int, task: str = "", process: str = "") -> str:
    """Run one batch task; ``task`` and ``process`` are informative (for Flower)."""
    server = server_name(self.request.hostname)
    settings = get_settings()    # once per task: reading it means reading the environment
    claimed = claim(task_id, job, server, self.request.id, settings=settings)
    if claimed is None:
        log.info("task %s of job %s is not ready any more; message dropped", task_id, job)
        return "skipped"
    outcome, error = execute(claimed, server)
    dispatches = record(claimed.task_id, claimed.attempt, outcome, error,
                        children=claimed.readied_by_success, settings=settings)
    queues.publish(dispatches, settings=settings)
    if outcome is Outcome.ERROR:
        raise TaskFailed(job_id=claimed.job_id, task=claimed.name, attempt=claimed.attempt,
                         error=error or "")
    return outcome.value
