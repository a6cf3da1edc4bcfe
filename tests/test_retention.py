"""Retention on SQLite and PostgreSQL, jobs run through the real coordinator (no server):
``cleanup`` deletes every row of a finished job and nothing of the others, in bounded
batches; recurring jobs keep their definition and runs; bad input exits 2 naming the
value; the housekeepers' daily duty is taken by one housekeeper at a time."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text, update

from batchjobs import JobRef, JobSpec, clock, counters, lifecycle, owners, retention, store
from batchjobs.api import history, status, submit
from batchjobs.cli import cli
from batchjobs.coordinator import claim, record, start_job
from batchjobs.housekeeper import Housekeeper
from batchjobs.models import Alert, Base, DutyLease, Job, Task
from batchjobs.settings import Settings
from batchjobs.status import JobStatus, Outcome
from batchjobs.users import add_user
from tests.conftest import reset_postgres

HOOK = "http://127.0.0.1:9/hook"   # deliveries are only stored: nothing sends them here


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path) -> Settings:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = reset_postgres("batchjobs_retention")
    else:
        url = f"sqlite:///{tmp_path / 'r.db'}"
    settings = Settings(database_url=url, broker_url="embedded://", home=tmp_path,
                        alert_webhook=HOOK)
    store.reset_engines()
    yield settings
    store.reset_engines()


def run_through(settings: Settings, job_id: int, fail: set[str] = frozenset()) -> None:
    """Run the (started) job's ready tasks as servers would: those in ``fail`` end error."""
    while True:
        with store.read_session(settings) as session:
            ready = session.execute(select(Task.id, Task.name).where(
                Task.job_id == job_id, Task.status == "ready")).all()
        if not ready:
            return
        for task_id, name in ready:
            claimed = claim(task_id, job_id, "S", settings=settings)
            assert claimed is not None
            record(task_id, claimed.attempt, Outcome.ERROR if name in fail else Outcome.ENDED,
                   "failed" if name in fail else None, log="a line\n", settings=settings)


def two_step(description: str, **kwargs: Any) -> JobSpec:
    job = JobSpec(description, alert="always", **kwargs)
    a = job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=[(a, "ended")])
    return job


def rows_of_jobs(settings: Settings, job_ids: list[int]) -> dict[str, int]:
    """Rows that belong to these jobs, in every table of the schema (a table that could
    hold such rows and is not looked at fails the test)."""
    with store.read_session(settings) as session:
        task_ids = list(session.execute(select(Task.id).where(Task.job_id.in_(job_ids)))
                        .scalars())
        alert_ids = list(session.execute(select(Alert.id).where(Alert.job_id.in_(job_ids)))
                         .scalars())
        counts = {}
        for table in Base.metadata.sorted_tables:
            columns = table.c
            if table.name == "jobs":
                where = columns.id.in_(job_ids)
            elif "job_id" in columns:
                where = columns.job_id.in_(job_ids)
            elif "task_id" in columns:
                where = columns.task_id.in_(task_ids)
            elif "alert_id" in columns:
                where = columns.alert_id.in_(alert_ids)
            else:
                referred = {fk.column.table.name for fk in table.foreign_keys}
                assert not referred & {"jobs", "tasks", "alerts"}, table.name
                continue
            counts[table.name] = session.execute(
                select(func.count()).select_from(table).where(where)).scalar_one()
        return counts


