"""The retry policy's rules (delay, backoff, cap, retry_on, Retry/Fail) and how a job
gives it: validated before anything is stored, the same from a file and from Python."""

from __future__ import annotations

import pytest

import batchjobs
from batchjobs import Fail, JobSpec, Retry, job_from_dict
from batchjobs.errors import InvalidValue
from batchjobs.retry import MAX_DELAY, Failure, Policy, parse_delay
from tests.processes.samples import Busy


def test_the_nth_retry_waits_delay_times_backoff_to_the_n_minus_1():
    rule = Policy(retries=5, delay=2.0, backoff=3.0)
    assert [rule.wait_before(n) for n in range(1, 5)] == [2.0, 6.0, 18.0, 54.0]


def test_the_wait_is_capped_by_retry_max_delay_and_never_overflows():
    rule = Policy(retries=1000, delay=2.0, backoff=3.0, max_delay=10.0)
    assert [rule.wait_before(n) for n in range(1, 5)] == [2.0, 6.0, 10.0, 10.0]
    huge = Policy(retries=1000, delay=1.0, backoff=100.0)
    assert huge.wait_before(1000) == MAX_DELAY


def test_without_a_delay_a_retry_is_at_once():
    assert Policy(retries=3, backoff=5.0).decide(None, 1).delay == 0.0


def test_retries_left_decide_whether_to_retry():
    rule = Policy(retries=2, delay=1.0)
    assert [rule.decide(None, n).retry for n in (1, 2, 3)] == [True, True, False]


def test_retry_on_matches_the_class_or_a_base_by_bare_or_dotted_name():
    failure = Failure.of(Busy("down"))
    for names in (("Busy",), ("tests.processes.samples.Busy",), ("ConnectionError",),
                  ("builtins.OSError",)):
        assert Policy(retries=1, retry_on=names).decide(failure, 1).retry, names
    refused = Policy(retries=1, retry_on=("KeyError", "tests.Busy")).decide(failure, 1)
    assert not refused.retry
    assert refused.reason == "not retried: Busy is not in retry_on (KeyError, tests.Busy)"


def test_a_failure_without_an_exception_is_retried_whatever_retry_on_says():
    assert Policy(retries=1, retry_on=("KeyError",)).decide(None, 1).retry


def test_retry_from_the_process_retries_with_its_own_delay_even_outside_retry_on():
    decision = Policy(retries=1, delay=9.0, retry_on=("KeyError",)).decide(
        Failure.of(Retry(delay="1m")), 1)
    assert (decision.retry, decision.delay) == (True, 60.0)
    assert Policy(retries=1, delay=9.0).decide(Failure.of(Retry()), 1).delay == 9.0


def test_retry_from_the_process_counts_against_retries():
    assert not Policy(retries=1).decide(Failure.of(Retry()), 2).retry


def test_fail_from_the_process_is_never_retried():
    decision = Policy(retries=5).decide(Failure.of(Fail("no")), 1)
    assert (decision.retry, decision.reason) == (False, "the process raised Fail")


@pytest.mark.parametrize(("value", "seconds"), [(3, 3.0), (0.5, 0.5), ("5s", 5.0),
                                                ("1m", 60.0), ("2h", 7200.0),
                                                ("250ms", 0.25), ("1.5s", 1.5)])
def test_a_delay_is_seconds_or_a_duration(value, seconds):
    assert parse_delay(value, field="retry_delay") == seconds


@pytest.mark.parametrize("value", [-1, "5", "5 minutes", True, float("nan"), "31d", [5]])
def test_a_bad_delay_is_refused_naming_the_field(value):
    with pytest.raises(InvalidValue) as error:
        parse_delay(value, field="retry_delay", task="T")
    assert (error.value.task, error.value.field) == ("T", "retry_delay")


@pytest.mark.parametrize(("fields", "culprit"), [
    ({"retry_delay": "soon"}, "retry_delay"),
    ({"retry_backoff": 0.5}, "retry_backoff"),
    ({"retry_backoff": "2"}, "retry_backoff"),
    ({"retry_delay": "10s", "retry_max_delay": "5s"}, "retry_max_delay"),
    ({"retry_on": "KeyError"}, "retry_on"),
    ({"retry_on": []}, "retry_on"),
    ({"retry_on": ["not a name"]}, "retry_on"),
    ({"retry_on": [3]}, "retry_on"),
])
def test_a_bad_retry_policy_is_refused_before_anything_is_stored(fields, culprit):
    job = job_from_dict({"description": "bad", "tasks": [
        {"name": "T", "process": "batchjobs.examples.noop", **fields}]})
    with pytest.raises(InvalidValue) as error:
        job.validate()
    assert (error.value.task, error.value.field) == ("T", culprit)
    on_job = job_from_dict({"description": "bad", **fields, "tasks": [
        {"name": "T", "process": "batchjobs.examples.noop"}]})
    with pytest.raises(InvalidValue) as error:
        on_job.validate()
    assert error.value.field == culprit


def test_the_job_gives_its_tasks_a_default_policy_a_task_overrides():
    job = job_from_dict({"description": "defaults", "retry_delay": "5s", "retry_backoff": 2,
                         "retry_on": ["KeyError"], "tasks": [
                             {"name": "A", "process": "batchjobs.examples.noop"},
                             {"name": "B", "process": "batchjobs.examples.noop",
                              "retry_delay": 1, "retry_on": ["Busy"],
                              "retry_max_delay": "1m"}]})
    a, b = (job.retry_policy(t) for t in job.tasks)
    assert (a.delay, a.backoff, a.max_delay, a.retry_on) == (5.0, 2.0, None, ("KeyError",))
    assert (b.delay, b.backoff, b.max_delay, b.retry_on) == (1.0, 2.0, 60.0, ("Busy",))


def test_a_policy_from_a_file_and_from_python_is_the_same_job():
    data = {"description": "same", "retry_backoff": 2, "tasks": [
        {"name": "A", "process": "batchjobs.examples.noop", "retries": 3,
         "retry_delay": "2s", "retry_max_delay": 30, "retry_on": ["KeyError"]}]}
    built = JobSpec("same", retry_backoff=2)
    built.add_task("A", "batchjobs.examples.noop", retries=3, retry_delay="2s",
                   retry_max_delay=30, retry_on=["KeyError"])
    assert job_from_dict(data).to_dict() == built.to_dict()
    assert job_from_dict(built.to_dict()).to_dict() == built.to_dict()


def test_retry_and_fail_are_public_names():
    assert batchjobs.Retry is Retry and batchjobs.Fail is Fail
    assert "Retry" in batchjobs.__all__ and "Fail" in batchjobs.__all__
