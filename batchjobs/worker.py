"""What a batch server is besides its tasks: its ``celery worker`` arguments, the
controller's remote-control command, and what happens when it starts and stops.

A worker started by ``batchjobs worker`` or by plain ``celery -A batchjobs.app
worker -n NAME@%h -Q batch.default`` takes its name before its pool starts (a new
incarnation: :mod:`batchjobs.incarnation`; refused, exit 2, while a live process holds
it), registers itself when it is ready (a new server's record is made from its queues
and concurrency; an existing record wins), applies what its record wants now, fails the
attempts its previous incarnations left running, and starts its housekeeper process
(:mod:`batchjobs.housekeeper`).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from celery import signals
from celery.worker.control import control_command

from . import clock, incarnation, queues, request, store
from .controller import APPLY_COMMAND, apply, schedule_clock
from .coordinator import claim, record
from .coordinator.sweeps import fail_own_attempts
from .errors import ServerNameTaken, UnknownProcess
from .housekeeper import HousekeeperProcess
from .processes import get_process, import_configured
from .runner import register_processes, server_name
from .servers import beat, record_applied, register_worker
from .settings import get_settings
from .status import Outcome

log = logging.getLogger(__name__)


def worker_argv(name: str, groups: Sequence[str], processes: int,
                extra: Sequence[str] = ()) -> list[str]:
    """The ``celery worker`` arguments of a batch server: a prefork pool of ``processes``,
    one per thread at most, prefetch one per thread, task events on."""
    return [
        "worker", "--hostname", f"{name}@%h",
        "--queues", ",".join(queues.queue_name(g) for g in groups),
        "--concurrency", str(max(processes, 1)), "--pool", "prefork", "--task-events",
        "--prefetch-multiplier", "1", "--without-mingle", "--without-gossip",
        "--loglevel", "INFO", *extra,
    ]


@control_command(name=APPLY_COMMAND, args=[("groups", list), ("threads", int)],
                 signature="<groups> <threads>")
def batchjobs_apply(state: Any, groups: list[str] | None = None, threads: int = 0,
                    **_: Any) -> dict[str, Any]:
    """Serve these groups with this many threads (sent by the server's own controller)."""
    applied_groups, applied_threads = apply(state.consumer, tuple(groups or ()), int(threads))
    return {"groups": list(applied_groups), "threads": applied_threads}


_housekeepers: list[HousekeeperProcess] = []


@signals.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """Before the pool starts: the server's clock (shifted only where a test says so), the
    processes this server runs (the modules of ``BATCHJOBS_IMPORTS`` and the shipped
    examples), each with its own Celery task, and the server's name, taken so that its
    processes inherit the incarnation (``batchjobs worker`` has taken it already, and
    reported a refusal)."""
    _workers.append(sender)
    settings = get_settings()
    if settings.clock_offset:
        clock.shift(settings.clock_offset)
        log.warning("this batch server's clock runs %+gs off the system's", settings.clock_offset)
    for failure in import_configured().values():   # ``batchjobs worker`` refused these
        log.error("BATCHJOBS_IMPORTS: %s", failure.describe())
    register_processes()
    name = server_name(sender.hostname)
    token = incarnation.current()
    if token is not None and incarnation.holds(name, token, settings=settings):
        return
    try:
        token = incarnation.take(name, settings=settings)
    except ServerNameTaken as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os.environ[incarnation.ENV] = token


@signals.task_unknown.connect
def _on_unknown_task(sender: Any = None, message: Any = None, name: str | None = None,
                     id: str | None = None, **_: Any) -> None:
    """A message for a process this server does not know (its module is not among the
    server's ``BATCHJOBS_IMPORTS``): Celery drops the message; the attempt fails with the
    reason (and is retried if retries are left), instead of the task waiting forever."""
    try:
        args, kwargs = message.payload[0], message.payload[1]
        task_id, job_id = int(args[0]), int(kwargs["job"])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        log.error("dropped a message for unknown task %r that is not a batch task", name)
        return
    server = server_name(getattr(sender, "hostname", None))
    # On the main process's recording thread, as a lost pool process's attempt is: this
    # runs in Celery's consumer, which must not wait for the database.
    request.submit(_fail_unknown, task_id, job_id, server, id, str(name))


def _fail_unknown(task_id: int, job_id: int, server: str, message_id: str | None, name: str,
                  settings: Any) -> None:
    claimed = claim(task_id, job_id, server, message_id, settings=settings,
                    incarnation=incarnation.current())
    if claimed is None:
        return
    try:
        get_process(name, task=claimed.name)
        error = f"process {name!r} has no Celery task on batch server {server}"
    except UnknownProcess as exc:     # says why: missing module, not batchable, not listed
        error = f"on batch server {server}: {exc}"
    log.warning("task %r of job %s: %s", claimed.name, job_id, error)
    queues.publish(record(task_id, claimed.attempt, Outcome.ERROR, error, settings=settings,
                          incarnation=incarnation.current()), settings=settings)


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Register, apply the record's current state (before any task is fetched), start the
    housekeeper. Runs in the consumer's thread."""
    consumer = sender
    settings = get_settings()
    name = server_name(consumer.hostname)
    groups = sorted(g for q in consumer.app.amqp.queues.consume_from
                    if (g := queues.group_of_queue(q)) is not None)
    token = incarnation.current()
    config = register_worker(name, groups, int(consumer.pool.num_processes), settings=settings,
                             incarnation=token, host=incarnation.this_host(), pid=os.getpid())
    now = schedule_clock(settings)()
    applied = apply(consumer, tuple(sorted(config.groups)), config.threads_at(now))
    record_applied(name, *applied, settings=settings)
    fail_own_attempts(name, settings, incarnation=token)
    keeper = HousekeeperProcess(name, consumer.hostname, applied, settings=settings)
    keeper.start()
    _housekeepers.append(keeper)
    log.info("batch server %s ready: groups %s, %d thread(s) now, pool of %d", name,
             ",".join(applied[0]), applied[1], consumer.pool.num_processes)


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    request.drain(timeout=get_settings().server_timeout)
    for keeper in _housekeepers:
        keeper.stop()
        try:
            beat(keeper.name, alive=False, incarnation=incarnation.current())
        except Exception:   # shutting down; the heartbeat simply ages
            log.exception("could not mark %s stopped", keeper.name)


@signals.worker_shutting_down.connect
def _on_worker_shutting_down(sig: str = "", how: str = "", **_: Any) -> None:
    """After the first SIGTERM (a warm shutdown: running tasks finish), a second one is a
    cold shutdown, as SIGQUIT is: running tasks are stopped and their attempts end
    ``error`` (:class:`batchjobs.request.BatchRequest`)."""
    if sig == "SIGTERM" and how == "Warm" and _workers:
        from celery import platforms

        platforms.signals["SIGTERM"] = functools.partial(_stop_running_tasks, _workers[-1])
    stop_timeout = get_settings().stop_timeout
    if how == "Warm" and _workers and stop_timeout is not None:
        # Before the service manager's own timeout kills everything: tasks still running
        # then are stopped here, and their attempts end "stopped" (retries apply).
        timer = threading.Timer(stop_timeout, _stop_running_tasks, args=(_workers[-1],))
        timer.daemon = True
        timer.start()


def _stop_running_tasks(worker: Any, *_: Any) -> None:
    """A second SIGTERM during a warm shutdown: the running tasks are stopped (their pool
    processes killed), their attempts end ``error``, and the warm shutdown goes on.
    (Celery's cold-shutdown handler would stop the pool a second time, from inside the
    warm shutdown's own stop.)"""
    print("worker: second SIGTERM or stop timeout: running tasks stopped, cold shutdown "
          "(MainProcess)", file=sys.__stdout__, flush=True)
    worker.consumer.cancel_active_requests()


_workers: list[Any] = []


@signals.worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    store.reset_engines()

