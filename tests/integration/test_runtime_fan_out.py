"""Runtime tasks on real batch servers: a task's process adds tasks to its own job
(``ctx.add_task``), the servers run them, and the adder ends only after them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

import batchjobs
from batchjobs import JobSpec, store
from batchjobs.models import Task
from tests.helpers import by_name, statuses, wait_for, when

pytestmark = pytest.mark.integration

ADDS = "tests.processes.spawning.adds"


def finished(job: JobSpec, timeout: float = 120) -> dict:
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=timeout) is not None, f"job not final in {timeout} s"
    return batchjobs.status(job_id)


def attempt_of(result: dict, task: str) -> dict:
    (attempt,) = batchjobs.attempts(result["id"], task=task)
    return attempt


def test_fan_out_runs_its_five_children_before_the_adders_dependent_starts(servers):
    job = JobSpec("fan out")
    parent = job.add_task("P", "batchjobs.examples.fan_out", kwargs={"n": 5, "seconds": 0.1})
    job.add_task("D", "batchjobs.examples.noop", depends_on=[parent])
    result = finished(job)
    children = [f"P #{i}" for i in range(1, 6)]
    assert result["status"] == "ended"
    assert statuses(result) == {"P": "ended", "D": "ended", **dict.fromkeys(children, "ended")}
    assert {by_name(result)[c]["spawned_by"] for c in children} == {"P"}
    added = when(attempt_of(result, "P")["ended_at"])
    dependent = when(attempt_of(result, "D")["started_at"])
    runs = [attempt_of(result, c) for c in children]
    assert all(added <= when(a["started_at"]) for a in runs)
    assert all(when(a["ended_at"]) <= dependent for a in runs)
    assert {a["server"] for a in runs} <= {"Batch1", "Batch2"}


def test_a_failed_child_fails_its_adder_and_the_adders_ended_dependents_do_not_run(servers):
    job = JobSpec("child fails")
    parent = job.add_task("P", ADDS, kwargs={"children": [
        {"name": "works", "process": "batchjobs.examples.noop"},
        {"name": "breaks", "process": "batchjobs.examples.fail"}]})
    job.add_task("on ended", "batchjobs.examples.noop", depends_on=[parent])
    job.add_task("on error", "batchjobs.examples.noop", depends_on=[(parent, "error")])
    result = finished(job)
    assert statuses(result) == {"P": "error", "works": "ended", "breaks": "error",
                                "on ended": "not_run", "on error": "ended"}
    assert by_name(result)["P"]["reason"] == "added task 'breaks' ended error"
    assert "'P'" in by_name(result)["on ended"]["reason"]
    assert result["status"] == "error"


def test_a_failed_child_that_ignores_failure_leaves_its_adder_ended(servers):
    job = JobSpec("ignored child")
    parent = job.add_task("P", ADDS, kwargs={"children": [
        {"name": "breaks", "process": "batchjobs.examples.fail", "ignore_failure": True}]})
    job.add_task("after", "batchjobs.examples.noop", depends_on=[parent])
    result = finished(job)
    assert statuses(result) == {"P": "ended", "breaks": "error", "after": "ended"}
    assert result["status"] == "ended"


def test_status_json_shows_the_adder_executing_while_its_children_run(servers, tmp_path):
    gate = tmp_path / "go"
    job = JobSpec("visible")
    parent = job.add_task("P", ADDS, kwargs={"children": [
        {"name": f"wait {i}", "process": "tests.processes.samples.wait_for_file",
         "kwargs": {"path": str(gate)}} for i in (1, 2)]})
    job.add_task("D", "batchjobs.examples.noop", depends_on=[parent])
    job_id = batchjobs.submit(job)
    wait_for(lambda: all(t["status"] == "executing" for t in batchjobs.status(job_id)["tasks"]
                         if t["name"].startswith("wait")) and len(batchjobs.status(job_id)[
                             "tasks"]) == 4, timeout=60, message="both children executing")
    shown = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                            "status", str(job_id), "--json"], capture_output=True, text=True,
                           timeout=90, env=dict(os.environ))
    assert shown.returncode == 0, shown.stderr
    tasks = by_name(json.loads(shown.stdout))
    assert (tasks["P"]["status"], tasks["P"]["open_children"]) == ("executing", 2)
    assert tasks["D"]["status"] == "waiting"
    assert (tasks["wait 1"]["spawned_by"], tasks["D"]["spawned_by"]) == ("P", None)
    assert [a["outcome"] for a in batchjobs.attempts(job_id, task="P")] == ["ended"]
    text = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                           "status", str(job_id)], capture_output=True, text=True, timeout=90,
                          env=dict(os.environ)).stdout
    assert "waiting for 2 task(s) it added" in text
    gate.write_text("go")
    assert batchjobs.wait(job_id, timeout=60) == "ended"
    assert statuses(batchjobs.status(job_id))["D"] == "ended"


@pytest.mark.timeout(1200)
def test_a_thousand_children_run_and_the_job_ends(servers):
    """Real servers run what a process added; storing 10,000 is tested in-process
    (tests/test_runtime_tasks.py): running them all here cost the suite 15 minutes."""
    job = JobSpec("a thousand")
    job.add_task("P", "tests.processes.spawning.many", kwargs={"n": 1_000})
    job.add_task("after", "batchjobs.examples.noop", depends_on=["P"])
    started = time.monotonic()
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=1200) == "ended"
    print(f"1,000 runtime tasks ran in {time.monotonic() - started:.1f} s")
    with store.read_session() as session:
        counts = dict(session.execute(select(Task.status, func.count()).where(
            Task.job_id == job_id).group_by(Task.status)).all())
    assert counts == {"ended": 1_002}
    result = batchjobs.status(job_id)
    added = when(attempt_of(result, "P")["ended_at"])
    after = when(attempt_of(result, "after")["started_at"])
    ends = [when(a["ended_at"]) for a in batchjobs.attempts(job_id) if a["task"].startswith("P ")]
    assert len(ends) == 1_000 and max(ends) <= after and added <= min(ends)
