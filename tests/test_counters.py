"""A large job's count of unfinished tasks on several counters (``batchjobs.counters``),
through the coordinator on real databases (SQLite, and PostgreSQL with its one-statement
success): the job ends when the last counter reaches 0, never before, exactly once, and
a new run counts its tasks again."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from batchjobs import JobSpec, clock, counters, lifecycle, store
from batchjobs.api import status, submit
from batchjobs.coordinator import claim, record, start_job
from batchjobs.coordinator.outcome import record_in
from batchjobs.coordinator.settlement import end_settled_job, settled_jobs
from batchjobs.execution import execute
from batchjobs.models import Job, JobCounter, Task
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from tests.conftest import reset_postgres

NOOP = "batchjobs.examples.noop"
FAIL = "batchjobs.examples.fail"
#: Tasks enough for two counters.
TWO_COUNTERS = 2 * counters.TASKS_PER_COUNTER


@pytest.fixture(scope="module")
def postgres_url() -> str:
    return reset_postgres("batchjobs_counters_unit")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    url = (f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    return Settings(database_url=url, broker_url="embedded://", home=tmp_path)


def started(settings: Settings, tasks: int, failing: tuple[str, ...] = ()) -> int:
    """A job of ``tasks`` independent tasks (those named in ``failing`` fail), stored
    without publishing and started."""
    job = JobSpec("counted", run_at=clock.now() + timedelta(days=1))
    for i in range(tasks):
        job.add_task(f"t{i}", FAIL if f"t{i}" in failing else NOOP)
    job_id = submit(job, settings=settings)
    with store.transaction(settings) as session:
        start_job(session, job_id, tasks)
    return job_id


def by_counter(settings: Settings, job_id: int) -> dict[int, list[int]]:
    """The job's task ids on each of its counters."""
    with store.read_session(settings) as session:
        rows = session.execute(select(Task.counter, Task.id).where(Task.job_id == job_id)
                               .order_by(Task.id)).all()
    found: dict[int, list[int]] = {}
    for counter, task_id in rows:
        found.setdefault(counter, []).append(task_id)
    return found


def unfinished(settings: Settings, job_id: int) -> tuple[int, dict[int, int]]:
    """The job's own counter and its other counters."""
    with store.read_session(settings) as session:
        own = session.execute(select(Job.remaining).where(Job.id == job_id)).scalar_one()
        others = dict(session.execute(select(JobCounter.counter, JobCounter.remaining)
                                      .where(JobCounter.job_id == job_id)).all())
    return own, others


def job_status(settings: Settings, job_id: int) -> str:
    return str(status(job_id, settings=settings)["status"])


def run(settings: Settings, job_id: int, task_id: int) -> None:
    """Run one ready task as a batch server does: claim, execute, record."""
    claimed = claim(task_id, job_id, "S", settings=settings)
    assert claimed is not None, f"task {task_id} was not ready"
    result = execute(claimed, "S", settings=settings)
    record(claimed.task_id, claimed.attempt, result.outcome, result.error,
           children=claimed.readied_by_success, log=result.log, settings=settings)


def test_a_small_job_has_the_one_counter_of_its_row(settings):
    job_id = started(settings, TWO_COUNTERS - 1)
    assert set(by_counter(settings, job_id)) == {0}
    assert unfinished(settings, job_id) == (TWO_COUNTERS - 1, {})


def test_a_large_job_ends_when_its_last_counter_reaches_zero_not_before(settings):
    job_id = started(settings, TWO_COUNTERS + 5)
    tasks = by_counter(settings, job_id)
    assert set(tasks) == {0, 1} and abs(len(tasks[0]) - len(tasks[1])) <= 1
    assert unfinished(settings, job_id) == (len(tasks[0]), {1: len(tasks[1])})
    for task_id in tasks[1]:            # counter 1 reaches 0 first: the job goes on
        run(settings, job_id, task_id)
    assert unfinished(settings, job_id) == (len(tasks[0]), {1: 0})
    assert job_status(settings, job_id) == "executing"
    for task_id in tasks[0][:-1]:
        run(settings, job_id, task_id)
    assert job_status(settings, job_id) == "executing"
    run(settings, job_id, tasks[0][-1])
    assert unfinished(settings, job_id) == (0, {1: 0})
    assert job_status(settings, job_id) == "ended"


