"""A task's ``timeout``: read from the job file (task, or job as the default), validated."""

from __future__ import annotations

import pytest

from batchjobs.definition import job_from_dict
from batchjobs.errors import InvalidValue


def job(**keys: object) -> dict[str, object]:
    extra: dict[str, object] = keys.pop("task", {})  # type: ignore[assignment]
    task = {"name": "T", "process": "batchjobs.examples.noop", **extra}
    return {"description": "timeouts", "tasks": [task], **keys}


def test_a_task_and_a_job_timeout_are_read_from_the_file():
    spec = job_from_dict(job(timeout=30, task={"timeout": 1.5}))
    spec.validate()
    assert spec.timeout == 30 and spec.tasks[0].timeout == 1.5
    assert spec.to_dict()["timeout"] == 30 and spec.to_dict()["tasks"][0]["timeout"] == 1.5


def test_no_timeout_means_no_limit():
    spec = job_from_dict(job())
    spec.validate()
    assert spec.timeout is None and spec.tasks[0].timeout is None
    assert "timeout" not in spec.to_dict() and "timeout" not in spec.to_dict()["tasks"][0]


@pytest.mark.parametrize("value", [0, -1, "10", True, float("inf"), float("nan"), [1]])
def test_a_task_timeout_that_is_not_a_positive_number_is_refused_naming_the_task(value):
    spec = job_from_dict(job(task={"timeout": value}))
    with pytest.raises(InvalidValue) as refused:
        spec.validate()
    assert (refused.value.task, refused.value.field) == ("T", "timeout")


@pytest.mark.parametrize("value", [0, "1m", False])
def test_a_job_timeout_that_is_not_a_positive_number_is_refused(value):
    spec = job_from_dict(job(timeout=value))
    with pytest.raises(InvalidValue) as refused:
        spec.validate()
    assert (refused.value.task, refused.value.field) == (None, "timeout")
