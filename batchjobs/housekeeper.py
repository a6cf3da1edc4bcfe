"""The housekeeper: the timers of batchjobs, a list of duties run every half second, and
the work due at an instant of its own (a job's ``run_at``) at that instant.

Every batch server runs one in a child process of its main process
(:class:`HousekeeperProcess`), and ``batchjobs housekeeper`` runs one in a thread
where jobs must start while no server runs. The duties are those of
:mod:`batchjobs.coordinator.sweeps` (due jobs, feeding queues, recovery), alert
deliveries, and for a server its schedule controller and heartbeat. Each duty is a
guarded update, so any number of housekeepers may run at once.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from . import alerts, incarnation, retention, store
from .controller import Controller, State
from .coordinator import sweeps
from .coordinator.delayed import next_due as next_retry_due
from .servers import beat
from .settings import Settings, get_settings
from .wakeup import DueSource, Wakeup, next_job_due

log = logging.getLogger(__name__)

Duty = Callable[[], Any]


class Broker:
    """The broker as the duties see it: queue lengths (:class:`sweeps.Broker`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def queue_length(self, queue: str) -> int:
        with self.app.connection_for_read() as conn:
            try:
                return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
            except Exception:  # noqa: BLE001 - a queue never declared holds nothing
                return 0


class Housekeeper(threading.Thread):
    """Runs its duties every ``settings.housekeeping_interval`` seconds, those due once per
    heartbeat every ``settings.heartbeat_interval``, and each :class:`wakeup.DueSource`'s
    duty at the instant it is due (a job's ``run_at``), whichever comes first."""

    def __init__(self, server: str | None, app: Any, controller: Controller | None, *,
                 settings: Settings, parent: int | None = None, stopping: Any = None) -> None:
        super().__init__(name=f"batchjobs-housekeeper-{server or 'standalone'}", daemon=True)
        self.server = server
        self.controller = controller
        self.settings = settings
        #: The batch server's main process, when this housekeeper runs in a child of it:
        #: the housekeeper stops as soon as that process is gone (it must not beat the
        #: heartbeat of a dead server).
        self.parent = parent
        #: Set to stop (an event shared with the worker's main process, in a child).
        self.stopping = stopping if stopping is not None else threading.Event()
        broker = Broker(app)
        self.wakeup = Wakeup(due_sources(settings, broker), settings)
        self.every_tick: list[Duty] = [functools.partial(sweeps.feed_queues, settings, broker),
                                       functools.partial(alerts.deliver_due, settings),
                                       # a due instant no notification told of (a lost
                                       # connection) is learnt here at the latest
                                       self.wakeup.refresh]
        if controller is not None:
            self.every_tick.insert(0, controller.tick)
        self.every_beat: list[Duty] = [functools.partial(duty, settings, broker) for duty in (
            sweeps.fail_lost_attempts, sweeps.republish_lost, sweeps.end_settled_jobs,
            retention.daily, sweeps.age_ready)]
        if server is not None:
            self.every_beat.insert(0, self.beat)
        self.fenced = False

    def run(self) -> None:
        interval, heartbeat = self.settings.housekeeping_interval, self.settings.heartbeat_interval
        next_tick = next_beat = time.monotonic()   # the first pass at once
        try:
            while True:
                if self.parent is not None and os.getppid() != self.parent:
                    log.warning("batch server %s is gone; its housekeeper stops", self.server)
                    break
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + heartbeat
                    self.perform(self.every_beat)
                if now >= next_tick:
                    self.perform(self.every_tick)
                    next_tick = time.monotonic() + interval
                self.wakeup.run_due(next_tick)
                if self.wakeup.wait(min(next_tick, next_beat), self.stopping):
                    break
        finally:
            self.wakeup.close()
            if self.controller is not None:
                try:
                    self.controller.close()
                except Exception:  # noqa: BLE001 - shutting down
                    log.debug("controller connection already gone", exc_info=True)

    def beat(self) -> None:
        """The server's heartbeat, while its incarnation holds the name; a server whose
        name another start took over (``--replace``) is fenced off: it stops."""
        assert self.server is not None
        token = incarnation.current()
        if beat(self.server, settings=self.settings, incarnation=token) or token is None:
            return
        if self.fenced:
            return
        self.fenced = True
        log.error("batch server %s was taken over by another start; this one stops",
                  self.server)
        if self.parent is not None:
            os.kill(self.parent, signal.SIGTERM)

    def tick(self) -> None:
        """One pass of every duty, as at a tick that is also a heartbeat."""
        self.perform(self.every_tick + self.every_beat)
        self.wakeup.run_due(time.monotonic())

    @staticmethod
    def perform(duties: list[Duty]) -> None:
        for duty in duties:
            try:   # one failing duty (a sink, say) must not stop the heartbeat
                duty()
            except Exception:   # the next tick retries
                name = getattr(getattr(duty, "func", duty), "__name__", repr(duty))
                log.exception("housekeeping: %s failed", name)


def due_sources(settings: Settings, broker: Broker) -> list[DueSource]:
    """What is due at an instant of its own, each with the query of that instant and the
    duty that handles it (:mod:`batchjobs.wakeup`): waiting jobs by ``run_at``, delayed
    retries by ``not_before``."""
    return [DueSource("jobs", next_job_due,
                      functools.partial(sweeps.start_due_jobs, settings, broker)),
            DueSource("retries", next_retry_due,
                      functools.partial(sweeps.release_due_retries, settings, broker))]


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
    process). It stops when told to (an event: it ignores the SIGTERM that systemd sends
    to every process of a server it stops, for the heartbeat must go on while the
    server's running tasks finish), or by itself when the main process is gone; if
    it dies while the worker runs, it is started again after
    ``settings.housekeeper_restart_delay`` (its controller then re-applies the record,
    which changes nothing if nothing changed)."""

    def __init__(self, name: str, hostname: str, applied: State | None, *,
                 settings: Settings) -> None:
        self.name = name
        self.hostname = hostname
        self.applied = applied
        self.settings = settings
        self.stopping = threading.Event()
        self.process: Any = None
        self.told: Any = None
        self.watcher: threading.Thread | None = None

    def start(self) -> None:
        import billiard

        context = billiard.get_context("fork")
        self.told = context.Event()
        self.process = context.Process(
            target=_run_housekeeper,
            args=(self.name, self.hostname, self.applied, os.getpid(), self.told),
            name=f"batchjobs-housekeeper-{self.name}", daemon=True)
        self.process.start()
        self.watcher = threading.Thread(target=self._watch, args=(self.process,), daemon=True,
                                        name=f"batchjobs-housekeeper-watch-{self.name}")
        self.watcher.start()

    def _watch(self, process: Any) -> None:
        process.join()
        if self.stopping.is_set():
            return
        log.error("housekeeper of %s exited (code %s); starting it again", self.name,
                  process.exitcode)
        # Not in a tight loop should it die at once every time (a broken database URL).
        if not self.stopping.wait(self.settings.housekeeper_restart_delay):
            self.applied = None
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Tell the process to stop and wait for it (its watcher reaps it: one waiter);
        kill it if it does not stop in ``timeout`` seconds."""
        self.stopping.set()
        if self.process is None or self.watcher is None:
            return
        self.told.set()
        self.watcher.join(timeout)
        if self.watcher.is_alive():
            self.process.kill()
            self.watcher.join(timeout)


def _run_housekeeper(name: str, hostname: str, applied: State | None, parent: int,
                     told: Any) -> None:
    """The housekeeper process: its timers in its main thread until ``told`` is set, or
    until the worker's main process is gone."""
    from .app import app

    store.reset_engines()
    settings = get_settings()
    keeper = Housekeeper(name, app, Controller(name, hostname, app, applied, settings=settings),
                         settings=settings, parent=parent, stopping=told)
    # Celery's handlers came with the fork (SIGHUP restarts a worker, ...): not ours.
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    # Ctrl-C, SIGTERM and SIGQUIT reach every process of a server (a terminal, systemd):
    # the worker's to handle; the housekeeper stops when the worker tells it, or is gone.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    log.info("housekeeper of %s running in process %d", name, os.getpid())
    keeper.run()
