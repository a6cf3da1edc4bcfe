"""The Celery task a batch server runs: claim the task, run its process, record it.

The message names a task id; everything else comes from the database. The
claim is atomic, so a duplicated or redelivered message runs nothing twice.
The outcome and the dependents' decisions are one transaction, and the tasks
that became ready are published right after it commits: the next task starts
milliseconds after this one ends, with no polling.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from sqlalchemy.exc import OperationalError

from . import queues, store
from .app import app
from .coordinator import Claim, end_settled_job, record_outcome, record_success_at_once
from .coordinator import claim as claim_task
from .errors import BatchJobsError, TaskFailed
from .processes import ProcessContext, get_process
from .settings import Settings, get_settings
from .status import Outcome

log = logging.getLogger(__name__)

#: Attempts to record an outcome while the database is briefly unreachable.
RECORD_TRIES = 5


def server_name(hostname: str | None) -> str:
    """The batch server's name: the part of the Celery hostname before ``@``."""
    return (hostname or "unknown").split("@", 1)[0]


@app.task(name=queues.RUN_TASK, bind=True, acks_late=True, ignore_result=True,
          throws=(TaskFailed,))
def run(self: Any, task_id: int, *, job: int, task: str = "", process: str = "") -> str:
    """Run one batch task; ``task`` and ``process`` are informative (for Flower)."""
    server = server_name(self.request.hostname)
    settings = get_settings()    # once per task: reading it means reading the environment
    with store.begin(settings, one_statement=True) as conn:   # PostgreSQL: one statement
        claimed = claim_task(conn, task_id, job, server, self.request.id)
    if claimed is None:
        log.info("task %s of job %s is not ready any more; message dropped", task_id, job)
        return "skipped"
    outcome, error = execute(claimed, server)
    dispatches = record(claimed, outcome, error, settings)
    queues.publish(dispatches)
    if outcome is Outcome.ERROR:
        raise TaskFailed(job_id=claimed.job_id, task=claimed.name, attempt=claimed.attempt,
                         error=error or "")
    return outcome.value


def execute(claimed: Claim, server: str, *, client: bool = False) -> tuple[Outcome, str | None]:
    """Run the claimed task's process; any exception is the task's error.

    A client process runs only where ``client`` is true (``batchjobs run-client``)."""
    ctx = ProcessContext(job_id=claimed.job_id, task_id=claimed.task_id, task=claimed.name,
                         attempt=claimed.attempt, company=claimed.company, user=claimed.user,
                         server=server)
    try:
        process = get_process(claimed.process, task=claimed.name)
        if process.client and not client:
            raise BatchJobsError(f"{process.name} is a client process; it is not run on a "
                                 "batch server")
        process.run(ctx, claimed.kwargs)
    except Exception as exc:  # noqa: BLE001 - a process's failure is data, not a crash
        log.info("task %r of job %s failed: %s", claimed.name, claimed.job_id, exc)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Outcome.ERROR, detail
    return Outcome.ENDED, None


def record(claimed: Claim, outcome: Outcome, error: str | None,
           settings: Settings | None = None) -> list[Any]:
    """Record the outcome; return the dependents that became ready. A database that is
    briefly unreachable is retried: a second recording of the same attempt is a no-op."""
    settings = settings or get_settings()
    at_once = (outcome is Outcome.ENDED and claimed.readied_by_success is not None
               and store.get_engine(settings).dialect.name == "postgresql")
    delay = 0.1
    for attempt in range(1, RECORD_TRIES + 1):
        try:
            if at_once:
                return _record_success_at_once(claimed, settings)
            with store.transaction(settings) as session:
                return record_outcome(session, claimed.task_id, claimed.attempt, outcome, error)
        except OperationalError:
            if attempt == RECORD_TRIES:
                raise
            log.warning("recording task %s failed (database); retrying", claimed.task_id)
            time.sleep(delay)
            delay *= 2
    return []


def _record_success_at_once(claimed: Claim, settings: Settings | None) -> list[Any]:
    """A success that decides its dependents without a cascade: one autocommit statement;
    a transaction only to end the job when this was its last task."""
    with store.begin(settings, one_statement=True) as conn:
        dispatches, ended_job = record_success_at_once(
            conn, claimed.task_id, claimed.attempt, claimed.readied_by_success or ())
    if ended_job is not None:
        with store.transaction(settings) as session:
            end_settled_job(session, ended_job)
    return dispatches
