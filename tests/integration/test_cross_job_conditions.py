"""Conditions on other jobs end to end on real batch servers: a job that has finished
decides them at once, one still executing is waited for, one that can no longer give
the outcome makes the task not_run with the job and its status named, an unknown or
recurring job is refused at submit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import batchjobs
from batchjobs import JobRef, JobSpec
from tests.helpers import by_name, statuses, wait_for, when

pytestmark = pytest.mark.integration


def run(job: JobSpec) -> dict:
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=90) is not None, "job did not finish in 90 s"
    return batchjobs.status(job_id)


def test_a_failed_job_fails_ended_conditions_and_satisfies_error_ones(servers):
    failed = JobSpec("fails")
    failed.add_task("F", "batchjobs.examples.fail")
    failed_id = run(failed)["id"]
    assert batchjobs.status(failed_id)["status"] == "error"
    job = JobSpec("after the failed job")
    job.add_task("on success", "batchjobs.examples.noop",
                 depends_on=[(JobRef(failed_id), "ended")])
    job.add_task("on failure", "batchjobs.examples.noop",
                 depends_on=[(JobRef(failed_id), "error")])
    job.add_task("on either", "batchjobs.examples.noop",
                 depends_on=[(JobRef(failed_id), "finished")])
    job.add_task("after skipped", "batchjobs.examples.noop", depends_on=["on success"])
    result = run(job)
    assert statuses(result) == {"on success": "not_run", "on failure": "ended",
                                "on either": "ended", "after skipped": "not_run"}
    tasks = by_name(result)
    assert tasks["on success"]["reason"] == (
        f"condition on job {failed_id} can no longer hold: it is error, "
        "the condition needs ended")
    assert tasks["on failure"]["after_jobs"] == [{"job": failed_id, "status": "error"}]
    assert result["status"] == "ended"


def test_a_condition_on_an_executing_job_waits_until_it_ends(servers, tmp_path):
    release = tmp_path / "release"
    first = JobSpec("long")
    first.add_task("hold", "tests.processes.samples.wait_for_file",
                   kwargs={"path": str(release)})
    first_id = batchjobs.submit(first)
    wait_for(lambda: batchjobs.status(first_id)["tasks"][0]["status"] == "executing",
             timeout=60, message="the first job executes")
    job = JobSpec("after the long one")
    job.add_task("next", "batchjobs.examples.noop", depends_on=[(JobRef(first_id), "ended")])
    job.add_task("free", "batchjobs.examples.noop")
    job_id = batchjobs.submit(job)
    wait_for(lambda: by_name(batchjobs.status(job_id))["free"]["status"] == "ended",
             timeout=60, message="the unconditioned task ends")
    assert by_name(batchjobs.status(job_id))["next"]["status"] == "waiting"
    release.touch()
    assert batchjobs.wait(job_id, timeout=90) == "ended"
    first_end = when(batchjobs.status(first_id)["ended_at"])
    (attempt,) = batchjobs.attempts(job_id, task="next")
    assert attempt["outcome"] == "ended" and when(attempt["started_at"]) >= first_end


def test_a_canceled_job_satisfies_no_condition(servers, tmp_path):
    held = JobSpec("to cancel")
    held.add_task("hold", "tests.processes.samples.wait_for_file",
                  kwargs={"path": str(tmp_path / "never")})
    held_id = batchjobs.submit(held, hold=True)
    job = JobSpec("after the canceled one")
    job.add_task("next", "batchjobs.examples.noop",
                 depends_on=[(JobRef(held_id), "finished")])
    job_id = batchjobs.submit(job)
    batchjobs.cancel(held_id)
    assert batchjobs.wait(job_id, timeout=60) == "ended"
    task = by_name(batchjobs.status(job_id))["next"]
    assert task["status"] == "not_run" and f"job {held_id}" in task["reason"]
    assert "it is canceled" in task["reason"]


def _cli(backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchjobs", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_condition_on_an_unknown_job_is_refused_at_submit(servers, backend, tmp_path):
    before = len(batchjobs.list_jobs(limit=1000))
    path = tmp_path / "job.yaml"
    path.write_text("description: waits for nothing\ntasks:\n"
                    "  - {name: A, process: batchjobs.examples.noop,\n"
                    "     depends_on: [{job: 987654, status: ended}]}\n")
    done = _cli(backend, "submit", str(path))
    assert done.returncode == 2, done.stderr
    assert "task 'A'" in done.stderr and "987654" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(batchjobs.list_jobs(limit=1000)) == before


def test_a_condition_on_a_recurring_job_is_refused_at_submit(servers):
    recurring = JobSpec("recurs", recurrence={"every": "1h"})
    recurring.add_task("R", "batchjobs.examples.noop")
    recurring_id = batchjobs.submit(recurring, hold=True)
    job = JobSpec("after a recurring job")
    job.add_task("A", "batchjobs.examples.noop", depends_on=[(JobRef(recurring_id), "ended")])
    with pytest.raises(batchjobs.InvalidValue) as error:
        batchjobs.submit(job)
    assert (error.value.task, error.value.value) == ("A", recurring_id)
    assert "recurs" in str(error.value)
    batchjobs.cancel(recurring_id)


def test_a_job_file_and_python_store_the_same_condition(servers, tmp_path):
    done = JobSpec("done")
    done.add_task("D", "batchjobs.examples.noop")
    done_id = run(done)["id"]
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"description": "same", "tasks": [
        {"name": "A", "process": "batchjobs.examples.noop",
         "depends_on": [{"job": done_id, "status": "finished"}]}]}))
    from_file = run(batchjobs.load_job_file(path))
    built = JobSpec("same")
    built.add_task("A", "batchjobs.examples.noop", depends_on=[(JobRef(done_id), "finished")])
    from_python = run(built)
    for result in (from_file, from_python):
        assert statuses(result) == {"A": "ended"}
        assert by_name(result)["A"]["after_jobs"] == [{"job": done_id, "status": "finished"}]
