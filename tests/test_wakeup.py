"""The housekeeper's wake-up (:mod:`batchjobs.wakeup`): the next due instant, read by the
database's clock, ends its wait before its next tick, and a job stored after that read
(a submit with ``run_at`` just ahead) is learnt of at once: a notification on PostgreSQL,
a short poll on SQLite. No batch server is needed; nothing here waits on wall time but
for deadlines many times what the wake-up takes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import batchjobs
from batchjobs import JobSpec, clock, store
from batchjobs.models import Job
from batchjobs.settings import get_settings
from batchjobs.store import steps
from batchjobs.wakeup import DueSource, Wakeup, delay, notify

#: The "next tick" of these tests: far beyond anything the wake-up waits.
FAR = 30.0


def test_delay_is_counted_from_the_database_clock() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert delay(now + timedelta(seconds=0.3), now) == 0.3
    assert delay(now - timedelta(seconds=5), now) == 0.0       # overdue: at once
    assert delay(None, now) is None                             # nothing waits


def test_the_wait_ends_at_the_next_due_instant_not_at_the_next_tick(backend) -> None:
    due: list[datetime] = []

    def soon(session):   # 0.2 s after the first read, by the database's clock
        if not due:
            due.append(store.now(session) + timedelta(seconds=0.2))
        return due[0]

    wakeup = Wakeup([DueSource("soon", soon, lambda: 0)], get_settings())
    try:
        before = time.monotonic()
        wakeup.refresh()
        (source,) = wakeup.sources
        assert source.at is not None and before < source.at <= time.monotonic() + 0.2
        until = time.monotonic() + FAR
        assert wakeup.wait(until, threading.Event()) is False
        assert source.at <= time.monotonic() < until - FAR / 2
    finally:
        wakeup.close()


def test_a_job_submitted_after_the_last_read_wakes_the_housekeeper_at_its_run_at(backend):
    """The read before the wait saw nothing due; the submit that follows (run_at 0.5 s
    ahead) must end the wait long before the tick: without notification or poll the
    waiter would sleep the whole FAR seconds."""
    name = f"due shortly {time.time_ns()}"

    def next_due(session):   # this job's instant only (other tests' jobs left aside)
        return session.execute(select(Job.run_at).where(Job.description == name)).scalar()

    wakeup = Wakeup([DueSource("this job", next_due, lambda: 0)], get_settings())
    woke: list[float] = []
    try:
        wakeup.refresh()
        assert wakeup.next_at() is None
        until = time.monotonic() + FAR
        waiter = threading.Thread(target=lambda: (wakeup.wait(until, threading.Event()),
                                                  woke.append(time.monotonic())))
        waiter.start()
        job = JobSpec(name, run_at=clock.now() + timedelta(seconds=0.5))
        job.add_task("T", "batchjobs.examples.noop")
        batchjobs.submit(job)
        waiter.join(FAR / 2)
        assert woke, "the wait did not end before the tick"
        assert woke[0] < until - FAR / 2
        assert wakeup.next_at() is not None and wakeup.next_at() <= woke[0]
    finally:
        wakeup.close()


def test_a_due_duty_that_does_nothing_waits_for_the_tick_one_that_works_runs_again(
        backend) -> None:
    """No busy loop on a due job another housekeeper is starting (or a failing duty);
    no tick lost while a batch of due jobs is worked through."""
    calls = {"idle": 0, "busy": 0}

    def idle() -> int:
        calls["idle"] += 1
        return 0

    def busy() -> int:
        calls["busy"] += 1
        return 1 if calls["busy"] == 1 else 0

    past = lambda s: store.now(s) - timedelta(seconds=1)  # noqa: E731 - always due
    wakeup = Wakeup([DueSource("idle", past, idle), DueSource("busy", past, busy)],
                    get_settings())
    wakeup.refresh()
    tick = time.monotonic() + FAR
    wakeup.run_due(tick)
    assert calls == {"idle": 1, "busy": 1}
    idle_source, busy_source = wakeup.sources
    assert idle_source.at == tick                      # waits for the tick
    assert busy_source.at is not None and busy_source.at < tick   # more may be due: again
    wakeup.run_due(tick)
    assert calls == {"idle": 1, "busy": 2}
    assert busy_source.at == tick


def test_postgresql_delivers_the_due_notification_at_commit(backend) -> None:
    if backend.name == "embedded":
        pytest.skip("SQLite has no notifications: its housekeepers poll")
    engine = store.get_engine()
    listener = steps.of(engine).listener(engine)
    try:
        assert listener.wait(0.05) is False
        with store.transaction() as session:
            notify(session)
            assert listener.wait(0.05) is False        # not before the commit
        assert listener.wait(FAR) is True
    finally:
        listener.close()
