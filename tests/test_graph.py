"""The pure graph rules: when a dependent is ready, waits or can never run."""

from __future__ import annotations

import pytest

from batchjobs.graph import Decision, decide, holds, job_outcome, unmet_reason
from batchjobs.status import ConditionType, Expected, JobStatus, TaskStatus, condition_holds

# -- decide: no conditions ---------------------------------------------------------


@pytest.mark.parametrize("condition_type", ["all", "any", ConditionType.ALL, ConditionType.ANY])
def test_a_task_without_conditions_is_ready_at_once(condition_type):
    assert decide(condition_type, 0, 0, 0) is Decision.READY


# -- decide: all --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "met", "unmet", "expected"), [
    # nothing known yet, or only part of the conditions hold: wait
    (1, 0, 0, Decision.WAIT),
    (3, 0, 0, Decision.WAIT),
    (3, 1, 0, Decision.WAIT),
    (3, 2, 0, Decision.WAIT),
    # every condition holds: ready
    (1, 1, 0, Decision.READY),
    (3, 3, 0, Decision.READY),
    # one condition can no longer hold: not_run at once, even if others are still open
    (1, 0, 1, Decision.NOT_RUN),
    (3, 0, 1, Decision.NOT_RUN),
    (3, 2, 1, Decision.NOT_RUN),
    (3, 1, 1, Decision.NOT_RUN),
    (3, 0, 3, Decision.NOT_RUN),
])
def test_all_is_ready_only_when_every_condition_holds_and_not_run_as_soon_as_one_cannot(
        n, met, unmet, expected):
    assert decide("all", n, met, unmet) is expected
    assert decide(ConditionType.ALL, n, met, unmet) is expected


@pytest.mark.parametrize(("n", "met", "unmet", "expected"), [
    # nothing known yet, or some conditions failed but one may still hold: wait
    (1, 0, 0, Decision.WAIT),
    (3, 0, 0, Decision.WAIT),
    (3, 0, 1, Decision.WAIT),
    (3, 0, 2, Decision.WAIT),
    # one condition holds: ready at once, whatever the others do
    (1, 1, 0, Decision.READY),
    (3, 1, 0, Decision.READY),
    (3, 1, 2, Decision.READY),
    (3, 3, 0, Decision.READY),
    # none can hold any more: not_run
    (1, 0, 1, Decision.NOT_RUN),
    (3, 0, 3, Decision.NOT_RUN),
])
def test_any_is_ready_as_soon_as_one_condition_holds_and_not_run_only_when_none_can(
        n, met, unmet, expected):
    assert decide("any", n, met, unmet) is expected
    assert decide(ConditionType.ANY, n, met, unmet) is expected


def test_an_unknown_condition_type_is_refused():
    with pytest.raises(ValueError):
        decide("most", 2, 1, 0)


# -- condition_holds ----------------------------------------------------------------

FINAL_PARENT = [TaskStatus.ENDED, TaskStatus.ERROR, TaskStatus.NOT_RUN, TaskStatus.CANCELED]

HOLDS = {
    (Expected.ENDED, TaskStatus.ENDED): True,
    (Expected.ENDED, TaskStatus.ERROR): False,
    (Expected.ENDED, TaskStatus.NOT_RUN): False,
    (Expected.ENDED, TaskStatus.CANCELED): False,
    (Expected.ERROR, TaskStatus.ENDED): False,
    (Expected.ERROR, TaskStatus.ERROR): True,
    (Expected.ERROR, TaskStatus.NOT_RUN): False,
    (Expected.ERROR, TaskStatus.CANCELED): False,
    (Expected.FINISHED, TaskStatus.ENDED): True,
    (Expected.FINISHED, TaskStatus.ERROR): True,
    (Expected.FINISHED, TaskStatus.NOT_RUN): False,
    (Expected.FINISHED, TaskStatus.CANCELED): False,
}


@pytest.mark.parametrize(("expected", "parent"), list(HOLDS), ids=lambda v: v.value)
def test_a_condition_holds_exactly_when_the_parent_reached_the_expected_status(expected, parent):
    assert condition_holds(expected, parent) is HOLDS[(expected, parent)]


@pytest.mark.parametrize("expected", list(Expected), ids=lambda v: v.value)
@pytest.mark.parametrize("parent", [TaskStatus.NOT_RUN, TaskStatus.CANCELED], ids=lambda v: v.value)
def test_a_parent_that_never_ran_satisfies_no_condition(expected, parent):
    assert condition_holds(expected, parent) is False


@pytest.mark.parametrize(("expected", "parent"), list(HOLDS), ids=lambda v: v.value)
def test_holds_accepts_plain_words_and_agrees_with_condition_holds(expected, parent):
    assert holds(expected.value, parent.value) is HOLDS[(expected, parent)]


def test_the_unmet_reason_names_the_parent_its_status_and_the_expected_status():
    reason = unmet_reason("TASK 2", "error", "ended")
    assert "'TASK 2'" in reason and "error" in reason and "ended" in reason


# -- job_outcome ------------------------------------------------------------------


def test_a_job_without_failed_tasks_ends_ended():
    assert job_outcome(0) is JobStatus.ENDED


@pytest.mark.parametrize("failed", [1, 2, 7])
def test_a_job_with_a_failed_task_ends_error(failed):
    assert job_outcome(failed) is JobStatus.ERROR
