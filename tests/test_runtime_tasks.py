"""Runtime tasks (``ctx.add_task``) through the coordinator on real databases (SQLite,
and PostgreSQL with its one-statement success), the processes run in this process as a
batch server runs them: claim, execute, record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from batchjobs import JobSpec, clock, lifecycle, store
from batchjobs.api import attempts, status, submit
from batchjobs.coordinator import claim, record, start_job
from batchjobs.errors import CannotAddTasks
from batchjobs.execution import Result, execute
from batchjobs.models import Condition, Job, Task
from batchjobs.processes import ProcessContext
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from tests.conftest import reset_postgres
from tests.helpers import by_name, statuses

ADDS = "tests.processes.spawning.adds"
SLEEP = "batchjobs.examples.sleep"
FAIL = "batchjobs.examples.fail"


@pytest.fixture(scope="module")
def postgres_url() -> str:
    return reset_postgres("batchjobs_runtime_unit")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    url = (f"sqlite:///{tmp_path / 'r.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    return Settings(database_url=url, broker_url="embedded://", home=tmp_path)


def started(settings: Settings, job: JobSpec) -> int:
    """Store ``job`` without publishing (due tomorrow), then start it."""
    job.run_at = clock.now() + timedelta(days=1)
    job_id = submit(job, settings=settings)
    with store.transaction(settings) as session:
        start_job(session, job_id, settings.queue_depth)
    return job_id


def task_ids(settings: Settings, job_id: int) -> dict[str, int]:
    with store.read_session(settings) as session:
        return dict(session.execute(select(Task.name, Task.id).where(Task.job_id == job_id)
                                    ).all())


def run(settings: Settings, job_id: int, name: str) -> Result:
    """Run one ready task as a batch server does."""
    claimed = claim(task_ids(settings, job_id)[name], job_id, "S", settings=settings)
    assert claimed is not None, f"{name} was not ready"
    result = execute(claimed, "S", settings=settings)
    record(claimed.task_id, claimed.attempt, result.outcome, result.error,
           children=claimed.readied_by_success, log=result.log, settings=settings,
           added=result.added)
    return result


def ready(settings: Settings, job_id: int) -> list[str]:
    return sorted(t["name"] for t in status(job_id, settings=settings)["tasks"]
                  if t["status"] == "ready")


def drain(settings: Settings, job_id: int) -> list[str]:
    """Run ready tasks (oldest first) until none is left; the order they ran in."""
    order = []
    while names := ready(settings, job_id):
        run(settings, job_id, names[0])
        order.append(names[0])
    return order


def child(name: str, process: str = SLEEP, **options: Any) -> dict[str, Any]:
    return {"name": name, "process": process, **options}


def test_a_task_ends_after_the_tasks_it_added_and_its_dependent_waits_for_them(settings):
    job = JobSpec("fan out")
    parent = job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 3, "seconds": 0})
    job.add_task("D", "batchjobs.examples.noop", depends_on=[parent])
    job_id = started(settings, job)
    run(settings, job_id, "P")
    tasks = by_name(status(job_id, settings=settings))
    assert (tasks["P"]["status"], tasks["P"]["open_children"]) == ("executing", 3)
    assert tasks["D"]["status"] == "waiting"
    assert ready(settings, job_id) == ["P #1", "P #2", "P #3"]
    assert {tasks[f"P #{i}"]["spawned_by"] for i in (1, 2, 3)} == {"P"}
    assert [a["outcome"] for a in attempts(job_id, task="P", settings=settings)] == ["ended"]
    run(settings, job_id, "P #1")
    run(settings, job_id, "P #2")
    assert by_name(status(job_id, settings=settings))["P"]["open_children"] == 1
    assert ready(settings, job_id) == ["P #3"]
    run(settings, job_id, "P #3")
    result = status(job_id, settings=settings)
    assert (by_name(result)["P"]["status"], by_name(result)["P"]["open_children"]) == ("ended", 0)
    assert ready(settings, job_id) == ["D"] and result["status"] == "executing"
    run(settings, job_id, "D")
    assert status(job_id, settings=settings)["status"] == "ended"


def test_the_added_tasks_run_at_the_priority_of_the_task_that_added_them(settings):
    job = JobSpec("urgent fan out", priority="low")
    job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 2, "seconds": 0},
                 priority="high")
    job_id = started(settings, job)
    run(settings, job_id, "P")
    tasks = by_name(status(job_id, settings=settings))
    assert {tasks[f"P #{i}"]["priority"] for i in (1, 2)} == {"high"}
    assert {tasks[f"P #{i}"]["effective_priority"] for i in (1, 2)} == {"high"}


def test_ten_thousand_added_tasks_are_stored_with_the_success_and_counted_on_the_job(
        settings):
    job = JobSpec("ten thousand")
    job.add_task("P", "tests.processes.spawning.many", kwargs={"n": 10_000})
    job.add_task("after", "batchjobs.examples.noop", depends_on=["P"])
    job_id = started(settings, job)
    run(settings, job_id, "P")
    with store.read_session(settings) as session:
        counts = dict(session.execute(select(Task.status, func.count()).where(
            Task.job_id == job_id).group_by(Task.status)).all())
        queued = session.execute(select(func.count()).where(
            Task.job_id == job_id, Task.status == "ready", Task.queued)).scalar_one()
        remaining = session.execute(select(Job.remaining).where(Job.id == job_id)).scalar_one()
    assert counts == {"ready": 10_000, "executing": 1, "waiting": 1}
    assert queued == settings.queue_depth and remaining == 10_002


def test_a_failed_child_fails_its_adder_naming_it_and_its_ended_dependents_do_not_run(settings):
    job = JobSpec("child fails")
    parent = job.add_task("P", ADDS, kwargs={"children": [
        child("ok", kwargs={"seconds": 0}), child("bad", FAIL), child("bad too", FAIL)]})
    job.add_task("on ended", "batchjobs.examples.noop", depends_on=[parent])
    job.add_task("on error", "batchjobs.examples.noop", depends_on=[(parent, "error")])
    job_id = started(settings, job)
    assert drain(settings, job_id)[-1] == "on error"
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "error", "ok": "ended", "bad": "error",
                                "bad too": "error", "on ended": "not_run", "on error": "ended"}
    assert by_name(result)["P"]["reason"] == (
        "added task 'bad' ended error (and 1 more of its added tasks)")
    assert result["status"] == "error"
    with store.read_session(settings) as session:
        assert session.get(Job, job_id).failed == 1     # the adder's, not each child's


def test_a_child_that_ignores_failure_does_not_fail_its_adder(settings):
    job = JobSpec("ignored")
    parent = job.add_task("P", ADDS, kwargs={"children": [child("bad", FAIL,
                                                                ignore_failure=True)]})
    job.add_task("after", "batchjobs.examples.noop", depends_on=[parent])
    job_id = started(settings, job)
    drain(settings, job_id)
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "ended", "bad": "error", "after": "ended"}
    assert result["status"] == "ended"


def test_an_adder_that_ignores_failure_keeps_the_job_ended_when_its_child_fails(settings):
    job = JobSpec("adder ignores")
    job.add_task("P", ADDS, kwargs={"children": [child("bad", FAIL)]}, ignore_failure=True)
    job_id = started(settings, job)
    drain(settings, job_id)
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "error", "bad": "error"}
    assert result["status"] == "ended"


def test_children_depend_on_each_other_by_handle_and_name_and_grandchildren_count(settings):
    grandchildren = [child("G1", kwargs={"seconds": 0}), child("G2", kwargs={"seconds": 0})]
    job = JobSpec("nested")
    parent = job.add_task("P", ADDS, kwargs={"children": [
        child("C1", ADDS, kwargs={"children": grandchildren}),
        child("C2", depends_on=[{"handle": 0}]),
        child("C3", depends_on=[["C1", "error"]]),
    ]})
    job.add_task("D", "batchjobs.examples.noop", depends_on=[parent])
    job_id = started(settings, job)
    order = drain(settings, job_id)
    assert order == ["P", "C1", "G1", "G2", "C2", "D"]
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "ended", "C1": "ended", "C2": "ended",
                                "C3": "not_run", "G1": "ended", "G2": "ended", "D": "ended"}
    assert by_name(result)["G1"]["spawned_by"] == "C1"
    assert result["status"] == "ended"
    with store.read_session(settings) as session:
        assert session.execute(select(func.count()).select_from(Condition)).scalar_one() >= 2


@pytest.mark.parametrize("bad,culprit", [
    (child("x", "no.such.process"), "task 'x', field 'process'"),
    (child("x", kwargs={"nope": 1}), "task 'x', field 'kwargs'"),
    (child("P"), "task 'P', field 'name'"),
    (child("D"), "task 'D', field 'name'"),
    (child("ok"), "task 'ok', field 'name'"),
    (child("x", group="nowhere"), "task 'x', field 'group'"),
    (child("x", retries=-1), "task 'x', field 'retries'"),
    (child("x", depends_on=["D"]), "task 'x', field 'depends_on'"),
    (child("x", depends_on=[["ok", "sometimes"]]), "task 'x', field 'depends_on.status'"),
    (child("", SLEEP), "field 'name'"),
    (child("x", "tests.processes.samples.not_marked"), "not marked @batchable"),
])
def test_a_bad_child_fails_the_attempt_naming_it_and_nothing_is_stored(settings, bad, culprit):
    job = JobSpec("bad child")
    job.add_task("P", ADDS, kwargs={"children": [child("ok", kwargs={"seconds": 0}), bad]})
    job.add_task("D", "batchjobs.examples.noop")
    job_id = started(settings, job)
    result = run(settings, job_id, "P")
    assert result.outcome is Outcome.ERROR and culprit in (result.error or "")
    assert sorted(task_ids(settings, job_id)) == ["D", "P"]
    assert statuses(status(job_id, settings=settings))["P"] == "error"


def test_a_child_whose_kwargs_are_not_json_fails_the_attempt_naming_it(settings):
    job = JobSpec("not json")
    job.add_task("P", "tests.processes.spawning.adds_a_set")
    job_id = started(settings, job)
    result = run(settings, job_id, "P")
    assert result.outcome is Outcome.ERROR
    assert "task 'x', field 'kwargs': kwargs are not JSON" in (result.error or "")
    assert sorted(task_ids(settings, job_id)) == ["P"]


def test_a_refused_child_that_the_process_catches_is_left_out_and_the_rest_stored(settings):
    job = JobSpec("caught")
    job.add_task("P", ADDS, kwargs={"catch": True, "children": [
        child("a", kwargs={"seconds": 0}), child("b", "no.such.process"),
        child("c", kwargs={"seconds": 0})]})
    job_id = started(settings, job)
    result = run(settings, job_id, "P")
    assert result.outcome is Outcome.ENDED and "refused: task 'b'" in (result.log or "")
    assert sorted(task_ids(settings, job_id)) == ["P", "a", "c"]
    drain(settings, job_id)
    assert status(job_id, settings=settings)["status"] == "ended"


def test_a_retried_adder_adds_its_children_once_from_its_successful_attempt(settings):
    job = JobSpec("retried adder")
    job.add_task("P", ADDS, retries=1, kwargs={"fail_attempts": 1, "children": [
        child("a", kwargs={"seconds": 0}), child("b", kwargs={"seconds": 0})]})
    job_id = started(settings, job)
    assert run(settings, job_id, "P").outcome is Outcome.ERROR
    assert sorted(task_ids(settings, job_id)) == ["P"]
    assert run(settings, job_id, "P").outcome is Outcome.ENDED
    assert sorted(task_ids(settings, job_id)) == ["P", "a", "b"]
    drain(settings, job_id)
    result = status(job_id, settings=settings)
    assert result["status"] == "ended" and by_name(result)["P"]["attempts"] == 2


def test_a_name_taken_by_another_adder_meanwhile_fails_the_later_attempt(settings):
    job = JobSpec("race")
    for name in ("A", "B"):
        job.add_task(name, ADDS, kwargs={"children": [child("same", kwargs={"seconds": 0})]})
    job_id = started(settings, job)
    ids = task_ids(settings, job_id)
    claims = [claim(ids[n], job_id, "S", settings=settings) for n in ("A", "B")]
    results = [execute(c, "S", settings=settings) for c in claims if c is not None]
    assert [len(r.added) for r in results] == [1, 1]     # both checked before either stored
    for claimed, result in zip(claims, results, strict=True):
        assert claimed is not None
        record(claimed.task_id, claimed.attempt, result.outcome, added=result.added,
               settings=settings)
    tasks = by_name(status(job_id, settings=settings))
    assert (tasks["A"]["status"], tasks["B"]["status"]) == ("executing", "error")
    assert "task 'same', field 'name'" in tasks["B"]["error"]
    assert tasks["same"]["spawned_by"] == "A"


def test_cancel_cancels_the_children_and_the_adder_that_waits_for_them(settings):
    job = JobSpec("cancel")
    job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 2})
    job_id = started(settings, job)
    run(settings, job_id, "P")
    run(settings, job_id, "P #1")
    lifecycle.cancel(job_id, settings=settings)
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "canceled", "P #1": "ended", "P #2": "canceled"}
    assert result["status"] == "canceled"


def test_rerun_removes_the_children_of_the_last_run_and_the_adder_adds_them_again(
        settings, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("x")
    job = JobSpec("rerun")
    job.add_task("P", ADDS, kwargs={"children": [
        child("a", kwargs={"seconds": 0}),
        child("b", "tests.processes.spawning.fails_while", kwargs={"path": str(flag)})]})
    job.add_task("Q", "batchjobs.examples.noop")
    job_id = started(settings, job)
    drain(settings, job_id)
    assert statuses(status(job_id, settings=settings)) == {
        "P": "error", "a": "ended", "b": "error", "Q": "ended"}
    old = task_ids(settings, job_id)
    flag.unlink()
    assert lifecycle.rerun(job_id, failed=True, settings=settings) == 1
    assert sorted(task_ids(settings, job_id)) == ["P", "Q"]
    drain(settings, job_id)
    result = status(job_id, settings=settings)
    assert statuses(result) == {"P": "ended", "a": "ended", "b": "ended", "Q": "ended"}
    assert result["status"] == "ended" and by_name(result)["P"]["attempts"] == 2
    assert task_ids(settings, job_id)["P"] == old["P"]
    assert [a["run"] for a in attempts(job_id, task="P", settings=settings)] == [1, 2]
    # the old run's children went with their attempts; the new ones ran in run 2
    assert [(a["run"], a["outcome"]) for a in attempts(job_id, task="b",
                                                        settings=settings)] == [(2, "ended")]


def test_rerun_failed_of_a_failed_ignored_child_reruns_its_adder(settings, tmp_path):
    job = JobSpec("rerun ignored child")
    job.add_task("P", ADDS, kwargs={"children": [child("bad", FAIL, ignore_failure=True)]})
    job_id = started(settings, job)
    drain(settings, job_id)
    assert status(job_id, settings=settings)["status"] == "ended"
    assert lifecycle.rerun(job_id, failed=True, settings=settings) == 1
    assert ready(settings, job_id) == ["P"]


def test_a_child_is_recorded_in_a_transaction_and_an_ordinary_task_at_once(settings):
    job = JobSpec("paths")
    job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 1})
    job_id = started(settings, job)
    ids = task_ids(settings, job_id)
    parent = claim(ids["P"], job_id, "S", settings=settings)
    assert parent is not None and parent.readied_by_success == ()
    result = execute(parent, "S", settings=settings)
    record(parent.task_id, parent.attempt, result.outcome, added=result.added,
           children=parent.readied_by_success, settings=settings)
    kid = claim(task_ids(settings, job_id)["P #1"], job_id, "S", settings=settings)
    assert kid is not None and kid.readied_by_success is None


def test_a_context_built_by_hand_cannot_add_tasks():
    ctx = ProcessContext(job_id=1, task_id=2, task="T", attempt=1, company=None, user="u",
                         server="S")
    with pytest.raises(CannotAddTasks, match="'T'"):
        ctx.add_task("x", SLEEP)


def test_a_client_process_run_by_run_client_adds_tasks_too(settings):
    from batchjobs.client import run_client

    job = JobSpec("client adds")
    job.add_task("by hand", "tests.processes.spawning.client_adds", kwargs={"n": 2})
    job_id = started(settings, job)
    done = run_client(job_id, settings=settings)
    assert [d["task"] for d in done] == ["by hand"]
    assert ready(settings, job_id) == ["after by hand 1", "after by hand 2"]
    drain(settings, job_id)
    result = status(job_id, settings=settings)
    assert result["status"] == "ended" and statuses(result)["by hand"] == "ended"


def test_the_next_occurrence_of_a_recurring_job_starts_without_the_last_runs_added_tasks(
        settings):
    job = JobSpec("recurring", recurrence={"every": "1h"})
    job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 2, "seconds": 0})
    job_id = started(settings, job)
    drain(settings, job_id)
    with store.read_session(settings) as session:
        row = session.get(Job, job_id)
        assert (row.status, row.run_number, row.remaining) == ("waiting", 2, 1)
    assert sorted(task_ids(settings, job_id)) == ["P"]
    assert statuses(status(job_id, settings=settings)) == {"P": "waiting"}
