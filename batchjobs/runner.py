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
import os
import signal
from typing import Any

from . import incarnation, queues
from .app import app
from .coordinator import claim, record
from .coordinator.concurrency import feed_freed
from .errors import TaskFailed
from .execution import execute
from .processes import registered
from .settings import get_settings
from .status import Outcome

log = logging.getLogger(__name__)

#: Options of every Celery task a batch server runs. ``Request``: what the server's main
#: process does when a pool process dies, times out or is cancelled (:mod:`request`).
OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "ignore_result": True,
                           "throws": (TaskFailed,), "Request": "batchjobs.request:BatchRequest"}

#: Whether this pool process runs a task now (a SIGTERM is then ignored: :func:`deaf`).
busy = False
#: billiard's SIGTERM handler of this pool process, once :func:`deaf` replaced it.
_previous: Any = None


def server_name(hostname: str | None) -> str:
    """The batch server's name: the part of the Celery hostname before ``@``."""
    return (hostname or "unknown").split("@", 1)[0]


def _task(self: Any, task_id: int, *, job: int, task: str = "", process: str = "") -> str:
    """Run one batch task (the message's ``task`` names it, for Flower; its process is the
    database's word, not the message's)."""
    global busy
    if _previous is None:
        deaf()
    busy = True
    try:
        return _run(self, task_id, job)
    finally:
        busy = False


def deaf() -> None:
    """Make this pool process ignore SIGTERM while it runs a task.

    systemd (and ``kill -TERM -PGID``) signals every process of a server it stops; the
    main process then makes a warm shutdown, which lets running tasks finish, and must
    find them alive. A pool process that batchjobs means to stop (a cold shutdown,
    ``cancel``, a time limit) is killed with SIGKILL (:mod:`batchjobs.request`); an idle
    one still ends on SIGTERM as billiard expects. Installed at the first task, because
    billiard replaces the handlers a process has when it starts."""
    global _previous
    _previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: Any) -> None:
    if busy:
        log.warning("pool process %d: SIGTERM ignored while it runs a task (the server's "
                    "warm shutdown lets the task finish)", os.getpid())
        return
    if callable(_previous):
        _previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _run(self: Any, task_id: int, job: int) -> str:
    server = server_name(self.request.hostname)
    settings = get_settings()    # once per task: reading it means reading the environment
    token = incarnation.current()
    claimed = claim(task_id, job, server, self.request.id, settings=settings,
                    incarnation=token)
    if claimed is None:
        log.info("task %s of job %s is not ready any more (or not for this server); "
                 "message dropped", task_id, job)
        return "skipped"
    result = execute(claimed, server, log_limit=settings.attempt_log_limit, settings=settings)
    dispatches = record(claimed.task_id, claimed.attempt, result.outcome, result.error,
                        children=claimed.readied_by_success, traceback=result.traceback,
                        log=result.log, settings=settings, incarnation=token,
                        failure=result.failure, added=result.added)
    queues.publish(dispatches, settings=settings)
    if claimed.capped and claimed.group is not None:
        queues.publish(feed_freed(claimed.job_id, claimed.group, settings), settings=settings)
    if result.outcome is Outcome.ERROR:
        # Chained to the process's own exception, so the traceback Celery sends with its
        # task-failed event (and Flower shows) is the process's.
        raise TaskFailed(job_id=claimed.job_id, task=claimed.name, attempt=claimed.attempt,
                         error=result.error or "") from result.exception
    return result.outcome.value


#: The task of messages that name no process (published before processes had their own).
run = app.task(name=queues.RUN_TASK, **OPTIONS)(_task)


def register_processes() -> list[str]:
    """One Celery task per registered batchable process, each named after it and running
    the same :func:`_task`: Flower's task list (name, UUID, state, worker: no arguments)
    then names the process, and the message's id names the job and the task
    (:func:`queues.message_id`). Called when a server starts, after its processes'
    modules (``BATCHJOBS_IMPORTS``) are imported."""
    added = []
    for name in registered():
        if name not in app.tasks:
            app.task(name=name, **OPTIONS)(_task)
            added.append(name)
    return added