def test_cleanup_older_than_0s_leaves_no_row_of_a_finished_job(settings, monkeypatch):
    add_user("alice", email="alice@example.test", settings=settings)
    add_user("bob", settings=settings)
    ended = submit(two_step("ended"), user="alice", settings=settings)
    owners.reassign(job_id=ended, to_user="bob", by="op", settings=settings)
    run_through(settings, ended)
    failed = submit(two_step("failed"), user="alice", settings=settings)
    run_through(settings, failed, fail={"A"})
    waits_on_ended = two_step("canceled")
    waits_on_ended.add_task("C", "batchjobs.examples.noop",
                            depends_on=[(JobRef(ended), "finished")])
    for i in range(2 * counters.TASKS_PER_COUNTER):   # large: it has job_counters rows
        waits_on_ended.add_task(f"D{i}", "batchjobs.examples.noop")
    canceled = submit(waits_on_ended, hold=True, settings=settings)
    lifecycle.cancel(canceled, settings=settings)
    later = submit(two_step("later", run_at=clock.now() + timedelta(days=1)),
                   settings=settings)
    executing = submit(two_step("executing", run_at=clock.now() + timedelta(days=1)),
                       settings=settings)
    with store.transaction(settings) as session:
        start_job(session, executing, 10)
    recurring = submit(two_step("recurring", recurrence={"every": "1d"}), settings=settings)
    run_through(settings, recurring)          # run 1 ended; run 2 waits for tomorrow
    assert [status(j, settings=settings)["status"] for j in (ended, failed, canceled)] == [
        "ended", "error", "canceled"]
    assert status(recurring, settings=settings)["status"] == "waiting"

    finished = [ended, failed, canceled]
    before = rows_of_jobs(settings, finished)
    assert all(before.values()), before      # every table of a job has rows to delete
    kept_before = rows_of_jobs(settings, [later, executing])
    recurring_before = rows_of_jobs(settings, [recurring])
    assert recurring_before["attempts"] == 2 and recurring_before["alerts"] == 1

    dry = retention.cleanup(timedelta(0), dry_run=True, settings=settings)
    assert rows_of_jobs(settings, finished) == before
    report = retention.cleanup(timedelta(0), settings=settings)
    assert report.rows == dry.rows
    assert report.rows == {
        t: before[t] + (recurring_before[t] if t in ("attempts", "alerts", "alert_deliveries")
                        else 0) for t in retention.TABLES}
    assert set(rows_of_jobs(settings, finished).values()) == {0}
    assert rows_of_jobs(settings, [later, executing]) == kept_before
    # the recurring job keeps its definition, runs and audit; its old attempts are gone
    after = rows_of_jobs(settings, [recurring])
    assert after == {**recurring_before, "attempts": 0, "alerts": 0, "alert_deliveries": 0}
    assert report.recurring == 1
    assert [(r["number"], r["status"]) for r in history(recurring, settings=settings)] == [
        (1, "ended"), (2, "waiting")]
    assert status(recurring, settings=settings)["status"] == "waiting"
    # nothing left to do
    again = retention.cleanup(timedelta(0), settings=settings)
    assert set(again.rows.values()) == {0}


def test_only_old_jobs_of_the_chosen_statuses_go_and_batches_are_bounded(settings,
                                                                         monkeypatch):
    ids = [submit(two_step(f"c{i}"), hold=True, settings=settings) for i in range(5)]
    for job_id in ids:
        lifecycle.cancel(job_id, settings=settings)
    old = ids[:3]
    with store.transaction(settings) as session:
        session.execute(update(Job).where(Job.id.in_(old)).values(
            ended_at=clock.now() - timedelta(days=40)))
    assert retention.cleanup(timedelta(days=30), statuses=[JobStatus.ENDED],
                             settings=settings).rows["jobs"] == 0
    transactions = []
    real = retention._rows_of_jobs

    def counted(session, job_ids, dry_run):
        transactions.append(list(job_ids))
        return real(session, job_ids, dry_run)

    monkeypatch.setattr(retention, "BATCH_JOBS", 2)
    monkeypatch.setattr(retention, "_rows_of_jobs", counted)
    report = retention.cleanup(timedelta(days=30), statuses=[JobStatus.CANCELED],
                               settings=settings)
    assert report.rows["jobs"] == 3 and report.rows["tasks"] == 6
    assert transactions == [old[:2], old[2:]]
    with store.read_session(settings) as session:
        assert sorted(session.execute(select(Job.id)).scalars()) == ids[3:]


