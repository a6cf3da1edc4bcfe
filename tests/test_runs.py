"""Runs of recurring jobs through the real coordinator (SQLite), with a controlled clock:
cron wall times across DST, fixed intervals across DST, skipped occurrences, end_after,
alerts of each run, a rerun of a failed branch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from batchjobs import JobSpec, clock, store
from batchjobs.api import history, status, submit
from batchjobs.coordinator import claim, record, start_job
from batchjobs.coordinator.sweeps import due_jobs
from batchjobs.models import Task
from batchjobs.settings import Settings
from batchjobs.status import Outcome


class Clock:
    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", broker_url="embedded://",
                    home=tmp_path)


@pytest.fixture
def now() -> Iterator[Clock]:
    fake = Clock(datetime(2027, 3, 27, 22, 0, tzinfo=UTC))
    clock.set_clock(fake)
    try:
        yield fake
    finally:
        clock.set_clock(None)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_due(settings: Settings, outcome: Outcome = Outcome.ENDED) -> list[int]:
    """Start every due job and run its tasks to the end, as servers would."""
    started = []
    with store.read_session(settings) as session:
        due = due_jobs(session)
    for job_id in due:
        with store.transaction(settings) as session:
            dispatches = start_job(session, job_id, settings.queue_depth)
        for d in dispatches:
            claimed = claim(d.task_id, d.job_id, "S", settings=settings)
            assert claimed is not None
            record(d.task_id, claimed.attempt, outcome, settings=settings)
        started.append(job_id)
    return started


def scheduled(settings: Settings, job_id: int) -> list[tuple[int, str, str, int]]:
    return [(r["number"], r["scheduled_at"], r["status"], r["skipped"])
            for r in history(job_id, settings=settings)]


def test_cron_keeps_wall_time_across_spring_forward_and_skips_missed_runs(settings, now):
    """Europe/Oslo 2027-03-28: 02:30 does not exist (02:00 -> 03:00), so that run starts at
    03:00 CEST; later runs are 02:30 CEST = 00:30Z."""
    job = JobSpec("nightly", recurrence={"cron": "30 2 * * *", "timezone": "Europe/Oslo",
                                         "end_after": 3})
    job.add_task("T", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    assert scheduled(settings, job_id) == [(1, "2027-03-28T01:00:00Z", "waiting", 0)]
    assert run_due(settings) == []                               # not yet

    now.value = utc("2027-03-28T01:00:00Z")
    assert run_due(settings) == [job_id]
    assert scheduled(settings, job_id) == [(1, "2027-03-28T01:00:00Z", "ended", 0),
                                           (2, "2027-03-29T00:30:00Z", "waiting", 0)]
    assert status(job_id, settings=settings)["status"] == "waiting"

    now.value = utc("2027-03-31T10:00:00Z")                      # two days late
    assert run_due(settings) == [job_id]
    runs = scheduled(settings, job_id)
    assert runs[2] == (3, "2027-04-01T00:30:00Z", "waiting", 2)  # 30th and 31st skipped
    assert run_due(settings) == []                               # no burst

    now.value = utc("2027-04-01T00:30:00Z")
    assert run_due(settings) == [job_id]
    final = status(job_id, settings=settings)
    assert (final["status"], final["run"]) == ("ended", 3)
    assert len(history(job_id, settings=settings)) == 3           # end_after: 3


def test_cron_fires_once_in_the_repeated_hour_of_fall_back(settings, now):
    now.value = utc("2026-10-24T12:00:00Z")
    job = JobSpec("fall back", recurrence={"cron": "30 2 * * *", "timezone": "Europe/Oslo",
                                           "end_after": 2})
    job.add_task("T", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    now.value = utc("2026-10-25T00:30:00Z")                      # 02:30 CEST, first pass
    assert run_due(settings) == [job_id]
    # the second 02:30 (CET, 01:30Z) is the same wall time: not a new occurrence
    assert scheduled(settings, job_id)[1][1] == "2026-10-26T01:30:00Z"


def test_every_is_real_time_across_dst(settings, now):
    now.value = utc("2026-10-24T23:00:00Z")
    job = JobSpec("hourly", run_at=utc("2026-10-25T00:00:00Z"),         # 02:00 CEST
                  recurrence={"every": "1h", "timezone": "Europe/Oslo", "end_after": 3})
    job.add_task("T", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    for hour in (0, 1, 2):
        now.value = utc(f"2026-10-25T0{hour}:00:00Z")
        assert run_due(settings) == [job_id]
    assert [r[1] for r in scheduled(settings, job_id)] == [
        "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"]
    assert status(job_id, settings=settings)["status"] == "ended"


@pytest.mark.parametrize(("first", "expected"), [
    ("2027-03-27T02:00:00Z",    # 02:00 GMT; clocks go forward on the 28th at 01:00 GMT
     ["2027-03-27T02:00:00Z", "2027-03-28T01:00:00Z", "2027-03-29T01:00:00Z"]),
    ("2026-10-24T01:00:00Z",    # 02:00 BST; clocks go back on the 25th at 01:00 GMT
     ["2026-10-24T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-26T02:00:00Z"]),
])
def test_every_1d_runs_at_0200_local_across_each_dst_change(settings, now, first, expected):
    now.value = utc(first) - timedelta(hours=12)
    job = JobSpec("nightly", run_at=utc(first),
                  recurrence={"every": "1d", "timezone": "Europe/London", "end_after": 3})
    job.add_task("T", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    for due in expected:
        now.value = utc(due) - timedelta(seconds=1)
        assert run_due(settings) == []                         # not a second early
        now.value = utc(due)
        assert run_due(settings) == [job_id]
    assert [r[1] for r in scheduled(settings, job_id)] == expected
    assert {utc(r["started_at"]).astimezone(ZoneInfo("Europe/London")).strftime("%H:%M")
            for r in history(job_id, settings=settings)} == {"02:00"}
    assert status(job_id, settings=settings)["status"] == "ended"


def test_each_run_of_a_failing_recurring_job_alerts_once(settings, now):
    from batchjobs.alerts import list_alerts

    now.value = utc("2026-12-31T23:00:00Z")
    job = JobSpec("fails", alert="error", run_at=utc("2027-01-01T00:00:00Z"),
                  recurrence={"every": "10m", "end_after": 2})
    job.add_task("T", "batchjobs.examples.fail")
    job_id = submit(job, settings=settings)
    now.value = utc("2027-01-01T00:00:00Z")
    assert run_due(settings, Outcome.ERROR) == [job_id]
    now.value = utc("2027-01-01T00:10:00Z")
    assert run_due(settings, Outcome.ERROR) == [job_id]
    alerts = list_alerts(settings=settings)
    assert sorted((a["job_id"], a["run"], a["status"]) for a in alerts) == [
        (job_id, 1, "error"), (job_id, 2, "error")]
    with store.read_session(settings) as session:
        attempts = session.execute(select(Task.attempts, Task.attempt_base)).one()
    assert tuple(attempts) == (2, 1)       # numbering goes on across runs; retries per run
