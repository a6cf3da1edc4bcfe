"""The AX walkthrough "Batch processing of dependent tasks", on real batch servers.

JOB 1: TASK 2 after TASK 1 finishes; TASK 3 and TASK 4 on success of TASK 2;
TASK 5 on its failure; TASK 6 on failure of TASK 3; TASK 7 on success of
TASK 3 and TASK 4. Two servers, Batch1 and Batch2, one thread each.
"""

from __future__ import annotations

import pytest

import batchjobs
from batchjobs.examples import job1
from tests.helpers import by_name, statuses, when

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

NOT_RUN = "not_run"


def run_job1(fail: str | None = None, seconds: float = 0.3) -> dict:
    job_id = batchjobs.submit(job1(fail=fail, seconds=seconds))
    assert batchjobs.wait(job_id, timeout=60) is not None, "JOB 1 did not finish in 60 s"
    return batchjobs.status(job_id)


def test_job1_success_runs_every_task_but_the_failure_branches(servers):
    result = run_job1()
    assert statuses(result) == {
        "TASK 1": "ended", "TASK 2": "ended", "TASK 3": "ended", "TASK 4": "ended",
        "TASK 5": NOT_RUN, "TASK 6": NOT_RUN, "TASK 7": "ended",
    }
    assert result["status"] == "ended"


def test_task2_waits_until_task1_is_finished_and_task7_until_task3_and_task4(servers):
    tasks = by_name(run_job1())
    assert when(tasks["TASK 2"]["started_at"]) >= when(tasks["TASK 1"]["ended_at"])
    for parent in ("TASK 3", "TASK 4"):
        assert when(tasks[parent]["started_at"]) >= when(tasks["TASK 2"]["ended_at"])
        assert when(tasks["TASK 7"]["started_at"]) >= when(tasks[parent]["ended_at"])


def test_task3_and_task4_run_at_the_same_time_on_different_servers(servers):
    tasks = by_name(run_job1(seconds=1.0))
    t3, t4 = tasks["TASK 3"], tasks["TASK 4"]
    assert {t3["server"], t4["server"]} == {"Batch1", "Batch2"}
    assert when(t3["started_at"]) < when(t4["ended_at"])
    assert when(t4["started_at"]) < when(t3["ended_at"])


def test_task2_failure_runs_task5_and_nothing_that_needs_task2_success(servers):
    result = run_job1(fail="TASK 2")
    assert statuses(result) == {
        "TASK 1": "ended", "TASK 2": "error", "TASK 3": NOT_RUN, "TASK 4": NOT_RUN,
        "TASK 5": "ended", "TASK 6": NOT_RUN, "TASK 7": NOT_RUN,
    }
    assert result["status"] == "error"
    tasks = by_name(result)
    assert "TASK 2 failed on purpose" in tasks["TASK 2"]["error"]
    assert "TASK 2" in tasks["TASK 3"]["reason"] and "error" in tasks["TASK 3"]["reason"]
    assert "TASK 3" in tasks["TASK 6"]["reason"] and NOT_RUN in tasks["TASK 6"]["reason"]


def test_task3_failure_runs_task6_and_not_task7(servers):
    result = run_job1(fail="TASK 3")
    assert statuses(result) == {
        "TASK 1": "ended", "TASK 2": "ended", "TASK 3": "error", "TASK 4": "ended",
        "TASK 5": NOT_RUN, "TASK 6": "ended", "TASK 7": NOT_RUN,
    }
    assert result["status"] == "error"
    assert "TASK 3" in by_name(result)["TASK 7"]["reason"]


def test_task1_failure_still_runs_task2_because_it_only_needs_task1_finished(servers):
    result = run_job1(fail="TASK 1")
    assert statuses(result) == {
        "TASK 1": "error", "TASK 2": "ended", "TASK 3": "ended", "TASK 4": "ended",
        "TASK 5": NOT_RUN, "TASK 6": NOT_RUN, "TASK 7": "ended",
    }
    assert result["status"] == "error"
