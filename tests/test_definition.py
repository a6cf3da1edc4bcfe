"""Job definitions: the Python, YAML and JSON roads agree, and each invalid definition is
refused with an error that names its culprit (task, field, value)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from batchjobs.definition import JobSpec, TaskSpec, find_cycle, job_from_dict, load_job_file
from batchjobs.errors import (
    DefinitionError,
    DependencyCycle,
    DuplicateTask,
    InvalidValue,
    MalformedDefinition,
    UnknownDependency,
    UnknownGroup,
    UnknownProcess,
)
from batchjobs.status import Alert, ConditionType, Expected

PLUS_ONE = timezone(timedelta(hours=1))


def culprit(exc: DefinitionError, cls: type, *, task: str | None, field: str | None,
            value: object, words: tuple[str, ...] = ()) -> None:
    """The error is exactly ``cls``, carries the culprit and says it in its message."""
    assert type(exc) is cls, f"{type(exc).__name__}: {exc}"
    assert (exc.task, exc.field, exc.value) == (task, field, value)
    message = str(exc)
    if task is not None:
        assert repr(task) in message
    if field is not None:
        assert repr(field) in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def one_task(name: str = "A", process: str = "batchjobs.examples.noop", **options) -> JobSpec:
    job = JobSpec("J")
    job.add_task(name, process, **options)
    return job


# -- the three roads agree -------------------------------------------------------

YAML_JOB = """\
description: NIGHTLY
alert: always
company: ACME
run_at: 2030-01-02T03:04:05+01:00
tasks:
  - name: EXTRACT
    process: batchjobs.examples.sleep
    kwargs: {seconds: 0.1}
    retries: 2
  - name: LOAD
    process: batchjobs.examples.noop
    company: OTHER
    ignore_failure: true
    depends_on:
      - {task: EXTRACT, status: finished}
  - name: REPORT
    process: batchjobs.examples.fail
    kwargs:
      message: boom
    group: default
    condition: any
    depends_on:
      - task: EXTRACT
        status: error
      - task: LOAD
