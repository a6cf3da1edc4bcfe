"""Every bad input exits 2 with one line naming its culprit, checked before anything is
stored: deep nesting, NUL bytes and lone surrogates, text longer than its database column,
huge retries, an empty file, a database URL that cannot work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchjobs.definition import MAX_DEPTH, MAX_RETRIES
from tests.test_cli_validation import home, run, stored_jobs  # noqa: F401 - fixture

DEEP = 100_000

pytestmark = pytest.mark.usefixtures("home")   # a fresh embedded default each


def refused(path: Path, *extra: str) -> str:
    """Submit ``path``; assert exit 2, one error line, nothing stored; return the line."""
    result = run("submit", str(path), *extra)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[:2000]
    assert stored_jobs() == []
    return lines[0]


def job_json(tmp_path: Path, task: dict, **job: object) -> Path:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"description": "J", **job,
                                "tasks": [{"process": "batchjobs.examples.noop", **task}]}),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text"), [
    ("deep.json", "[" * DEEP + "]" * DEEP),
    ("deep.yaml", "[" * DEEP + "]" * DEEP),
    ("deep-kwargs.json", '{"description": "J", "tasks": [{"name": "A", "process": '
     '"batchjobs.examples.noop", "kwargs": {"x": ' + "[" * DEEP + "]" * DEEP + "}}]}"),
    ("deep-kwargs.yaml", "description: J\ntasks:\n  - name: A\n    process: "
     "batchjobs.examples.noop\n    kwargs: {x: " + "[" * DEEP + "]" * DEEP + "}\n"),
    ("deep-mapping.yaml", "description: J\ntasks: []\nx: " + "{a: " * DEEP + "1" + "}" * DEEP),
])
def test_a_file_nested_100000_deep_is_refused_in_one_line(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    line = refused(path)
    assert "nested" in line and str(MAX_DEPTH) in line and name in line


def test_kwargs_nested_deeper_than_the_limit_but_parseable_name_the_task(tmp_path):
    nested: object = 1
    for _ in range(MAX_DEPTH + 5):
        nested = [nested]
    line = refused(job_json(tmp_path, {"name": "A", "kwargs": {"x": nested}}))
    assert "task 'A'" in line and f"nested more than {MAX_DEPTH} levels" in line


@pytest.mark.parametrize(("task", "job", "words"), [
    ({"name": "A\u0000B"}, {}, ["field 'name'", "NUL byte", "character 2"]),
    ({"name": "A\ud800"}, {}, ["field 'name'", "lone surrogate (\\ud800)"]),
    ({"name": "A", "group": "de\u0000fault"}, {}, ["task 'A'", "field 'group'", "NUL"]),
    ({"name": "A", "company": "AC\udfffME"}, {}, ["task 'A'", "field 'company'", "surrogate"]),
    ({"name": "A"}, {"description": "night\u0000ly"}, ["field 'description'", "NUL"]),
    ({"name": "N" * 300}, {}, ["field 'name'", "300 characters", "at most 200",
                               "tasks.name"]),
    ({"name": "A", "company": "C" * 150}, {}, ["task 'A'", "field 'company'",
                                               "150 characters", "at most 100",
                                               "tasks.company"]),
    ({"name": "A"}, {"company": "C" * 150}, ["field 'company'", "at most 100",
                                             "jobs.company"]),
    ({"name": "A", "group": "G" * 101}, {}, ["field 'group'", "at most 100",
                                             "tasks.group_name"]),
    ({"name": "A", "retries": 1_000_000_000_000}, {},
     ["task 'A'", "field 'retries'", f"at most {MAX_RETRIES}"]),
])
def test_text_and_numbers_the_database_cannot_hold_are_refused_naming_them(
        tmp_path, task, job, words):
    line = refused(job_json(tmp_path, task, **job))
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"


def test_a_user_longer_than_its_column_is_refused(tmp_path):
    line = refused(job_json(tmp_path, {"name": "A"}), "--hold", "--user", "U" * 300)
    assert "field 'user'" in line and "300 characters" in line and "jobs.created_by" in line


def test_a_user_with_a_nul_byte_is_refused(tmp_path):
    line = refused(job_json(tmp_path, {"name": "A"}), "--hold", "--user", "al\u0000ice")
    assert "field 'user'" in line and "NUL" in line


def test_text_at_the_column_limits_is_stored(tmp_path):
    path = job_json(tmp_path, {"name": "N" * 200, "company": "C" * 100,
                               "retries": MAX_RETRIES})
    result = run("submit", str(path), "--hold", "--user", "U" * 200)
    assert result.exit_code == 0, result.output
    shown = json.loads(run("status", result.stdout.strip(), "--json").stdout)
    assert shown["created_by"] == "U" * 200 and shown["tasks"][0]["name"] == "N" * 200


@pytest.mark.parametrize(("name", "text"), [
    ("empty.yaml", ""), ("empty.json", ""), ("blank.yaml", "\n  \n"),
    ("comments.yaml", "# nothing here yet\n"),
])
def test_an_empty_file_says_the_file_is_empty(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    line = refused(path)
    assert "the file is empty" in line and name in line


@pytest.mark.parametrize(("url", "words"), [
    ("postgresql+psycopg://alice:s3cret@127.0.0.1:5441x/db", ["port '5441x'"]),
    ("postgresql+psycopg://alice:s3cret@127.0.0.1:99999/db", ["port 99999"]),
    ("not a url", ["not a database URL"]),
])
def test_a_database_url_that_cannot_work_exits_2_naming_the_setting(tmp_path, url, words):
    env = {**os.environ, "BATCHJOBS_HOME": str(tmp_path), "BATCHJOBS_DATABASE_URL": url}
    for command in (["status", "1"], ["list"]):
        result = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                                 *command], capture_output=True, check=False, text=True,
                                env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "BATCHJOBS_DATABASE_URL" in result.stderr
        assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
        for word in words:
            assert word in result.stderr
    assert not (tmp_path / "batchjobs.db").exists()


def test_kwargs_nested_100000_deep_from_python_are_refused_naming_the_task():
    from batchjobs import JobSpec, MalformedDefinition

    nested: object = 1
    for _ in range(DEEP):
        nested = [nested]
    job = JobSpec("J")
    job.add_task("A", "batchjobs.examples.noop", kwargs={"x": nested})
    with pytest.raises(MalformedDefinition) as info:
        job.validate()
    assert (info.value.task, info.value.field) == ("A", "kwargs")
