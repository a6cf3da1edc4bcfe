"""The Celery task a batch server runs: claim the task, run its process, record it.

The message names a task id; everything else comes from the database. The
claim is atomic, so a duplicated or redelivered message runs nothing twice.
The outcome and the dependents' decisions are recorded by one function
(:func:`batchjobs.coordinator.record`), and the tasks that became ready are
published right after it returns: the next task starts milliseconds after this
one ends, with no polling.

**Chains.** A group whose ready tasks outnumber its queue's depth keeps the rest in the
database, unqueued (:mod:`batchjobs.coordinator.feed`). A thread that has just ended a
task of such a backlog takes the next one itself (:class:`NextTask`, claimed as its
success is recorded), in the feeders' order, without a message: the per-task cost of a
message (publish, deliver, ack) is saved where there are many tasks, and a shallow
queue (every ready task has its message) never chains, so a lone dependent still starts
by its own message. A chain claims one task at a time, only when the thread is free, so
no task waits behind a busy thread; it takes only its own job's tasks, without a time
limit or a cap, and stops after ``BATCHJOBS_CHAIN_SECONDS``, a failed task or at a
shutdown. Flower sees each chained task as a
task of its own (events sent with a new id).
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import incarnation, queues
from .app import app
from .coordinator import Claim, NextTask, claim, record
from .coordinator.concurrency import feed_freed
from .errors import TaskFailed
from .execution import Result, execute
from .processes import registered
from .settings import get_settings
from .status import Outcome

log = logging.getLogger(__name__)

#: Options of every Celery task a batch server runs. ``Request``: what the server's main
#: process does when a pool process dies, times out or is cancelled (:mod:`request`).
OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "ignore_result": True,
                           "throws": (TaskFailed,), "Request": "batchjobs.request:BatchRequest"}

#: Whether this pool process runs a task now (SIGTERM and SIGQUIT are then ignored:
#: :func:`deaf`).
busy = False
#: billiard's handlers of those signals in this pool process, once :func:`deaf` replaced
#: them (empty before).
_previous: dict[int, Any] = {}
#: A SIGTERM or SIGQUIT came while a task ran: the server stops, so no chain goes on.
stopping = False
#: The signals a running task does not hear: its server's main process decides.
DEAF_TO = (signal.SIGTERM, signal.SIGQUIT)


def server_name(hostname: str | None) -> str:
    """The batch server's name: the part of the Celery hostname before ``@``."""
    return (hostname or "unknown").split("@", 1)[0]


def _task(self: Any, task_id: int, *, job: int, task: str = "", process: str = "") -> str:
    """Run one batch task (the message's ``task`` names it, for Flower; its process is the
    database's word, not the message's)."""
    global busy
    if not _previous:
        deaf()
    busy = True
    try:
        return _run(self, task_id, job)
    finally:
        busy = False


def deaf() -> None:
    """Make this pool process ignore SIGTERM and SIGQUIT while it runs a task.

    systemd (and ``kill -TERM -PGID``) signals every process of a server it stops; the
    main process then makes a warm shutdown, which lets running tasks finish, and must
    find them alive. On a cold shutdown (SIGQUIT, or a second SIGTERM) the main process
    stops its running tasks itself, with SIGKILL (:mod:`batchjobs.request`), as it does
    for ``cancel`` and a time limit. A pool process that heard the SIGQUIT too would
    unwind at the same instant and tell the main process it is exiting; killed in the
    middle of that message, it would leave the pool's result pipe locked, and the main
    process would wait for that lock forever while it stops the pool (seen on the
    embedded broker). An idle pool process still ends on either signal, as billiard
    expects. Installed at the first task, because billiard replaces the handlers a
    process has when it starts."""
    for sig in DEAF_TO:
        _previous[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_stop_signal)


def _on_stop_signal(signum: int, frame: Any) -> None:
    global stopping
    if busy:
        stopping = True
        log.warning("pool process %d: %s ignored while it runs a task (the server's main "
                    "process lets the task finish, or stops it)", os.getpid(),
                    signal.Signals(signum).name)
        return
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _run(self: Any, task_id: int, job: int) -> str:
    server = server_name(self.request.hostname)
    settings = get_settings()    # once per task: reading it means reading the environment
    token = incarnation.current()
    started = time.monotonic()
    claimed = claim(task_id, job, server, self.request.id, settings=settings,
                    incarnation=token)
    if claimed is None:
        log.info("task %s of job %s is not ready any more (or not for this server); "
                 "message dropped", task_id, job)
        return "skipped"
    chain = (_Chain(self.request.id, started + settings.chain_seconds)
             if _may_chain(self, settings.chain_seconds) else None)
    result, following = _carry_out(claimed, server, settings, token, chain)
    if result.outcome is Outcome.ERROR:
        # Chained to the process's own exception, so the traceback Celery sends with its
        # task-failed event (and Flower shows) is the process's.
        raise TaskFailed(job_id=claimed.job_id, task=claimed.name, attempt=claimed.attempt,
                         error=result.error or "") from result.exception
    if following is not None and chain is not None:
        _chain(self, following, server, settings, token, chain)
    return result.outcome.value


