"""The batchable registry: only marked functions and classes are processes, and they are run
with their kwargs (and the context when they ask for it)."""

from __future__ import annotations

import pytest

from batchjobs.errors import UnknownProcess
from batchjobs.examples import ProcessFailed
from batchjobs.processes import ProcessContext, get_process, registered
from tests.processes import samples


def context(attempt: int = 1, task: str = "TASK 1") -> ProcessContext:
    return ProcessContext(job_id=7, task_id=42, task=task, attempt=attempt, company="ACME",
                          user="alice", server="Batch1")


def test_a_batchable_function_is_registered_under_its_dotted_name():
    process = get_process("tests.processes.samples.add")
    assert process.name == "tests.processes.samples.add"
    assert process.target is samples.add
    assert not process.is_class and not process.takes_context
    assert "tests.processes.samples.add" in registered()


def test_a_batchable_function_is_called_with_the_kwargs():
    assert get_process("tests.processes.samples.add").run(context(), {"a": 2, "b": 3}) == 5


def test_a_function_with_a_ctx_parameter_receives_the_process_context():
    ctx = context(attempt=3)
    process = get_process("tests.processes.samples.whoami")
    assert process.takes_context
    result = process.run(ctx, {"greeting": "hi"})
    assert result == {"ctx": ctx, "greeting": "hi"}


def test_ctx_is_not_a_kwarg_a_task_may_set():
    process = get_process("tests.processes.samples.whoami")
    process.check_kwargs({"greeting": "hi"})
    assert "ctx" not in process.signature().parameters


def test_a_registered_class_is_built_with_the_kwargs_and_its_run_called():
    process = get_process("tests.processes.samples.Report")
    assert process.is_class and process.target is samples.Report
    assert process.run(context(), {"title": "Sales", "pages": 3}) == "Sales (3 pages)"


def test_a_registered_class_whose_run_takes_ctx_receives_the_context():
    process = get_process("tests.processes.samples.ContextReport")
    assert process.run(context(attempt=2, task="T9"), {"title": "Stock"}) == \
        "Stock for task T9 attempt 2"


def test_a_process_can_be_registered_under_an_explicit_name_and_as_client_only():
    process = get_process("samples.custom-name")
    assert process.target is samples.renamed and process.client is True
    assert process.run(context(), {}) == "renamed"
    with pytest.raises(UnknownProcess):
        get_process("tests.processes.samples.renamed")


def test_an_importable_but_unmarked_function_is_an_unknown_process():
    with pytest.raises(UnknownProcess) as info:
        get_process("tests.processes.samples.not_marked", task="T")
    exc = info.value
    assert (exc.task, exc.field, exc.value) == ("T", "process",
                                                "tests.processes.samples.not_marked")
    assert "tests.processes.samples.not_marked" in str(exc)


def test_an_importable_standard_library_function_is_an_unknown_process():
    with pytest.raises(UnknownProcess):
        get_process("os.path.join")


@pytest.mark.parametrize("name", ["", None, 42])
def test_a_process_name_that_is_not_a_dotted_string_is_an_unknown_process(name):
    with pytest.raises(UnknownProcess) as info:
        get_process(name)
    assert info.value.value == name


# -- the examples ---------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_flaky_fails_for_the_first_attempts_then_succeeds(failures):
    process = get_process("batchjobs.examples.flaky")
    for attempt in range(1, failures + 1):
        with pytest.raises(ProcessFailed, match=f"attempt {attempt} of TASK 1 fails"):
            process.run(context(attempt=attempt), {"failures": failures})
    assert process.run(context(attempt=failures + 1), {"failures": failures}) is None
    assert process.run(context(attempt=failures + 2), {"failures": failures}) is None


def test_flaky_fails_once_by_default():
    process = get_process("batchjobs.examples.flaky")
    with pytest.raises(ProcessFailed):
        process.run(context(attempt=1), {})
    assert process.run(context(attempt=2), {}) is None


def test_fail_raises_with_its_message():
    process = get_process("batchjobs.examples.fail")
    with pytest.raises(ProcessFailed) as info:
        process.run(context(), {"message": "TASK 2 failed on purpose"})
    assert str(info.value) == "TASK 2 failed on purpose"


def test_fail_has_a_default_message():
    with pytest.raises(ProcessFailed, match="failed on purpose"):
        get_process("batchjobs.examples.fail").run(context(), {})


def test_noop_succeeds():
    assert get_process("batchjobs.examples.noop").run(context(), {}) is None