"""

JSON_JOB = {
    "description": "NIGHTLY", "alert": "always", "company": "ACME",
    "run_at": "2030-01-02T03:04:05+01:00",
    "tasks": [
        {"name": "EXTRACT", "process": "batchjobs.examples.sleep", "kwargs": {"seconds": 0.1},
         "retries": 2},
        {"name": "LOAD", "process": "batchjobs.examples.noop", "company": "OTHER",
         "ignore_failure": True, "depends_on": [{"task": "EXTRACT", "status": "finished"}]},
        {"name": "REPORT", "process": "batchjobs.examples.fail", "kwargs": {"message": "boom"},
         "group": "default", "condition": "any",
         "depends_on": [{"task": "EXTRACT", "status": "error"}, {"task": "LOAD"}]},
    ],
}


def python_job() -> JobSpec:
    job = JobSpec("NIGHTLY", alert="always", company="ACME",
                  run_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=PLUS_ONE))
    extract = job.add_task("EXTRACT", "batchjobs.examples.sleep", kwargs={"seconds": 0.1},
                           retries=2)
    job.add_task("LOAD", "batchjobs.examples.noop", company="OTHER", ignore_failure=True,
                 depends_on=[(extract, "finished")])
    job.add_task("REPORT", "batchjobs.examples.fail", kwargs={"message": "boom"},
                 condition=ConditionType.ANY).after(extract, Expected.ERROR).after("LOAD")
    return job


def test_a_job_built_in_python_and_read_from_yaml_and_json_files_is_the_same(tmp_path):
    yaml_path = tmp_path / "job.yaml"
    yaml_path.write_text(YAML_JOB, encoding="utf-8")
    json_path = tmp_path / "job.json"
    json_path.write_text(json.dumps(JSON_JOB), encoding="utf-8")

    built = python_job()
    from_yaml = load_job_file(yaml_path)
    from_json = load_job_file(json_path)

    assert from_yaml.to_dict() == built.to_dict()
    assert from_json.to_dict() == built.to_dict()
    for job in (built, from_yaml, from_json):
        job.validate(groups={"default"})


def test_the_python_job_has_the_fields_it_was_given_and_the_defaults_for_the_rest():
    data = python_job().to_dict()
    assert data["alert"] == "always" and data["company"] == "ACME"
    assert data["run_at"] == "2030-01-02T03:04:05+01:00"
    extract, load, report = data["tasks"]
    assert extract == {"name": "EXTRACT", "process": "batchjobs.examples.sleep",
                       "kwargs": {"seconds": 0.1}, "group": "default", "company": None,
                       "retries": 2, "ignore_failure": False, "condition": "all",
                       "depends_on": []}
    assert load["depends_on"] == [{"task": "EXTRACT", "status": "finished"}]
    assert load["company"] == "OTHER" and load["ignore_failure"] is True
    assert report["condition"] == "any"
    assert report["depends_on"] == [{"task": "EXTRACT", "status": "error"},
                                    {"task": "LOAD", "status": "ended"}]


def test_to_dict_read_back_gives_the_same_job():
    data = python_job().to_dict()
    assert job_from_dict(data).to_dict() == data


def test_after_accepts_a_task_or_a_name_and_defaults_to_ended():
    parent = TaskSpec("P", "batchjobs.examples.noop")
    child = TaskSpec("C", "batchjobs.examples.noop")
    assert child.after(parent) is child
    child.after("Q", "finished")
    assert [d.to_dict() for d in child.depends_on] == [{"task": "P", "status": "ended"},
                                                        {"task": "Q", "status": "finished"}]


def test_an_omitted_alert_is_error_and_words_become_enums():
    job = job_from_dict({"description": "J", "tasks": [
        {"name": "A", "process": "batchjobs.examples.noop", "condition": "any"}]})
    assert job.alert is Alert.ERROR
    assert job.tasks[0].condition is ConditionType.ANY


# -- unknown process ------------------------------------------------------------


@pytest.mark.parametrize("process", [
    "no_such_module_xyz.run",                # no such module
    "no_such_package_xyz.sub.run",           # no such package either
    "os.path.join",                          # module exists, function not @batchable
    "batchjobs.examples.no_such_function",   # module exists, no such name
    "batchjobs.examples",                    # a module, not a process
    "tests.processes.samples.not_marked",    # our own importable, unmarked function
])
def test_an_unknown_process_is_refused_naming_the_task_and_the_process(process):
    with pytest.raises(UnknownProcess) as info:
        one_task("A", process).validate()
    culprit(info.value, UnknownProcess, task="A", field="process", value=process,
            words=(repr(process),))


def test_a_task_without_a_process_is_refused_naming_the_task():
    job = job_from_dict({"description": "J", "tasks": [{"name": "A"}]})
    with pytest.raises(UnknownProcess) as info:
        job.validate()
    culprit(info.value, UnknownProcess, task="A", field="process", value=None)


def test_a_process_name_starting_with_two_dots_is_refused_as_an_unknown_process():
    with pytest.raises(UnknownProcess) as info:
        one_task("A", "..examples.noop").validate()
    culprit(info.value, UnknownProcess, task="A", field="process", value="..examples.noop")


# -- names and conditions ---------------------------------------------------------


def test_a_duplicate_task_name_is_refused_naming_the_task():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop")
    job.add_task("A", "batchjobs.examples.sleep")
    with pytest.raises(DuplicateTask) as info:
        job.validate()
    culprit(info.value, DuplicateTask, task="A", field="name", value="A")


def test_a_condition_on_a_task_not_in_the_job_is_refused_naming_both_tasks():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=["A", ("GHOST", "ended")])
    with pytest.raises(UnknownDependency) as info:
        job.validate()
    culprit(info.value, UnknownDependency, task="B", field="depends_on", value="GHOST",
            words=("'GHOST'",))


def test_two_conditions_on_the_same_parent_are_refused_naming_the_parent():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=[("A", "ended"), ("A", "error")])
    with pytest.raises(InvalidValue) as info:
        job.validate()
    culprit(info.value, InvalidValue, task="B", field="depends_on", value="A", words=("'A'",))


def test_a_two_task_cycle_is_refused_listing_the_cycle():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop", depends_on=["B"])
    job.add_task("B", "batchjobs.examples.noop", depends_on=["A"])
    with pytest.raises(DependencyCycle) as info:
        job.validate()
    exc = info.value
    assert exc.cycle == ["A", "B", "A"]
    assert (exc.task, exc.field) == ("A", "depends_on")
    assert "A -> B -> A" in str(exc)


def test_a_longer_cycle_behind_an_acyclic_start_is_refused_listing_only_the_cycle():
    job = JobSpec("J")
    job.add_task("START", "batchjobs.examples.noop")
    job.add_task("X", "batchjobs.examples.noop", depends_on=["START", "Z"])
    job.add_task("Y", "batchjobs.examples.noop", depends_on=["X"])
    job.add_task("Z", "batchjobs.examples.noop", depends_on=["Y"])
    job.add_task("END", "batchjobs.examples.noop", depends_on=["Z"])
    with pytest.raises(DependencyCycle) as info:
        job.validate()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["X", "Y", "Z"]
    assert " -> ".join(cycle) in str(info.value)


def test_a_task_that_depends_on_itself_is_a_cycle():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop").after("A")
    with pytest.raises(DependencyCycle) as info:
        job.validate()
    assert info.value.cycle == ["A", "A"]
    assert "A -> A" in str(info.value)


# -- status, condition and alert words ------------------------------------------------


def test_a_bad_status_word_in_depends_on_is_refused_naming_the_task_and_the_word():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop")
    with pytest.raises(InvalidValue) as info:
        job.add_task("B", "batchjobs.examples.noop", depends_on=[("A", "done")])
    culprit(info.value, InvalidValue, task="B", field="depends_on.status", value="done",
            words=("'done'", "ended | error | finished"))


def test_after_refuses_a_bad_status_word():
    task = TaskSpec("B", "batchjobs.examples.noop")
    with pytest.raises(InvalidValue) as info:
        task.after("A", "success")
    culprit(info.value, InvalidValue, task="B", field="depends_on.status", value="success",
            words=("'success'",))
    assert task.depends_on == []


def test_a_bad_status_word_in_a_file_is_refused_naming_the_task_and_the_word():
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "tasks": [
            {"name": "A", "process": "batchjobs.examples.noop"},
            {"name": "B", "process": "batchjobs.examples.noop",
             "depends_on": [{"task": "A", "status": "ok"}]}]})
    culprit(info.value, InvalidValue, task="B", field="depends_on.status", value="ok",
            words=("'ok'",))


@pytest.mark.parametrize("word", ["some", "ALL", "", None])
def test_a_bad_condition_word_is_refused_naming_the_task_and_the_word(word):
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "tasks": [
            {"name": "A", "process": "batchjobs.examples.noop", "condition": word}]})
    culprit(info.value, InvalidValue, task="A", field="condition", value=word,
            words=(repr(word), "all | any"))


@pytest.mark.parametrize("word", ["sometimes", "errors", None])
def test_a_bad_alert_word_is_refused_naming_the_field_and_the_word(word):
    with pytest.raises(InvalidValue) as info:
        JobSpec("J", alert=word)
    culprit(info.value, InvalidValue, task=None, field="alert", value=word,
            words=(repr(word), "always | error | never"))


def test_a_bad_alert_word_in_a_file_is_refused():
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "alert": "loud", "tasks": []})
    culprit(info.value, InvalidValue, task=None, field="alert", value="loud", words=("'loud'",))


# -- kwargs --------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    pytest.param({"seconds": {1, 2}}, id="set"),
    pytest.param({"seconds": datetime(2030, 1, 1, tzinfo=UTC)}, id="datetime"),
    pytest.param({"seconds": date(2030, 1, 1)}, id="date"),
    pytest.param({"seconds": (1, 2)}, id="tuple"),
    pytest.param({"seconds": math.nan}, id="nan"),
    pytest.param({"seconds": math.inf}, id="infinity"),
    pytest.param({"seconds": [1, {"deep": object()}]}, id="object-deep-inside"),
    pytest.param({1: 2}, id="non-string-key"),
])
def test_kwargs_that_are_not_plain_json_are_refused_naming_the_task(kwargs):
    job = one_task("A", "batchjobs.examples.sleep", kwargs=kwargs)
    with pytest.raises(InvalidValue) as info:
        job.validate()
    culprit(info.value, InvalidValue, task="A", field="kwargs", value=repr(kwargs),
            words=("kwargs are not",))


@pytest.mark.parametrize(("process", "kwargs", "word"), [
    ("batchjobs.examples.sleep", {"secs": 1}, "secs"),
    ("batchjobs.examples.noop", {"x": 1}, "'x'"),
    ("batchjobs.examples.flaky", {"ctx": 1}, "'ctx'"),
    ("tests.processes.samples.add", {}, "'a'"),                 # a required argument missing
    ("tests.processes.samples.Report", {"title": "t", "colour": "red"}, "colour"),
])
def test_kwargs_the_process_does_not_accept_are_refused_naming_the_task_and_the_argument(
        process, kwargs, word):
    job = one_task("A", process, kwargs=kwargs)
    # Process.check_kwargs raises the DefinitionError base class itself (no subclass exists
    # for this case), so only that base class is asserted.
    with pytest.raises(DefinitionError) as info:
        job.validate()
    culprit(info.value, type(info.value), task="A", field="kwargs", value=kwargs,
            words=(process, word))


def test_kwargs_the_process_accepts_pass_validation():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.sleep", kwargs={"seconds": 0})
    job.add_task("B", "batchjobs.examples.flaky", kwargs={"failures": 2})
    job.add_task("C", "tests.processes.samples.add", kwargs={"a": 1, "b": 2})
    job.add_task("D", "tests.processes.samples.Report", kwargs={"title": "t"})
    job.validate(groups={"default"})


@pytest.mark.parametrize("kwargs", [[], 0, "", False], ids=["empty-list", "zero", "empty-string",
                                                             "false"])
def test_kwargs_in_a_file_that_are_not_a_mapping_are_refused_even_when_empty(kwargs):
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "tasks": [
            {"name": "A", "process": "batchjobs.examples.noop", "kwargs": kwargs}]})
    culprit(info.value, InvalidValue, task="A", field="kwargs", value=kwargs)


def test_kwargs_in_a_file_that_are_a_non_empty_list_are_refused():
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "tasks": [
            {"name": "A", "process": "batchjobs.examples.noop", "kwargs": [1]}]})
    culprit(info.value, InvalidValue, task="A", field="kwargs", value=[1])


# -- other task fields -------------------------------------------------------------


@pytest.mark.parametrize("retries", [-1, True, "2", 1.5, None])
def test_retries_that_are_not_a_whole_number_from_zero_are_refused_naming_the_task(retries):
    job = one_task("A", retries=retries)
    with pytest.raises(InvalidValue) as info:
        job.validate()
    culprit(info.value, InvalidValue, task="A", field="retries", value=retries)


def test_ignore_failure_that_is_not_a_boolean_is_refused():
    with pytest.raises(InvalidValue) as info:
        one_task("A", ignore_failure="yes").validate()
    culprit(info.value, InvalidValue, task="A", field="ignore_failure", value="yes")


def test_a_task_in_an_unknown_group_is_refused_naming_the_task_and_the_group():
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", group="BG9")
    with pytest.raises(UnknownGroup) as info:
        job.validate(groups={"default"})
    culprit(info.value, UnknownGroup, task="B", field="group", value="BG9", words=("'BG9'",))


def test_groups_are_not_checked_when_the_known_groups_are_not_given():
    one_task("A", group="BG9").validate()


def test_an_empty_description_is_refused():
    job = JobSpec("  ")
    job.add_task("A", "batchjobs.examples.noop")
    with pytest.raises(InvalidValue) as info:
        job.validate()
    culprit(info.value, InvalidValue, task=None, field="description", value="  ")


def test_a_job_without_tasks_is_refused():
    with pytest.raises(InvalidValue) as info:
        JobSpec("J").validate()
    culprit(info.value, InvalidValue, task=None, field="tasks", value=[])


def test_a_task_without_a_name_in_a_file_is_refused():
    with pytest.raises(InvalidValue) as info:
        job_from_dict({"description": "J", "tasks": [{"process": "batchjobs.examples.noop"}]})
    culprit(info.value, InvalidValue, task=None, field="name", value=None, words=("task #1",))


# -- files ---------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "task", "key"), [
    ("description: J\nowner: bob\ntasks:\n  - {name: A, process: batchjobs.examples.noop}\n",
     None, "owner"),
    ("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, retry: 2}\n",
     "A", "retry"),
    ("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop}\n"
     "  - name: B\n    process: batchjobs.examples.noop\n"
     "    depends_on: [{task: A, state: ended}]\n", "B", "state"),
], ids=["job", "task", "condition"])
def test_an_unknown_key_in_a_file_is_refused_naming_the_key(tmp_path, text, task, key):
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(write(tmp_path, "job.yaml", text))
    exc = info.value
    assert type(exc) is MalformedDefinition
    assert (exc.task, exc.field) == (task, key)
    assert repr(key) in str(exc)


def test_an_unknown_key_that_yaml_reads_as_a_boolean_is_refused_naming_the_key(tmp_path):
    text = "description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, on: x}\n"
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(write(tmp_path, "job.yaml", text))
    assert info.value.task == "A"
    assert "True" in str(info.value)


def test_malformed_yaml_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path, "job.yaml", "description: J\ntasks: [\n  {name: A\n")
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(path)
    culprit(info.value, MalformedDefinition, task=None, field="file", value=str(path),
            words=(str(path), "not valid YAML"))


def test_malformed_json_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path, "job.json", '{"description": "J", "tasks": [}')
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(path)
    culprit(info.value, MalformedDefinition, task=None, field="file", value=str(path),
            words=(str(path), "not valid JSON"))


def test_malformed_json_with_an_upper_case_suffix_is_reported_as_json(tmp_path):
    path = write(tmp_path, "JOB.JSON", '{"description": "J", "tasks": [}')
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(path)
    assert "not valid JSON" in str(info.value)


def test_a_missing_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(path)
    culprit(info.value, MalformedDefinition, task=None, field="file", value=str(path),
            words=(str(path),))


def test_a_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: café\ntasks: []\n".encode("latin-1"))
    with pytest.raises(MalformedDefinition) as info:
        load_job_file(path)
    assert info.value.field == "file" and str(path) in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just words\n"],
                         ids=["empty", "list", "scalar"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    with pytest.raises(MalformedDefinition):
        load_job_file(write(tmp_path, "job.yaml", text))


def test_tasks_that_are_not_a_list_are_refused():
    with pytest.raises(MalformedDefinition) as info:
        job_from_dict({"description": "J", "tasks": {"name": "A"}})
    assert info.value.field == "tasks"


# -- run_at ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5)],
                         ids=["string", "datetime"])
def test_run_at_without_an_offset_is_refused(value):
    with pytest.raises(InvalidValue) as info:
        JobSpec("J", run_at=value)
    culprit(info.value, InvalidValue, task=None, field="run_at", value="2030-01-02T03:04:05",
            words=("offset",))


def test_run_at_without_an_offset_in_a_yaml_file_is_refused(tmp_path):
    path = write(tmp_path, "job.yaml", "description: J\nrun_at: 2030-01-02T03:04:05\n"
                 "tasks:\n  - {name: A, process: batchjobs.examples.noop}\n")
    with pytest.raises(InvalidValue) as info:
        load_job_file(path)
    culprit(info.value, InvalidValue, task=None, field="run_at", value="2030-01-02T03:04:05")


@pytest.mark.parametrize("value", ["tomorrow", 1767225600, date(2030, 1, 2)],
                         ids=["words", "number", "date"])
def test_run_at_that_is_not_an_iso_datetime_is_refused(value):
    with pytest.raises(InvalidValue) as info:
        JobSpec("J", run_at=value)
    assert info.value.field == "run_at" and info.value.value == value


@pytest.mark.parametrize(("value", "iso"), [
    ("2030-01-02T03:04:05+01:00", "2030-01-02T03:04:05+01:00"),
    ("2030-01-02T03:04:05Z", "2030-01-02T03:04:05+00:00"),
    (datetime(2030, 1, 2, 3, 4, 5, tzinfo=PLUS_ONE), "2030-01-02T03:04:05+01:00"),
], ids=["offset", "zulu", "aware-datetime"])
def test_run_at_with_an_offset_is_accepted(value, iso):
    job = JobSpec("J", run_at=value)
    job.add_task("A", "batchjobs.examples.noop")
    job.validate()
    assert job.run_at.utcoffset() is not None
    assert job.to_dict()["run_at"] == iso


def test_an_empty_run_at_means_now():
    assert JobSpec("J", run_at="").run_at is None


# -- find_cycle -----------------------------------------------------------------------


def test_find_cycle_finds_none_in_a_diamond():
    assert find_cycle({"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"]}) is None


def test_find_cycle_finds_none_in_an_empty_graph_or_isolated_tasks():
    assert find_cycle({}) is None
    assert find_cycle({"A": [], "B": []}) is None


def test_find_cycle_finds_a_self_loop():
    assert find_cycle({"A": ["A"]}) == ["A", "A"]


def test_find_cycle_lists_a_two_task_cycle_from_its_first_task():
    assert find_cycle({"A": ["B"], "B": ["A"]}) == ["A", "B", "A"]


def test_find_cycle_lists_only_the_cycle_reached_through_acyclic_tasks():
    cycle = find_cycle({"D": ["C"], "C": ["B"], "B": ["A", "E"], "A": [], "E": ["C"]})
    assert cycle == ["C", "B", "E", "C"]


def test_find_cycle_ignores_parents_that_are_not_in_the_graph():
    assert find_cycle({"A": ["GHOST"], "B": ["A"]}) is None


def test_find_cycle_finds_a_cycle_after_an_explored_acyclic_branch():
    # A's first branch (B) is done before the cycle through C is entered.
    parents = {"A": ["B", "C"], "B": [], "C": ["D"], "D": ["C"]}
    assert find_cycle(parents) == ["C", "D", "C"]


def test_the_shipped_job_files_are_valid():
    from pathlib import Path

    shipped = sorted((Path(__file__).resolve().parent.parent / "deploy" / "jobs").glob("*.yaml"))
    assert len(shipped) >= 5
    for path in shipped:
        job = load_job_file(path)
        job.validate(groups={"default"})
    nightly = load_job_file(shipped[[p.name for p in shipped].index("nightly.yaml")])
    assert nightly.recurrence.cron == "0 2 * * 1-5"
    assert nightly.recurrence.timezone == "Europe/Oslo"


def _levels(count: int) -> object:
    """A value ``count`` levels deep, its innermost scalar counted."""
    value: object = 1
    for _ in range(count - 1):
        value = [value]
    return value


@pytest.mark.parametrize("path", ["python", "file"])
def test_kwargs_nested_to_the_limit_pass_and_one_level_more_is_refused(path):
    from batchjobs.definition import MAX_DEPTH
    from batchjobs.errors import MalformedDefinition

    def job(levels: int) -> JobSpec:
        kwargs = {"message": _levels(levels - 1)}     # kwargs itself is a level
        if path == "file":   # a task's kwargs sits at level 4: file > tasks > task > kwargs
            kwargs = {"message": _levels(levels - 4)}
            return job_from_dict({"description": "deep", "tasks": [
                {"name": "A", "process": "batchjobs.examples.manual", "kwargs": kwargs}]})
        spec = JobSpec("deep")
        spec.add_task("A", "batchjobs.examples.manual", kwargs=kwargs)
        return spec

    job(MAX_DEPTH).validate()
    with pytest.raises(MalformedDefinition, match=f"nested more than {MAX_DEPTH}") as refused:
        job(MAX_DEPTH + 1).validate()
    assert refused.value.task == "A"


def test_a_remembered_retry_policy_does_not_stand_for_a_value_of_another_type():
    """Policies are remembered by their values for large jobs: ``1`` passes, ``True``
    (a bool, which Python counts as 1) is still refused after it."""
    accepted = JobSpec("ok")
    accepted.add_task("A", "batchjobs.examples.noop", retries=1, retry_backoff=1)
    accepted.validate()
    refused = JobSpec("bool")
    refused.add_task("A", "batchjobs.examples.noop", retries=1, retry_backoff=True)
    with pytest.raises(InvalidValue) as caught:
        refused.validate()
    culprit(caught.value, InvalidValue, task="A", field="retry_backoff", value=True)