class _Chain:
    """What a message's thread may still take after the message's own task: until
    ``until`` (monotonic), while the server is not stopping, after successes."""

    def __init__(self, message_id: str | None, until: float) -> None:
        self.message_id = message_id
        self.until = until

    def next_after(self, claimed: Claim, result: Result, server: str) -> NextTask | None:
        """The request for the next task that recording ``claimed``'s outcome makes; None
        when the chain ends here (an error ends it too: the backlog goes back to the
        feeders, one message per task)."""
        if (result.outcome is not Outcome.ENDED or stopping
                or time.monotonic() >= self.until):
            return None
        return NextTask(claimed, server, self.message_id)


def _carry_out(claimed: Claim, server: str, settings: Any, token: str | None,
               chain: _Chain | None) -> tuple[Result, Claim | None]:
    """Run a claimed task's process, record its outcome and publish what it readied;
    in a ``chain``, also the task claimed next (None: the chain ends)."""
    result = execute(claimed, server, log_limit=settings.attempt_log_limit, settings=settings)
    then = None if chain is None else chain.next_after(claimed, result, server)
    dispatches = record(claimed.task_id, claimed.attempt, result.outcome, result.error,
                        children=claimed.readied_by_success, traceback=result.traceback,
                        log=result.log, settings=settings, incarnation=token,
                        failure=result.failure, added=result.added, then=then)
    queues.publish(dispatches, settings=settings)
    if claimed.capped and claimed.group is not None:
        queues.publish(feed_freed(claimed.job_id, claimed.group, settings), settings=settings)
    return result, None if then is None else then.claimed


def _may_chain(self: Any, seconds: float) -> bool:
    """Chains are on, the server is not stopping, and the message has no time limit (it
    would run over the chained tasks: the limit is the first task's)."""
    limits = self.request.timelimit or (None, None)
    return seconds > 0 and not stopping and not any(limits)


def _chain(self: Any, following: Claim | None, server: str, settings: Any, token: str | None,
           chain: _Chain) -> None:
    """Run the tasks a chain claimed, each claimed as the one before it was recorded,
    until the backlog is empty (or its head is not for a chain), the chain's time is up,
    a task fails or the server stops. A claimed task runs whatever the time."""
    with _events(self) as flower:
        while following is not None:
            event_id = flower.started(following)
            result, following = _carry_out(following, server, settings, token, chain)
            flower.ended(event_id, result)


class _Flower:
    """Task events for the tasks a chain runs, as Celery sends them for a message's."""

    def __init__(self, dispatcher: Any) -> None:
        self._dispatcher = dispatcher
        self._started = 0.0

    def started(self, claimed: Claim) -> str:
        event_id = f"{claimed.job_id}:{claimed.name}:{uuid.uuid4().hex[:12]}"
        if self._dispatcher is not None:
            self._dispatcher.send("task-received", uuid=event_id, name=claimed.process,
                                  args="()", kwargs="{}", retries=0)
            self._dispatcher.send("task-started", uuid=event_id)
        self._started = time.monotonic()
        return event_id

    def ended(self, event_id: str, result: Result) -> None:
        if self._dispatcher is None:
            return
        runtime = time.monotonic() - self._started
        if result.outcome is Outcome.ERROR:
            self._dispatcher.send("task-failed", uuid=event_id, exception=result.error or "",
                                  traceback=result.traceback or "")
        else:
            self._dispatcher.send("task-succeeded", uuid=event_id,
                                  result=repr(result.outcome.value), runtime=runtime)


@contextmanager
def _events(self: Any) -> Iterator[_Flower]:
    """A dispatcher of task events for the chain (None when the server sends none)."""
    if not app.conf.worker_send_task_events:
        yield _Flower(None)
        return
    with app.events.default_dispatcher(hostname=self.request.hostname) as dispatcher:
        yield _Flower(dispatcher)


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
