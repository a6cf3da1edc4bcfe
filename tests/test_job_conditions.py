"""Conditions on other jobs, step by step on each database (no servers: attempts are
claimed and recorded as a server does): counted once per run, again in each new run,
what retention must keep, and how a definition gives them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from batchjobs import JobRef, JobSpec, clock, job_from_dict, store
from batchjobs.api import status, submit
from batchjobs.coordinator import claim, record, start_job
from batchjobs.errors import InvalidValue, MalformedDefinition, UnknownDependency
from batchjobs.job_conditions import still_needed
from batchjobs.lifecycle import rerun
from batchjobs.models import Task
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from tests.conftest import reset_postgres
from tests.helpers import by_name


@pytest.fixture(scope="module")
def postgres_url() -> str:
    return reset_postgres("batchjobs_job_conditions")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    url = (f"sqlite:///{tmp_path / 'j.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    return Settings(database_url=url, broker_url="embedded://", home=tmp_path)


def finish(settings: Settings, job_id: int, outcome: Outcome = Outcome.ENDED) -> None:
    """Run every ready task of the job to ``outcome`` (as a server would)."""
    while True:
        with store.read_session(settings) as session:
            ready = list(session.execute(select(Task.id).where(
                Task.job_id == job_id, Task.status == "ready")).scalars())
        if not ready:
            return
        for task_id in ready:
            claimed = claim(task_id, job_id, "S", settings=settings)
            assert claimed is not None
            record(task_id, claimed.attempt, outcome, "failed" if outcome is Outcome.ERROR
                   else None, settings=settings)


def one_task_job(settings: Settings, name: str, **task) -> int:
    job = JobSpec(name)
    job.add_task("T", "batchjobs.examples.noop", **task)
    return submit(job, settings=settings)


def counters(settings: Settings, job_id: int) -> tuple[str, int, int]:
    with store.read_session(settings) as session:
        row = session.execute(select(Task.status, Task.met, Task.unmet)
                              .where(Task.job_id == job_id)).one()
    return row.status, row.met, row.unmet


def test_a_condition_counts_once_per_run_even_when_the_awaited_job_ends_again(settings):
    awaited = one_task_job(settings, "awaited")
    finish(settings, awaited)
    job = JobSpec("waits", run_at=clock.now() + timedelta(days=1))
    job.add_task("T", "batchjobs.examples.noop", depends_on=[(JobRef(awaited), "ended")])
    job.add_task("U", "tests.processes.samples.wait_for_file", kwargs={"path": "/none"},
                 depends_on=[(JobRef(awaited), "ended")])
    waiting = submit(job, settings=settings)
    with store.transaction(settings) as session:
        ready = start_job(session, waiting, 100, settings)
    assert sorted(d.name for d in ready) == ["T", "U"]
    rerun(awaited, settings=settings)
    finish(settings, awaited)
    with store.read_session(settings) as session:
        met = dict(session.execute(select(Task.name, Task.met)
                                   .where(Task.job_id == waiting)).all())
    assert met == {"T": 1, "U": 1}


def test_each_run_of_the_dependent_job_counts_its_conditions_again(settings):
    awaited = one_task_job(settings, "awaited")
    finish(settings, awaited, Outcome.ERROR)
    job = JobSpec("recurs", recurrence={"every": "1h"})
    job.add_task("T", "batchjobs.examples.noop", depends_on=[(JobRef(awaited), "error")])
    job_id = submit(job, settings=settings)
    assert counters(settings, job_id) == ("ready", 1, 0)
    finish(settings, job_id)
    assert status(job_id, settings=settings)["status"] == "waiting"     # the next run
    assert counters(settings, job_id) == ("waiting", 0, 0)
    with store.transaction(settings) as session:
        assert [d.name for d in start_job(session, job_id, 100, settings)] == ["T"]
    assert counters(settings, job_id) == ("ready", 1, 0)


def test_a_rerun_counts_the_conditions_of_the_tasks_it_runs_again(settings):
    awaited = one_task_job(settings, "awaited")
    finish(settings, awaited)
    job = JobSpec("reruns")
    job.add_task("T", "batchjobs.examples.noop", depends_on=[(JobRef(awaited), "ended")])
    job_id = submit(job, settings=settings)
    finish(settings, job_id, Outcome.ERROR)
    assert status(job_id, settings=settings)["status"] == "error"
    assert rerun(job_id, failed=True, settings=settings) == 1
    assert counters(settings, job_id) == ("ready", 1, 0)


def test_an_any_task_none_of_whose_conditions_can_hold_names_them_all(settings):
    awaited = one_task_job(settings, "awaited")
    finish(settings, awaited)
    job = JobSpec("any")
    a = job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", condition="any",
                 depends_on=[(a, "error"), (JobRef(awaited), "error")])
    job_id = submit(job, settings=settings)
    finish(settings, job_id)
    b = by_name(status(job_id, settings=settings))["B"]
    assert b["status"] == "not_run"
    assert b["reason"] == ("no condition can hold any more: 'A' is ended, needs error; "
                           f"job {awaited} is ended, needs error")


def test_retention_must_keep_the_jobs_unfinished_jobs_wait_for(settings):
    kept, free = one_task_job(settings, "kept"), one_task_job(settings, "free")
    finish(settings, kept)
    finish(settings, free)
    job = JobSpec("held")
    job.add_task("T", "batchjobs.examples.noop", depends_on=[(JobRef(kept), "ended")])
    job.add_task("U", "batchjobs.examples.noop", depends_on=[(JobRef(free), "ended")])
    held = submit(job, settings=settings, hold=True)
    with store.read_session(settings) as session:
        assert still_needed(session, [kept, free, 10**6]) == {kept, free}
    from batchjobs.lifecycle import release

    release(held, settings=settings)
    finish(settings, held)
    assert status(held, settings=settings)["status"] == "ended"
    with store.read_session(settings) as session:
        assert still_needed(session, [kept, free]) == set()


def test_a_condition_on_an_unknown_job_is_refused_naming_task_and_job(settings):
    job = JobSpec("unknown")
    job.add_task("A", "batchjobs.examples.noop", depends_on=[(JobRef(10**6), "ended")])
    with pytest.raises(UnknownDependency) as error:
        submit(job, settings=settings)
    assert (error.value.task, error.value.value) == ("A", 10**6)
    assert "job 1000000" in str(error.value)


@pytest.mark.parametrize(("item", "error", "culprit"), [
    ({"job": "42"}, InvalidValue, "depends_on.job"),
    ({"job": 0}, InvalidValue, "depends_on.job"),
    ({"job": True}, InvalidValue, "depends_on.job"),
    ({"job": 2**40}, InvalidValue, "depends_on.job"),
    ({"job": 4, "task": "B"}, MalformedDefinition, "depends_on"),
    ({"job": 4, "status": "done"}, InvalidValue, "depends_on.status"),
])
def test_a_bad_condition_on_a_job_is_refused_naming_the_task(item, error, culprit):
    with pytest.raises(error) as raised:
        job_from_dict({"description": "bad", "tasks": [
            {"name": "A", "process": "batchjobs.examples.noop", "depends_on": [item]}]}
        ).validate()
    assert (raised.value.task, raised.value.field) == ("A", culprit)


def test_two_conditions_on_one_job_are_refused():
    job = JobSpec("twice")
    job.add_task("A", "batchjobs.examples.noop",
                 depends_on=[(JobRef(4), "ended"), (JobRef(4), "error")])
    with pytest.raises(InvalidValue, match="two conditions on job 4"):
        job.validate()


def test_a_condition_on_a_job_reads_the_same_from_a_file_and_from_python():
    built = JobSpec("same")
    built.add_task("A", "batchjobs.examples.noop", depends_on=[(JobRef(4), "finished")])
    data = {"description": "same", "tasks": [{"name": "A", "process": "batchjobs.examples.noop",
                                              "depends_on": [{"job": 4, "status": "finished"}]}]}
    assert job_from_dict(data).to_dict() == built.to_dict()
    assert built.to_dict()["tasks"][0]["depends_on"] == [{"job": 4, "status": "finished"}]


def test_the_tasks_an_end_makes_ready_are_published_after_its_commit(settings, monkeypatch):
    from batchjobs import queues

    first = JobSpec("awaited", run_at=clock.now() + timedelta(days=1))
    first.add_task("A", "batchjobs.examples.noop")
    awaited = submit(first, settings=settings)
    job = JobSpec("waits")
    job.add_task("T", "batchjobs.examples.noop", depends_on=[(JobRef(awaited), "ended")])
    waiting = submit(job, settings=settings)
    seen: list[tuple[str, str]] = []

    def publish(dispatches, *, settings=None):
        for d in dispatches:     # the ready row is committed, visible to another session
            seen.append((d.name, by_name(status(d.job_id, settings=settings))[d.name]["status"]))
        return len(seen)

    monkeypatch.setattr(queues, "publish_or_defer", publish)
    with store.transaction(settings) as session:
        start_job(session, awaited, 100, settings)
    finish(settings, awaited)
    assert seen == [("T", "ready")]
    assert counters(settings, waiting) == ("ready", 1, 0)
