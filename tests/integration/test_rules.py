"""Conditions, retries, ignore_failure, duplicates and the attempt record, end to end."""

from __future__ import annotations

import json

import pytest

import batchjobs
from batchjobs import JobSpec, queues
from batchjobs.queues import Dispatch
from tests.helpers import by_name, statuses

pytestmark = pytest.mark.integration


def run(job: JobSpec, **kwargs) -> dict:
    job_id = batchjobs.submit(job, **kwargs)
    assert batchjobs.wait(job_id, timeout=60) is not None, "job did not finish in 60 s"
    return batchjobs.status(job_id)


def test_any_condition_runs_when_one_parent_matches_and_not_run_when_none_can(servers):
    job = JobSpec("any")
    a = job.add_task("A", "batchjobs.examples.fail")
    b = job.add_task("B", "batchjobs.examples.noop")
    job.add_task("C", "batchjobs.examples.noop", condition="any",
                 depends_on=[(a, "ended"), (b, "ended")])
    job.add_task("D", "batchjobs.examples.noop", condition="any",
                 depends_on=[(a, "ended"), (b, "error")])
    job.add_task("E", "batchjobs.examples.noop", depends_on=[("A", "ended"), ("B", "ended")])
    result = run(job)
    assert statuses(result) == {"A": "error", "B": "ended", "C": "ended", "D": "not_run",
                                "E": "not_run"}
    reason = by_name(result)["D"]["reason"]
    assert "'A'" in reason and "'B'" in reason


def test_flaky_task_is_retried_and_every_attempt_is_kept(servers):
    job = JobSpec("retries")
    job.add_task("flaky", "batchjobs.examples.flaky", kwargs={"failures": 2}, retries=2)
    result = run(job)
    assert result["status"] == "ended"
    task = by_name(result)["flaky"]
    assert (task["status"], task["attempts"], task["error"]) == ("ended", 3, None)
    attempts = list(batchjobs.attempts(result["id"]))
    assert [(a["number"], a["outcome"]) for a in attempts] == [(1, "error"), (2, "error"),
                                                               (3, "ended")]
    assert "attempt 1" in attempts[0]["error"] and "attempt 2" in attempts[1]["error"]


def test_task_fails_when_its_retries_are_used_up(servers):
    job = JobSpec("retries exhausted")
    job.add_task("flaky", "batchjobs.examples.flaky", kwargs={"failures": 2}, retries=1)
    job.add_task("after", "batchjobs.examples.noop", depends_on=["flaky"])
    result = run(job)
    assert result["status"] == "error"
    flaky = by_name(result)["flaky"]
    assert (flaky["status"], flaky["attempts"]) == ("error", 2)
    assert by_name(result)["after"]["status"] == "not_run"


def test_ignored_failure_does_not_fail_the_job(servers):
    job = JobSpec("ignore failure")
    job.add_task("fails", "batchjobs.examples.fail", ignore_failure=True)
    job.add_task("works", "batchjobs.examples.noop")
    result = run(job)
    assert statuses(result) == {"fails": "error", "works": "ended"}
    assert result["status"] == "ended"


def test_process_receives_job_task_attempt_company_and_user(servers, backend, tmp_path):
    out = tmp_path / "ctx.jsonl"
    job = JobSpec("context", company="DAT")
    job.add_task("default company", "tests.processes.context.record", kwargs={"path": str(out)})
    job.add_task("own company", "tests.processes.context.record",
                 kwargs={"path": str(out), "value": "x"}, company="USMF")
    result = run(job, user="alice")
    assert result["status"] == "ended" and result["created_by"] == "alice"
    seen = {r["task"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert seen["default company"]["company"] == "DAT"
    assert seen["own company"]["company"] == "USMF"
    assert {r["user"] for r in seen.values()} == {"alice"}
    assert {r["job_id"] for r in seen.values()} == {result["id"]}
    assert {r["attempt"] for r in seen.values()} == {1}
    rows = {a["task"]: a for a in batchjobs.attempts(result["id"])}
    assert rows["own company"]["company"] == "USMF" and rows["own company"]["user"] == "alice"
    assert {rows[t]["server"] for t in rows} <= {"Batch1", "Batch2"}


def test_duplicated_messages_run_a_task_once(servers, tmp_path):
    out = tmp_path / "runs.jsonl"
    job = JobSpec("duplicates")
    job.add_task("once", "tests.processes.context.record", kwargs={"path": str(out)})
    job_id = batchjobs.submit(job)
    task_id = _task_id(job_id, "once")
    copy = Dispatch(task_id=task_id, job_id=job_id, name="once",
                    process="tests.processes.context.record", group="default")
    queues.publish([copy, copy, copy])
    assert batchjobs.wait(job_id, timeout=60) is not None
    # A later job on the same queue: when it has ended, the copies ahead of it were consumed.
    probe = JobSpec("probe")
    for i in range(4):
        probe.add_task(f"p{i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.1})
    assert run(probe)["status"] == "ended"
    assert len(out.read_text().splitlines()) == 1
    assert by_name(batchjobs.status(job_id))["once"]["attempts"] == 1
    assert len(batchjobs.attempts(job_id)) == 1


def _task_id(job_id: int, name: str) -> int:
    from sqlalchemy import select

    from batchjobs import store
    from batchjobs.models import Task

    with store.read_session() as session:
        return session.execute(select(Task.id).where(Task.job_id == job_id, Task.name == name)
                               ).scalar_one()


def test_a_job_large_enough_for_bulk_copy_is_stored_whole_and_runs(servers):
    """600 tasks and 300 conditions: PostgreSQL stores them with COPY, SQLite with
    executemany; both must give the same job."""
    job = JobSpec("bulk", company="DAT")
    for i in range(300):
        parent = job.add_task(f"A{i}", "batchjobs.examples.sleep", kwargs={"seconds": 0})
        job.add_task(f"B{i}", "batchjobs.examples.noop", depends_on=[(parent, "ended")],
                     company="USMF" if i % 2 else None, retries=1)
    result = run(job, user="bulk-user")
    assert result["status"] == "ended"
    assert set(statuses(result).values()) == {"ended"} and len(result["tasks"]) == 600
    tasks = by_name(result)
    assert (tasks["B1"]["company"], tasks["B2"]["company"], tasks["A7"]["company"]) == (
        "USMF", "DAT", "DAT")
    attempts = batchjobs.attempts(result["id"])
    assert len(attempts) == 600 and {a["user"] for a in attempts} == {"bulk-user"}
    first_b = {a["task"]: a["started_at"] for a in attempts}
    ended_a = {a["task"]: a["ended_at"] for a in attempts}
    assert all(ended_a[f"A{i}"] <= first_b[f"B{i}"] for i in range(300))
