"""What a batch server is besides its tasks: its ``celery worker`` arguments, the
controller's remote-control command, and what happens when it starts and stops.

A worker started by ``batchjobs worker`` or by plain ``celery -A batchjobs.app
worker -n NAME@%h -Q batch.default`` registers itself when it is ready (a new
server's record is made from its queues and concurrency; an existing record wins),
applies what its record wants now, fails the attempts its previous process left
running, and starts its housekeeper process (:mod:`batchjobs.housekeeper`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import signals
from celery.worker.control import control_command

from . import queues, request, store
from .controller import APPLY_COMMAND, apply, schedule_clock
from .coordinator.sweeps import fail_own_attempts
from .housekeeper import HousekeeperProcess
from .runner import server_name
from .servers import beat, record_applied, register_worker
from .settings import get_settings

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


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Register, apply the record's current state (before any task is fetched), start the
    housekeeper. Runs in the consumer's thread."""
    consumer = sender
    settings = get_settings()
    name = server_name(consumer.hostname)
    groups = sorted(g for q in consumer.app.amqp.queues.consume_from
                    if (g := queues.group_of_queue(q)) is not None)
    config = register_worker(name, groups, int(consumer.pool.num_processes), settings=settings)
    now = schedule_clock(settings)()
    applied = apply(consumer, tuple(sorted(config.groups)), config.threads_at(now))
    record_applied(name, *applied, settings=settings)
    fail_own_attempts(name, settings)
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
            beat(keeper.name, alive=False)
        except Exception:  # noqa: BLE001 - shutting down; the heartbeat simply ages
            log.exception("could not mark %s stopped", keeper.name)


@signals.worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    store.reset_engines()