def test_a_job_an_unfinished_job_has_a_condition_on_is_kept_until_that_one_finishes(
        settings):
    awaited = submit(two_step("awaited"), hold=True, settings=settings)
    lifecycle.cancel(awaited, settings=settings)
    waiting = JobSpec("waits")
    waiting.add_task("after", "batchjobs.examples.noop", depends_on=[(JobRef(awaited), "finished")])
    dependent = submit(waiting, hold=True, settings=settings)
    report = retention.cleanup(timedelta(0), settings=settings)
    assert report.kept == [awaited] and report.rows.get("jobs", 0) == 0
    assert status(awaited, settings=settings)["status"] == "canceled"
    lifecycle.cancel(dependent, settings=settings)
    report = retention.cleanup(timedelta(0), settings=settings)
    assert report.kept == [] and report.rows["jobs"] == 2
    assert report.rows["job_conditions"] == 1


def test_the_daily_duty_runs_in_one_housekeeper_at_a_time(settings):
    daily = Settings(**{**settings.__dict__, "retention": 1.0})
    job_id = submit(two_step("old"), hold=True, settings=daily)
    lifecycle.cancel(job_id, settings=daily)
    with store.transaction(daily) as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            ended_at=clock.now() - timedelta(seconds=5)))
    assert retention.daily(settings) is None            # off: nothing read, nothing done
    first = retention.take_lease(daily)
    assert first is not None
    assert retention.take_lease(daily) is None          # held by the first
    retention.give_back(first, daily, done=True)
    assert retention.take_lease(daily) is None          # done less than a day ago
    with store.transaction(daily) as session:
        session.execute(update(DutyLease).values(done_at=clock.now() - timedelta(days=2)))
    # the housekeeper's beat runs the duty: the old job goes, and the lease is marked done
    keeper = Housekeeper(None, _NoQueues(), None, settings=daily)
    keeper.tick()
    with store.read_session(daily) as session:
        assert session.execute(select(Job.id).where(Job.id == job_id)).first() is None
        lease = session.execute(select(DutyLease)).scalar_one()
        assert lease.holder is None and lease.expires_at is None
        assert lease.done_at > clock.now() - timedelta(minutes=5)
    assert retention.daily(daily) is None               # not again today


class _NoQueues:
    """A Celery app whose queues are all empty (the duties ask their lengths)."""

    def connection_for_read(self) -> Any:
        return self

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @property
    def default_channel(self) -> Any:
        return self

    def queue_declare(self, queue: str, passive: bool) -> Any:
        return type("Declared", (), {"message_count": 0})()


@pytest.mark.parametrize(("args", "culprit"), [
    (["--older-than", "30x"], "'30x'"), (["--older-than", "-1d"], "'-1d'"),
    (["--older-than", "1d", "--status", "ended,waiting"], "'waiting'"),
    (["--older-than", "1d", "--status", ","], "','")])
def test_bad_age_or_status_exits_2_naming_the_value(settings, monkeypatch, args, culprit):
    monkeypatch.setenv("BATCHJOBS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BATCHJOBS_HOME", str(settings.home))
    result = CliRunner().invoke(cli, ["cleanup", *args])
    assert result.exit_code == 2, result.output
    assert culprit in result.stderr and "Traceback" not in result.output


def test_cleanup_cli_prints_counts_per_table_and_json(settings, monkeypatch):
    monkeypatch.setenv("BATCHJOBS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BATCHJOBS_HOME", str(settings.home))
    job_id = submit(two_step("cli"), hold=True, settings=settings)
    lifecycle.cancel(job_id, settings=settings)
    dry = CliRunner().invoke(cli, ["cleanup", "--older-than", "0s", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    shown = json.loads(dry.stdout)
    assert shown["dry_run"] is True and shown["deleted"]["jobs"] == 1
    assert shown["deleted"]["tasks"] == 2 and shown["deleted"]["conditions"] == 1
    table = CliRunner().invoke(cli, ["cleanup", "--older-than", "0s"])
    assert table.exit_code == 0, table.output
    lines = dict(line.split() for line in table.stdout.splitlines()[1:])
    assert lines["jobs"] == "1" and lines["tasks"] == "2" and lines["attempts"] == "0"
    with store.read_session(settings) as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
