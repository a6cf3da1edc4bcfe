"""Running a process: its traceback without batchjobs' frames, its log bounded and marked,
and every error of the tree surviving pickling (a pool process hands them over so)."""

from __future__ import annotations

import inspect
import logging
import pickle
import sys

import pytest

from batchjobs import errors
from batchjobs.coordinator import Claim
from batchjobs.execution import Capture, execute
from batchjobs.status import Outcome


def claim_of(process: str, **kwargs: object) -> Claim:
    return Claim(task_id=1, job_id=7, name="T", process=process, kwargs=dict(kwargs),
                 company="USMF", user="ann", attempt=1)


def test_a_failing_process_keeps_its_file_line_and_what_it_logged_and_printed():
    result = execute(claim_of("tests.processes.samples.chatty_failure"), "S")
    assert result.outcome is Outcome.ERROR
    assert result.error == "KeyError: 'missing_key'"
    assert result.traceback is not None
    assert 'samples.py", line' in result.traceback and "in _look_up" in result.traceback
    assert "return table[key]" in result.traceback
    assert "execution.py" not in result.traceback and "processes.py" not in result.traceback
    assert result.log is not None
    assert "INFO tests.processes.chatty: step 3 of 3 done" in result.log
    assert "about to look up the key" in result.log and "on stderr too" in result.log


def test_a_quiet_success_keeps_no_log_and_no_traceback():
    result = execute(claim_of("batchjobs.examples.noop"), "S")
    assert (result.outcome, result.error, result.traceback, result.log) == (
        Outcome.ENDED, None, None, None)


def test_streams_and_the_root_logger_are_restored_after_the_process():
    stdout, stderr, level = sys.stdout, sys.stderr, logging.getLogger().level
    handlers = list(logging.getLogger().handlers)
    execute(claim_of("tests.processes.samples.chatty_failure"), "S")
    assert (sys.stdout, sys.stderr, logging.getLogger().level) == (stdout, stderr, level)
    assert logging.getLogger().handlers == handlers


def test_a_log_beyond_the_limit_keeps_its_start_and_end_and_marks_the_cut():
    capture = Capture(limit=400)
    for i in range(100):
        capture.write(f"line {i:03d}\n")        # 9 bytes each: 900 bytes written
    text = capture.text()
    assert text is not None
    assert text.startswith("line 000\n") and text.endswith("line 099\n")
    head, _, rest = text.partition("[… ")
    dropped = int(rest.split(" bytes truncated …]")[0])
    assert len(text.encode()) < 400 + 40
    assert dropped + len(head.encode()) + len(rest.split("…]\n", 1)[1].encode()) == 900


def _leaves() -> list[type[errors.BatchJobsError]]:
    return [kind for _, kind in inspect.getmembers(errors, inspect.isclass)
            if issubclass(kind, errors.BatchJobsError)]


def _example(kind: type[errors.BatchJobsError]) -> errors.BatchJobsError:
    samples: dict[type, errors.BatchJobsError] = {
        errors.DependencyCycle: errors.DependencyCycle(["A", "B", "A"]),
        errors.JobNotFound: errors.JobNotFound(3),
        errors.TaskNotFound: errors.TaskNotFound(3, "T"),
        errors.ServerNotFound: errors.ServerNotFound("S"),
        errors.ServerNameTaken: errors.ServerNameTaken("S", "host-a", 4242),
        errors.UserNotFound: errors.UserNotFound("ann"),
        errors.UserHasJobs: errors.UserHasJobs("ann", 2),
        errors.UserDisabled: errors.UserDisabled("ann", job_id=3, doing="cannot start"),
        errors.MissingDriver: errors.MissingDriver("psycopg"),
        errors.InUse: errors.InUse("batch group", "BG1", ["AOS2"]),
        errors.InvalidState: errors.InvalidState(3, "ended", "already finished"),
        errors.ClientOnly: errors.ClientOnly("a.b"),
        errors.TaskFailed: errors.TaskFailed(job_id=3, task="T", attempt=2, error="KeyError"),
        errors.ServerStartError: errors.ServerStartError("S", "exited"),
        errors.DeliveryError: errors.DeliveryError("email", "refused"),
        errors.DatabaseUnavailable: errors.DatabaseUnavailable("sqlite:///x.db", "locked"),
        errors.ConfigError: errors.ConfigError("bad", name="BATCHJOBS_X"),
        errors.InvalidSchedule: errors.InvalidSchedule("bad", value="25:00-07:00=2"),
    }
    if kind in samples:
        return samples[kind]
    if issubclass(kind, errors.DefinitionError):
        return kind("bad value", task="T", field="retries", value=-1)
    return kind("something went wrong")


@pytest.mark.parametrize("kind", _leaves(), ids=lambda k: k.__name__)
def test_every_error_survives_pickling_with_its_message_and_culprit(kind):
    error = _example(kind)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is kind and str(copy) == str(error)
    assert vars(copy) == vars(error)


@pytest.mark.parametrize("kind", _leaves(), ids=lambda k: k.__name__)
def test_every_error_has_the_exit_code_of_its_family(kind):
    invalid = errors.DefinitionError | errors.StoreError | errors.ConfigError
    expected = 2 if issubclass(kind, invalid) else 1
    assert kind.exit_code == expected
