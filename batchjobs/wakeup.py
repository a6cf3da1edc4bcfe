"""The housekeeper's alarm clock: wake at the next instant something is due, not at the
next half-second tick.

A job submitted with ``run_at`` (or a recurring job's next occurrence) is due at an instant
the database knows. Waiting for the housekeeper's next tick made a due job start 0.15–0.6 s
late, more on a loaded machine. The housekeeper keeps a :class:`Wakeup` instead: a list of
:class:`DueSource` (the query of the next instant something is due, and the duty that
handles it), each turned into a delay *by the database's clock* (hosts differ; a delay is
the same on every host) and then into an instant of this process's monotonic clock.

The housekeeper learns of work due before its next tick by

* PostgreSQL: ``LISTEN`` on :data:`CHANNEL`; whoever makes something due later calls
  :func:`notify` in its transaction (delivered at commit, so the row is visible): a
  submit with ``run_at`` ahead, a release, a recurring job's next run;
* SQLite: a short poll of the next due instants (``BATCHJOBS_DUE_POLL``, 50 ms: one
  index probe per source), since SQLite has no notifications.

Several housekeepers (one per server) wake at the same instant; each duty is a guarded
update, so only one of them starts a job. A source whose duty did nothing while it is still
due (a job another housekeeper is starting, a duty that fails) waits for the next tick:
never a busy loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import store
from .models import Job
from .settings import Settings
from .status import JobStatus
from .store import steps

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel of "something is due at a new instant".
CHANNEL = steps.DUE_CHANNEL
#: Longest single wait: how soon a stop request is seen while nothing is due.
MAX_WAIT = 0.25

NextDue = Callable[[Session], datetime | None]


@dataclass
class DueSource:
    """One kind of work that is due at an instant: ``next_due`` reads the earliest such
    instant (None: nothing waits), ``duty`` does the work that is due; it returns a truthy
    value when it did some (started a job), so it is run again at once while more is due."""

    name: str
    next_due: NextDue
    duty: Callable[[], Any]
    #: This process's monotonic instant when it is due next (None: nothing waits).
    at: float | None = field(default=None, compare=False)


def next_job_due(session: Session) -> datetime | None:
    """When the earliest waiting job is due (one probe of ``ix_jobs_status_run_at``)."""
    return session.execute(select(func.min(Job.run_at))
                           .where(Job.status == JobStatus.WAITING)).scalar()


def notify(session: Session) -> None:
    """Tell every housekeeper, when this transaction commits, that something may now be
    due earlier than it thought (PostgreSQL; a no-op on SQLite, which is polled)."""
    steps.of(session).notify_due(session.connection())


def delay(due: datetime | None, database_now: datetime) -> float | None:
    """Seconds from the database's now until ``due`` (0 if past; None if nothing is due)."""
    if due is None:
        return None
    return max(0.0, (due - database_now).total_seconds())


class Wakeup:
    """The next due instants of ``sources`` and the wait for the earliest of them."""

    def __init__(self, sources: list[DueSource], settings: Settings) -> None:
        self.sources = list(sources)
        self.settings = settings
        self._listener: Any = None
        self._listening = True   # False once LISTEN is known not to work here

    def refresh(self) -> None:
        """Read every source's next due instant (one short read), listening first: what
        commits after the read is then told of."""
        self._listen()
        with store.read_session(self.settings) as session:
            dues = [source.next_due(session) for source in self.sources]
            # Read last: a due instant computed from the earliest read of it errs early
            # (a wait that finds nothing due yet waits again), never late.
            now = store.now(session)
        base = time.monotonic()
        for source, due in zip(self.sources, dues, strict=True):
            wait = delay(due, now)
            source.at = None if wait is None else base + wait

    def next_at(self) -> float | None:
        """The earliest monotonic instant any source is due (None: nothing waits)."""
        return min((s.at for s in self.sources if s.at is not None), default=None)

    def run_due(self, next_tick: float) -> None:
        """Run the duty of each source that is due now; refresh; a source that did
        nothing and is still due waits until ``next_tick``."""
        now = time.monotonic()
        due = [s for s in self.sources if s.at is not None and s.at <= now]
        if not due:
            return
        idle = set()
        for source in due:
            try:
                if not source.duty():
                    idle.add(source.name)
            except Exception:   # the next tick retries
                log.exception("housekeeping: due %s failed", source.name)
                idle.add(source.name)
        self.refresh()
        now = time.monotonic()
        for source in self.sources:
            if source.name in idle and source.at is not None and source.at <= now:
                source.at = next_tick

    def wait(self, until: float, stopping: Any) -> bool:
        """Wait until the monotonic instant ``until`` (or the earliest due instant if
        sooner), learning of new due instants meanwhile. True if told to stop."""
        while True:
            now = time.monotonic()
            wake = min(until, self.next_at() or until)
            if wake <= now:
                return bool(stopping.is_set())
            if stopping.is_set():
                return True
            slice_ = min(wake - now, MAX_WAIT)
            if self._wait_notified(slice_, stopping):
                self.refresh()

    def _wait_notified(self, seconds: float, stopping: Any) -> bool:
        """Wait up to ``seconds``; True if something may have become due meanwhile."""
        listener = self._listen()
        if listener is None:
            poll = self.settings.due_poll_interval
            if poll <= 0 or seconds < poll:
                stopping.wait(seconds)
                return False
            stopping.wait(poll)
            return True
        try:
            return bool(listener.wait(seconds))
        except Exception:  # noqa: BLE001 - a lost connection: listen again next time
            log.warning("housekeeping: lost the due notifications; listening again",
                        exc_info=True)
            self.close()
            stopping.wait(min(seconds, MAX_WAIT))
            return True

    def _listen(self) -> Any:
        if self._listener is None and self._listening:
            try:
                self._listener = steps.of(store.get_engine(self.settings)).listener(
                    store.get_engine(self.settings))
            except Exception:  # noqa: BLE001 - the database is down: poll meanwhile
                log.warning("housekeeping: cannot listen for due notifications",
                            exc_info=True)
                return None
            if self._listener is None:
                self._listening = False   # SQLite: poll
        return self._listener

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
