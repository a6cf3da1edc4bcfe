"""The schedule controller: a running batch server follows its record.

Every half second the server's housekeeper asks :class:`Controller` to compare
what the record wants now (its groups, and the threads its schedule allows at
this instant in its time zone) with what the worker applies. On a difference
it sends the worker's own consumer the ``batchjobs_apply`` remote-control
command, so the change is made in the consumer's thread:

* threads: the consumer's prefetch count. With late acknowledgement and a
  prefetch of one per thread, the prefetch count is exactly how many tasks
  run at once. Lowering it lets running tasks finish and takes no new one
  until fewer than the new limit run; raising it takes more at once. The
  prefork pool is started at the largest count the record can ask for, and
  grown only if the record later asks for more.
* 0 threads (outside every window): the group queues are cancelled, so the
  server fetches nothing (a prefetch count of 0 would mean "unlimited").
* groups: queues added or cancelled (``batch.<group>``).

A worker never holds a task it does not run (prefetch = threads), so a closed
window strands nothing: waiting tasks stay in the queue for other servers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from . import clock, queues
from .errors import ServerNotFound
from .servers import get_server, record_applied
from .settings import Settings

log = logging.getLogger(__name__)

#: Name of the remote-control command that applies a state inside a worker.
APPLY_COMMAND = "batchjobs_apply"

State = tuple[tuple[str, ...], int]


def schedule_clock(settings: Settings) -> Callable[[], datetime]:
    """``clock.now`` shifted by ``settings.schedule_offset`` seconds, so a test can put a
    server a few seconds before a window boundary without changing any other time."""
    if not settings.schedule_offset:
        return clock.now
    offset = timedelta(seconds=settings.schedule_offset)
    return lambda: clock.now() + offset


def apply(consumer: Any, groups: tuple[str, ...], threads: int) -> State:
    """Make the consumer serve ``groups`` with ``threads`` tasks at once (consumer thread)."""
    wanted = {queues.queue_name(g) for g in groups} if threads > 0 else set()
    consuming = {q.name for q in consumer.task_consumer.queues}
    for queue in sorted(wanted - consuming):
        consumer.add_task_queue(queue)
    for queue in sorted(consuming - wanted):
        if queues.group_of_queue(queue) is not None:
            consumer.cancel_task_queue(queue)
    if threads > 0:
        missing = threads - consumer.pool.num_processes
        if missing > 0:
            log.info("growing the pool by %d process(es)", missing)
            consumer.pool.grow(missing)
            # billiard only counts the new processes; with an event loop its maintenance
            # timer (every 5 s) would start them. Start them on the loop's next turn, not
            # here: forking inside this remote-control handler breaks its reply.
            maintain = getattr(getattr(consumer.pool, "_pool", None), "maintain_pool", None)
            hub = getattr(consumer, "hub", None)
            if maintain is not None and hub is not None:
                hub.call_soon(maintain)
        # Take only as many tasks as processes are up: a grown process needs seconds to
        # start, and a task fetched for it meanwhile would wait while other servers have
        # room. The controller raises the limit on a later tick.
        threads = min(threads, _processes_up(consumer.pool))
        consumer.initial_prefetch_count = threads
        with consumer.qos._mutex:          # kombu's QoS.set() alone is undone by the loop's
            consumer.qos.value = threads   # next update(), which re-applies ``value``
        consumer.qos.update()
    log.info("serving %s with %d thread(s)", ",".join(groups) if threads else "nothing", threads)
    return tuple(sorted(groups)), threads


def _processes_up(pool: Any) -> int:
    """Pool processes ready for work (prefork: those that said UP and have an inqueue)."""
    ready = getattr(getattr(pool, "_pool", None), "_fileno_to_inq", None)
    if ready is None:
        return int(pool.num_processes)
    return max(min(len(ready), int(pool.num_processes)), 1)


class Controller:
    """Compares a server's record with what its worker applies, and closes the gap."""

    def __init__(self, name: str, hostname: str, app: Any, applied: State | None, *,
                 settings: Settings) -> None:
        self.name = name
        self.hostname = hostname
        self.app = app
        #: None: not known (a restarted housekeeper), so the record is applied again.
        self.applied = applied
        self.settings = settings
        self.now = schedule_clock(settings)
        self._connection: Any = None

    def _broker(self) -> Any:
        """The controller's own broker connection, outside every kombu pool.

        A broadcast that waits for replies leaves a pooled Redis connection with a
        BRPOP in flight; a pool process forked later (the pool grows) closes every
        pooled connection after the fork and blocks forever reading that reply, so it
        never reports UP. A connection of our own is not touched in the child."""
        if self._connection is None:
            self._connection = self.app.connection_for_write()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def desired(self) -> State:
        config = get_server(self.name, settings=self.settings)
        return tuple(sorted(config.groups)), config.threads_at(self.now())

    def tick(self) -> None:
        try:
            wanted = self.desired()
        except ServerNotFound:
            return  # record removed while running: keep what is applied
        if wanted == self.applied:
            return
        try:
            replies = self.app.control.broadcast(
                APPLY_COMMAND, arguments={"groups": list(wanted[0]), "threads": wanted[1]},
                destination=[self.hostname], reply=True, timeout=3.0,
                connection=self._broker())
        except Exception:
            self.close()   # a broken connection is replaced on the next tick
            raise
        for reply in replies or []:
            answer = reply.get(self.hostname)
            if answer and "error" not in answer:
                self.applied = (tuple(answer["groups"]), int(answer["threads"]))
                record_applied(self.name, *self.applied, settings=self.settings)
                return
        log.warning("server %s did not confirm %s; retrying", self.name, wanted)
