"""What runs inside a batch server besides its tasks: registration, the
housekeeper process and the controller's remote-control command.

A worker started by ``batchjobs worker`` or by plain ``celery -A batchjobs.app
worker -n NAME@%h -Q batch.default`` registers itself when it is ready (a
new server's record is made from its queues and concurrency; an existing
record wins), applies what its record wants now, and keeps a housekeeping
process that beats its heartbeat, follows its record (:mod:`controller`),
starts jobs whose start time has come, fails the attempts of dead servers and
republishes ready tasks whose message was lost.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import signals
from celery.worker.control import control_command
from sqlalchemy import select

from . import alerts, clock, queues, store
from .controller import APPLY_COMMAND, Controller, apply, schedule_clock
from .coordinator import (
    due_jobs,
    end_settled_job,
    lost_attempts,
    queue_ready,
    record_outcome,
    settled_jobs,
    has_stale_ready,
    stale_ready,
    start_job,
    unqueued_groups,
)
from .models import BatchGroup
from .runner import server_name
from .servers import HEARTBEAT_INTERVAL, beat, record_applied, register_worker
from .settings import HOUSEKEEPING_INTERVAL, get_settings, queue_depth
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


class Housekeeper(threading.Thread):
    """The timers of batchjobs, run by every batch server's main process (never by its task
    threads) and by ``batchjobs coordinator``: the schedule controller and heartbeat (a
    server's own), jobs whose time has come, alert deliveries, attempts of dead servers,
    ready tasks whose message is lost. Each duty is a guarded update, so any number of
    processes may run them at once."""

    def __init__(self, name: str | None, app: Any, controller: Controller | None,
                 parent: int | None = None) -> None:
        super().__init__(name=f"batchjobs-housekeeper-{name or 'coordinator'}", daemon=True)
        self.server = name
        self.app = app
        self.controller = controller
        #: The batch server's main process, when this housekeeper runs in a child of it:
        #: the housekeeper stops as soon as that process is gone (it must not beat the
        #: heartbeat of a dead server).
        self.parent = parent
        self.stopping = threading.Event()
        self._last_beat = 0.0

    def run(self) -> None:
        while not self.stopping.wait(HOUSEKEEPING_INTERVAL):
            if self.parent is not None and os.getppid() != self.parent:
                log.warning("batch server %s is gone; its housekeeper stops", self.server)
                break
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep the thread alive; the next tick retries
                log.exception("housekeeping failed")
        try:
            if self.controller is not None:
                self.controller.close()
        except Exception:  # noqa: BLE001 - shutting down
            log.debug("controller connection already gone", exc_info=True)

    def tick(self) -> None:
        duties: list[Callable[[], Any]] = [self.start_due_jobs, self.feed_queues,
                                           alerts.deliver_due]
        if self.controller is not None:
            duties.insert(0, self.controller.tick)
        if clock.now().timestamp() - self._last_beat >= HEARTBEAT_INTERVAL:
            self._last_beat = clock.now().timestamp()
            if self.server is not None:
                duties.append(functools.partial(beat, self.server))
            duties += [self.fail_lost_attempts, self.republish_lost, self.end_settled_jobs]
        for duty in duties:
            try:   # one failing duty (a sink, say) must not stop the heartbeat
                duty()
            except Exception:  # noqa: BLE001 - the next tick retries
                log.exception("housekeeping: %s failed", getattr(duty, "__name__", duty))

    def start_due_jobs(self) -> None:
        with store.read_session() as session:
            due = due_jobs(session)
        for job_id in due:
            with store.transaction() as session:
                dispatches = start_job(session, job_id, queue_depth())
            queues.publish(dispatches)

    def feed_queues(self) -> None:
        """Publish ready tasks left unqueued (a job started with more of them than a queue
        is kept at) once their group's queue has drained to half its depth, oldest first:
        servers never run dry, and the broker never holds a whole large job."""
        depth = queue_depth()
        with store.read_session() as session:
            groups = unqueued_groups(session)
        for group in groups:
            room = depth - self.queue_length(queues.queue_name(group))
            if room < depth / 2:
                continue
            with store.transaction() as session:
                dispatches = queue_ready(session, group, room)
            queues.publish(dispatches)

    def fail_lost_attempts(self) -> None:
        """Attempts on a server that stopped beating end ``error`` (retried if retries are
        left), so a crash never leaves a task executing forever."""
        timeout = get_settings().server_timeout
        with store.read_session() as session:
            lost = lost_attempts(session, dead_before=clock.now() - timedelta(seconds=timeout))
        self._fail(lost, f"stopped (no heartbeat for {timeout:g}s)")

    def fail_own_attempts(self) -> None:
        """At start, attempts still running under this server's name died with its previous
        process."""
        with store.read_session() as session:
            lost = lost_attempts(session, server=self.server)
        self._fail(lost, "restarted while the task was executing")

    def _fail(self, lost: list[tuple[int, int, str]], what: str) -> None:
        for task_id, number, server in lost:
            error = f"batch server {server} {what}"
            with store.transaction() as session:
                dispatches = record_outcome(session, task_id, number, Outcome.ERROR, error)
            log.warning("task %s attempt %s lost with server %s", task_id, number, server)
            queues.publish(dispatches)

    def end_settled_jobs(self) -> None:
        """End jobs whose last task was recorded by a process that died before it could
        end the job (see :func:`coordinator.record_lone_success`)."""
        with store.read_session() as session:
            settled = settled_jobs(session)
        for job_id in settled:
            with store.transaction() as session:
                if end_settled_job(session, job_id):
                    log.warning("job %s had no task left to run; ended", job_id)

    def republish_lost(self) -> None:
        """Republish queued ready tasks whose message is gone: their queue is empty, yet
        they have waited longer than ``BATCHJOBS_REPUBLISH_AFTER``. The queues are looked
        at first (one length each), so a big backlog is never scanned while it drains."""
        after = timedelta(seconds=get_settings().republish_after)
        with store.read_session() as session:
            groups = list(session.execute(select(BatchGroup.name)).scalars())
        for group in groups:
            if self.queue_length(queues.queue_name(group)) > 0:
                continue
            with store.read_session() as session:
                if not has_stale_ready(session, after, group=group):
                    continue
            with store.transaction() as session:
                lost = stale_ready(session, after, group=group)
            if lost:
                log.warning("republishing %d ready task(s) of group %s", len(lost), group)
                queues.publish(lost)

    def queue_length(self, queue: str) -> int:
        with self.app.connection_for_read() as conn:
            try:
                return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
            except Exception:  # noqa: BLE001 - a queue never declared holds nothing
                return 0


#: Seconds before a housekeeper process that died is started again.
RESTART_DELAY = 1.0


class HousekeeperProcess:
    """A batch server's housekeeper, run in a child process of the worker's main process.

    The main process is Celery's consumer: it fetches every message, hands it to a
    pool process, acknowledges it and sends its events, one task after another. A
    housekeeper thread there competes with it for the interpreter lock; publishing
    a few hundred messages to refill a queue (``feed_queues``) stalled dispatch for
    tens of milliseconds at a time. In a process of its own it competes for nothing
    but a CPU.

    The child is forked with billiard, so Celery's after-fork hooks drop the broker
    connections it inherits; it opens its own database connections (engines are per
    process). It stops when told to, or by itself when the main process is gone; if
    it dies while the worker runs, it is started again (its controller then re-applies
    the record, which changes nothing if nothing changed)."""

    def __init__(self, name: str, hostname: str, applied: Any) -> None:
        self.name = name
        self.hostname = hostname
        self.applied = applied
        self.stopping = threading.Event()
        self.process: Any = None

    def start(self) -> None:
        import billiard

        self.process = billiard.get_context("fork").Process(
            target=_run_housekeeper, args=(self.name, self.hostname, self.applied, os.getpid()),
            name=f"batchjobs-housekeeper-{self.name}", daemon=True)
        self.process.start()
        threading.Thread(target=self._watch, args=(self.process,), daemon=True,
                         name=f"batchjobs-housekeeper-watch-{self.name}").start()

    def _watch(self, process: Any) -> None:
        process.join()
        if self.stopping.is_set():
            return
        log.error("housekeeper of %s exited (code %s); starting it again", self.name,
                  process.exitcode)
        # Not in a tight loop should it die at once every time (a broken database URL).
        if not self.stopping.wait(RESTART_DELAY):
            self.applied = None
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)


def _run_housekeeper(name: str, hostname: str, applied: Any, parent: int) -> None:
    """The housekeeper process: its timers in its main thread until SIGTERM, or until
    the worker's main process is gone."""
    from .app import app

    store.reset_engines()
    keeper = Housekeeper(name, app, Controller(name, hostname, app, applied), parent=parent)
    # Celery's handlers came with the fork (SIGHUP restarts a worker, ...): not ours.
    for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the worker's to handle
    signal.signal(signal.SIGTERM, lambda *_: keeper.stopping.set())
    log.info("housekeeper of %s running in process %d", name, os.getpid())
    keeper.run()


_housekeepers: list[HousekeeperProcess] = []


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    """Register, apply the record's current state (before any task is fetched), start the
    housekeeper. Runs in the consumer's thread."""
    consumer = sender
    name = server_name(consumer.hostname)
    groups = sorted(g for q in consumer.app.amqp.queues.consume_from
                    if (g := queues.group_of_queue(q)) is not None)
    config = register_worker(name, groups, int(consumer.pool.num_processes))
    applied = apply(consumer, tuple(sorted(config.groups)), config.threads_at(schedule_clock()()))
    record_applied(name, *applied)
    Housekeeper(name, consumer.app, None).fail_own_attempts()
    keeper = HousekeeperProcess(name, consumer.hostname, applied)
    keeper.start()
    _housekeepers.append(keeper)
    log.info("batch server %s ready: groups %s, %d thread(s) now, pool of %d", name,
             ",".join(applied[0]), applied[1], consumer.pool.num_processes)


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    for keeper in _housekeepers:
        keeper.stop()
        try:
            beat(keeper.name, alive=False)
        except Exception:  # noqa: BLE001 - shutting down; the heartbeat simply ages
            log.exception("could not mark %s stopped", keeper.name)


@signals.worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    store.reset_engines()
