"""Retry policies end to end on real batch servers: delayed retries wait in the database
and start on time (measured from the attempt rows), backoff and its cap, retry_on, and a
process's own Retry and Fail."""

from __future__ import annotations

from itertools import pairwise

import pytest

import batchjobs
from batchjobs import JobSpec
from batchjobs.app import app
from batchjobs.housekeeper import Broker
from tests.helpers import by_name, wait_for, when

pytestmark = pytest.mark.integration


def run(job: JobSpec) -> dict:
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=90) is not None, "job did not finish in 90 s"
    return batchjobs.status(job_id)


def gaps(job_id: int) -> list[float]:
    """Seconds from each attempt's end to the next attempt's start."""
    rows = batchjobs.attempts(job_id)
    return [(when(b["started_at"]) - when(a["ended_at"])).total_seconds()
            for a, b in pairwise(rows)]


def test_a_delayed_retry_starts_its_delay_after_the_failed_attempt_ended(servers):
    job = JobSpec("retry in 2 s")
    job.add_task("flaky", "batchjobs.examples.flaky", kwargs={"failures": 1}, retries=1,
                 retry_delay="2s")
    result = run(job)
    task = by_name(result)["flaky"]
    assert (result["status"], task["attempts"], task["retry_delay"]) == ("ended", 2, 2.0)
    assert [a["outcome"] for a in batchjobs.attempts(result["id"])] == ["error", "ended"]
    (gap,) = gaps(result["id"])
    assert 2.0 <= gap <= 2.6, gap


def test_a_delayed_retry_waits_in_the_database_not_on_the_queue(servers):
    job = JobSpec("retry in an hour")
    job.add_task("fails", "tests.processes.samples.raise_error", retries=1,
                 retry_delay="1h")
    job_id = batchjobs.submit(job)
    try:
        task = wait_for(lambda: (t := by_name(batchjobs.status(job_id))["fails"])["not_before"]
                        and t, timeout=60, message="the retry waits")
        assert (task["status"], task["attempts"]) == ("ready", 1)
        ended = when(batchjobs.attempts(job_id)[0]["ended_at"])
        assert 3599 <= (when(task["not_before"]) - ended).total_seconds() <= 3610
        assert Broker(app).queue_length("batch.default") == 0
    finally:
        batchjobs.cancel(job_id)
    assert by_name(batchjobs.status(job_id))["fails"]["status"] == "canceled"


def test_backoff_multiplies_each_wait_up_to_the_cap(servers):
    # waits 1 s, then 2 s capped to 1.5 s, then 4 s capped to 1.5 s
    job = JobSpec("backoff", retry_delay=1, retry_backoff=2, retry_max_delay=1.5)
    job.add_task("flaky", "batchjobs.examples.flaky", kwargs={"failures": 3}, retries=3)
    result = run(job)
    assert (result["status"], by_name(result)["flaky"]["attempts"]) == ("ended", 4)
    first, second, third = gaps(result["id"])
    assert 1.0 <= first <= 1.9
    assert 1.5 <= second <= 2.4 and 1.5 <= third <= 2.4


def test_an_exception_outside_retry_on_fails_at_once(servers):
    job = JobSpec("retry_on")
    job.add_task("key error", "tests.processes.samples.raise_error", retries=3,
                 retry_on=["Busy", "TimeoutError"])
    job.add_task("busy", "tests.processes.samples.raise_error",
                 kwargs={"kind": "Busy", "until": 1}, retries=3, retry_on=["ConnectionError"])
    result = run(job)
    key_error, busy = by_name(result)["key error"], by_name(result)["busy"]
    assert (key_error["status"], key_error["attempts"]) == ("error", 1)
    assert key_error["reason"] == ("not retried: KeyError is not in retry_on "
                                   "(Busy, TimeoutError)")
    assert (busy["status"], busy["attempts"]) == ("ended", 2)


def test_a_process_decides_with_retry_and_fail(servers):
    job = JobSpec("Retry and Fail")
    job.add_task("asks twice", "tests.processes.samples.ask_retry",
                 kwargs={"delay": 0.5, "times": 2}, retries=2)
    job.add_task("asks too often", "tests.processes.samples.ask_retry",
                 kwargs={"times": 5}, retries=1)
    job.add_task("gives up", "tests.processes.samples.give_up", retries=5)
    result = run(job)
    tasks = by_name(result)
    assert (tasks["asks twice"]["status"], tasks["asks twice"]["attempts"]) == ("ended", 3)
    assert (tasks["asks too often"]["status"], tasks["asks too often"]["attempts"]) == (
        "error", 2)
    assert (tasks["gives up"]["status"], tasks["gives up"]["attempts"]) == ("error", 1)
    assert tasks["gives up"]["reason"] == "the process raised Fail"
    asked = [a for a in batchjobs.attempts(result["id"]) if a["task"] == "asks twice"]
    assert all((when(b["started_at"]) - when(a["ended_at"])).total_seconds() >= 0.5
               for a, b in pairwise(asked))
    assert "Retry: not yet (attempt 1)" in asked[0]["error"]
