"""The coordinator on real databases (SQLite, and PostgreSQL with its one-statement
paths), without brokers or workers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from batchjobs import JobSpec, clock, store
from batchjobs.api import status, submit
from batchjobs.coordinator import claim, queue_ready, record, start_job, unqueued_groups
from batchjobs.graph import Decision, decide
from batchjobs.models import Job, JobRun, Task
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from batchjobs.store import statements, steps
from tests.conftest import reset_postgres


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """A PostgreSQL schema of its own, emptied once for this module."""
    return reset_postgres("batchjobs_unit")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    url = (f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    return Settings(database_url=url, broker_url="embedded://", home=tmp_path)


def held_job(settings: Settings, job: JobSpec) -> tuple[int, dict[str, int]]:
    """Store ``job`` without publishing anything (it starts in the future), then start it."""
    job.run_at = clock.now() + timedelta(days=1)
    job_id = submit(job, settings=settings)
    with store.transaction(settings) as session:
        start_job(session, job_id, settings.queue_depth)
        ids = dict(session.execute(select(Task.name, Task.id).where(Task.job_id == job_id)).all())
    return job_id, ids


def run_task(settings: Settings, job_id: int, task_id: int, outcome: Outcome) -> list[str]:
    """Claim and record as a batch server does (on PostgreSQL, a success whose dependents
    all expect ended/finished is one autocommit statement)."""
    claimed = claim(task_id, job_id, "S", settings=settings)
    assert claimed is not None
    return [d.name for d in record(claimed.task_id, claimed.attempt, outcome,
                                   children=claimed.readied_by_success, settings=settings)]


# Every counter state of a still-waiting task that one more parent outcome can change.
COMBOS = [(kind, n, met, unmet) for kind in ("all", "any") for n in (1, 2, 3)
          for met, unmet in itertools.product(range(4), range(4))
          if met + unmet < n and decide(kind, n, met, unmet) is Decision.WAIT]


@pytest.mark.parametrize("kind,n,met,unmet", COMBOS)
@pytest.mark.parametrize("held", [True, False])
def test_sql_decision_matches_the_graph_rules(settings, kind, n, met, unmet, held):
    job = JobSpec("rules")
    parents = [job.add_task(f"p{i}", "batchjobs.examples.noop") for i in range(n)]
    job.add_task("child", "batchjobs.examples.noop", condition=kind,
                 depends_on=[(p, "ended") for p in parents])
    job_id, ids = held_job(settings, job)
    outcomes = [Outcome.ENDED] * met + [Outcome.ERROR] * unmet
    for parent, outcome in zip(parents, outcomes, strict=False):
        run_task(settings, job_id, ids[parent.name], outcome)
    last = parents[met + unmet]
    run_task(settings, job_id, ids[last.name], Outcome.ENDED if held else Outcome.ERROR)
    after = decide(kind, n, met + held, unmet + (not held))
    child = {t["name"]: t for t in status(job_id, settings=settings)["tasks"]}["child"]
    assert child["status"] == {Decision.WAIT: "waiting", Decision.READY: "ready",
                               Decision.NOT_RUN: "not_run"}[after]


def test_a_decided_task_is_not_changed_by_a_later_parent(settings):
    job = JobSpec("decided")
    a = job.add_task("A", "batchjobs.examples.noop")
    b = job.add_task("B", "batchjobs.examples.noop")
    job.add_task("C", "batchjobs.examples.noop", condition="any",
                 depends_on=[(a, "ended"), (b, "ended")])
    job_id, ids = held_job(settings, job)
    assert run_task(settings, job_id, ids["A"], Outcome.ENDED) == ["C"]
    assert run_task(settings, job_id, ids["B"], Outcome.ERROR) == []
    child = {t["name"]: t for t in status(job_id, settings=settings)["tasks"]}["C"]
    assert (child["status"], child["reason"]) == ("ready", None)


def test_second_claim_of_the_same_task_gets_nothing(settings):
    job = JobSpec("claim")
    job.add_task("A", "batchjobs.examples.noop")
    job_id, ids = held_job(settings, job)
    assert claim(ids["A"], job_id, "S1", settings=settings) is not None
    assert claim(ids["A"], job_id, "S2", settings=settings) is None
    assert status(job_id, settings=settings)["tasks"][0]["server"] == "S1"


def test_claim_with_the_wrong_job_id_gets_nothing(settings):
    job = JobSpec("claim")
    job.add_task("A", "batchjobs.examples.noop")
    job_id, ids = held_job(settings, job)
    assert claim(ids["A"], job_id + 1000, "S1", settings=settings) is None


def test_recording_an_outcome_twice_changes_nothing(settings):
    job = JobSpec("twice")
    a = job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=[a])
    job_id, ids = held_job(settings, job)
    claimed = claim(ids["A"], job_id, "S", settings=settings)
    first = record(ids["A"], claimed.attempt, Outcome.ENDED, settings=settings)
    second = record(ids["A"], claimed.attempt, Outcome.ERROR, "late", settings=settings)
    assert [d.name for d in first] == ["B"] and second == []
    with store.read_session(settings) as session:
        job_row = session.get(Job, job_id)
        assert (job_row.remaining, job_row.failed) == (1, 0)
        b = session.execute(select(Task).where(Task.id == ids["B"])).scalar_one()
        assert (b.status, b.met, b.unmet) == ("ready", 1, 0)


def test_not_run_cascades_with_reasons_and_settles_the_job(settings):
    job = JobSpec("cascade")
    a = job.add_task("A", "batchjobs.examples.noop")
    b = job.add_task("B", "batchjobs.examples.noop", depends_on=[(a, "error")])
    job.add_task("C", "batchjobs.examples.noop", depends_on=[(b, "finished")])
    job_id, ids = held_job(settings, job)
    assert run_task(settings, job_id, ids["A"], Outcome.ENDED) == []
    result = status(job_id, settings=settings)
    tasks = {t["name"]: t for t in result["tasks"]}
    assert [tasks[n]["status"] for n in "ABC"] == ["ended", "not_run", "not_run"]
    assert "'A'" in tasks["B"]["reason"] and "'B'" in tasks["C"]["reason"]
    assert result["status"] == "ended"


def test_retry_makes_the_task_ready_again_until_retries_are_used(settings):
    job = JobSpec("retry")
    job.add_task("A", "batchjobs.examples.noop", retries=1)
    job_id, ids = held_job(settings, job)
    assert run_task(settings, job_id, ids["A"], Outcome.ERROR) == ["A"]
    assert run_task(settings, job_id, ids["A"], Outcome.ERROR) == []
    result = status(job_id, settings=settings)
    assert (result["status"], result["tasks"][0]["status"], result["tasks"][0]["attempts"]) == (
        "error", "error", 2)


def test_a_success_decides_its_dependents_once_and_a_second_report_changes_nothing(settings):
    job = JobSpec("fan-out")
    a = job.add_task("A", "batchjobs.examples.noop")
    b = job.add_task("B", "batchjobs.examples.noop")
    job.add_task("C", "batchjobs.examples.noop", depends_on=[a, b])
    job.add_task("D", "batchjobs.examples.noop", condition="any",
                 depends_on=[(a, "finished"), (b, "ended")])
    job_id, ids = held_job(settings, job)
    claimed = claim(ids["A"], job_id, "S", settings=settings)
    assert sorted(claimed.readied_by_success) == sorted([ids["C"], ids["D"]])
    assert [d.name for d in record(claimed.task_id, claimed.attempt, Outcome.ENDED,
                  children=claimed.readied_by_success, settings=settings)] == ["D"]
    assert record(claimed.task_id, claimed.attempt, Outcome.ENDED,
                  children=claimed.readied_by_success, settings=settings) == []
    assert run_task(settings, job_id, ids["B"], Outcome.ENDED) == ["C"]
    with store.read_session(settings) as session:
        rows = {t.name: (t.status, t.met, t.unmet) for t in session.execute(
            select(Task).where(Task.job_id == job_id)).scalars()}
        assert rows == {"A": ("ended", 0, 0), "B": ("ended", 0, 0), "C": ("ready", 2, 0),
                        "D": ("ready", 1, 0)}
        assert session.get(Job, job_id).remaining == 2


def test_a_dependent_expecting_error_takes_the_propagating_path(settings):
    job = JobSpec("on error")
    a = job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=[(a, "error")])
    job_id, ids = held_job(settings, job)
    claimed = claim(ids["A"], job_id, "S", settings=settings)
    assert claimed.readied_by_success is None
    assert record(claimed.task_id, claimed.attempt, Outcome.ENDED,
                  children=claimed.readied_by_success, settings=settings) == []
    result = status(job_id, settings=settings)
    assert result["status"] == "ended"
    assert [t["status"] for t in result["tasks"]] == ["ended", "not_run"]


def test_the_last_success_ends_the_job_and_its_run(settings):
    job = JobSpec("last")
    a = job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=[a])
    job_id, ids = held_job(settings, job)
    assert run_task(settings, job_id, ids["A"], Outcome.ENDED) == ["B"]
    assert status(job_id, settings=settings)["status"] == "executing"
    assert run_task(settings, job_id, ids["B"], Outcome.ENDED) == []
    result = status(job_id, settings=settings)
    assert (result["status"], result["ended_at"] is not None) == ("ended", True)
    with store.read_session(settings) as session:
        assert [r.status for r in session.execute(
            select(JobRun).where(JobRun.job_id == job_id)).scalars()] == ["ended"]


def test_a_job_starting_with_more_ready_tasks_than_the_queue_depth_queues_that_many(settings):
    job = JobSpec("wide")
    for i in range(10):
        job.add_task(f"t{i}", "batchjobs.examples.noop")
    job.run_at = clock.now() + timedelta(days=1)
    job_id = submit(job, settings=settings)
    with store.transaction(settings) as session:
        assert [d.name for d in start_job(session, job_id, 3)] == ["t0", "t1", "t2"]
    with store.read_session(settings) as session:
        assert unqueued_groups(session) == ["default"]
    fed = []
    for limit in (5, 5, 5):
        with store.transaction(settings) as session:
            # sorted: the order of UPDATE … RETURNING is the rows' place on disk, which
            # earlier tests in this schema decide (which rows are chosen is the feed's rule)
            fed.append(sorted(d.name for d in queue_ready(session, "default", limit)))
    assert fed == [["t3", "t4", "t5", "t6", "t7"], ["t8", "t9"], []]
    with store.read_session(settings) as session:
        assert unqueued_groups(session) == []
        rows = session.execute(select(Task.status, Task.queued).where(Task.job_id == job_id))
        assert set(rows) == {("ready", True)}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan."""
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_feeding_a_queue_reads_only_the_tasks_it_publishes(postgres_url, tmp_path):
    """However many ready tasks wait unqueued, a feed of N reads N rows of them (index order,
    rows found by primary key): a 2,000-task job fed 50 at a time reads 50 per feed, even on
    statistics taken before the job was stored."""
    settings = Settings(database_url=postgres_url, broker_url="embedded://", home=tmp_path)
    job = JobSpec("very wide", run_at=clock.now() + timedelta(days=1))
    for i in range(2000):
        job.add_task(f"t{i}", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    with store.transaction(settings) as session:
        start_job(session, job_id, 10)
    with store.transaction(settings) as session:
        conn = session.connection()
        compiled = steps.PostgreSQL().choose_some(statements.QUEUE_OF_GROUP).compile(
            dialect=conn.dialect)
        plan = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled),
            compiled.construct_params({"p_group": "default", "p_limit": 50})).scalar()
        session.rollback()
    nodes = list(_nodes(plan[0]["Plan"]))
    unqueued = [n for n in nodes if n.get("Index Name") == "ix_tasks_unqueued"]
    assert [n["Actual Rows"] for n in unqueued] == [50]     # read in order, up to the limit
    assert not [n for n in nodes if n["Node Type"] in ("Seq Scan", "Sort", "Nested Loop")]
    assert nodes[0]["Actual Rows"] == 50