def test_failures_on_each_counter_end_the_job_error_and_a_rerun_counts_again(settings):
    """t0 and t1 have consecutive ids: one is on each counter."""
    job_id = started(settings, TWO_COUNTERS, failing=("t0", "t1"))
    tasks = by_counter(settings, job_id)
    for ids in tasks.values():
        for task_id in ids:
            run(settings, job_id, task_id)
    assert job_status(settings, job_id) == "error"
    with store.read_session(settings) as session:
        assert session.execute(select(Job.failed).where(Job.id == job_id)).scalar_one() == 2

    assert lifecycle.rerun(job_id, failed=True, settings=settings) == 2
    assert unfinished(settings, job_id) == (1, {1: 1})
    for name in ("t0", "t1"):
        run(settings, job_id, by_name_id(settings, job_id, name))
    assert job_status(settings, job_id) == "error"

    assert lifecycle.rerun(job_id, settings=settings) == TWO_COUNTERS
    assert unfinished(settings, job_id) == (len(tasks[0]), {1: len(tasks[1])})
    lifecycle.cancel(job_id, settings=settings)
    assert unfinished(settings, job_id) == (0, {1: 0})


def by_name_id(settings: Settings, job_id: int, name: str) -> int:
    with store.read_session(settings) as session:
        return int(session.execute(select(Task.id).where(Task.job_id == job_id,
                                                         Task.name == name)).scalar_one())


def _claimed_last_two(settings: Settings) -> tuple[int, Any, Any]:
    """A three-counter job whose tasks have all run but the last ones of counters 1
    and 2, which are claimed: (job id, the claim on counter 1, the one on counter 2)."""
    job_id = started(settings, 3 * counters.TASKS_PER_COUNTER)
    tasks = by_counter(settings, job_id)
    assert set(tasks) == {0, 1, 2}
    for counter, ids in tasks.items():
        for task_id in ids if counter == 0 else ids[:-1]:
            run(settings, job_id, task_id)
    on_1 = claim(tasks[1][-1], job_id, "S", settings=settings)
    on_2 = claim(tasks[2][-1], job_id, "S", settings=settings)
    assert on_1 is not None and on_2 is not None
    return job_id, on_1, on_2


def _waiting_on_a_lock(settings: Settings) -> int:
    with store.read_session(settings) as session:
        return int(session.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar_one())


def test_two_last_tasks_on_different_counters_at_once_end_the_job(settings):
    """The race the lock-then-sum order closes: a transaction has counted its task down
    on counter 1 and checked the job (counter 2 still at 1) but not committed; the
    one-statement success of counter 2's task commits, checks, waits for the job's
    lock, and reads the sum after that commit: the job ends, without a housekeeper."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writing transaction at a time")
    job_id, on_1, on_2 = _claimed_last_two(settings)
    done = threading.Event()
    with store.transaction(settings) as session:     # recorded, checked, not committed
        assert record_in(session, on_1.task_id, on_1.attempt, Outcome.ENDED, clock.now(),
                         settings, {"p_error": None, "p_traceback": None, "p_log": None,
                                    "p_incarnation": None}) == []
        left = dict(session.execute(select(JobCounter.counter, JobCounter.remaining)
                                    .where(JobCounter.job_id == job_id)).all())
        assert left == {1: 0, 2: 1}
        assert session.execute(select(Job.status).where(Job.id == job_id)
                               ).scalar_one() == "executing"

        def finish_other() -> None:
            record(on_2.task_id, on_2.attempt, Outcome.ENDED, settings=settings,
                   children=on_2.readied_by_success)
            done.set()

        other = threading.Thread(target=finish_other, daemon=True)
        other.start()
        deadline = time.monotonic() + 120
        while _waiting_on_a_lock(settings) == 0:   # its check waits for this one's lock
            assert not done.is_set(), "the other success checked the job without waiting"
            assert time.monotonic() < deadline, "the other success never waited for the lock"
            time.sleep(0.02)
    other.join(timeout=120)
    assert done.is_set()
    assert job_status(settings, job_id) == "ended"


def test_a_job_whose_counters_all_reached_zero_is_found_by_the_sweep(settings):
    """The process that counted the last task down died before checking the job: the
    housekeeper's sweep sums the counters, not the job's row alone."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite records the success and checks the job in one transaction")
    job_id, on_1, on_2 = _claimed_last_two(settings)
    for claimed in (on_1, on_2):
        with store.atomic(settings) as (kind, conn):   # the one-step success alone
            rows = kind.success_at_once(conn, {
                "p_task": claimed.task_id, "p_number": claimed.attempt,
                "p_now": clock.now(), "p_children": [], "p_log": None,
                "p_incarnation": None})
        assert rows is not None and rows[0].remaining == 0
    with store.read_session(settings) as session:
        assert job_id in settled_jobs(session)
        assert session.execute(select(func.count()).select_from(JobCounter).where(
            JobCounter.job_id == job_id, JobCounter.remaining > 0)).scalar_one() == 0
    with store.transaction(settings) as session:
        assert end_settled_job(session, job_id, settings)
    assert job_status(settings, job_id) == "ended"
