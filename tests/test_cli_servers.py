"""Servers and groups from the CLI, on a fresh embedded default: records, JSON views and
clear errors (exit 2, the culprit named, nothing stored) for bad schedules and removals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_validation import home, run  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def _fresh_home(home: Path) -> Path:
    """Every test here on its own embedded default (``home`` from the validation tests),
    its database made as ``batchjobs db upgrade`` makes it."""
    assert run("db", "upgrade").exit_code == 0
    return home


def servers() -> dict[str, dict]:
    listed = run("server", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return {row["name"]: row for row in json.loads(listed.stdout)}


def test_server_set_stores_groups_threads_schedule_and_zone():
    assert run("group", "add", "BG1", "--description", "nightly").exit_code == 0
    result = run("server", "set", "AOS1", "--groups", "default,BG1", "--threads", "2",
                 "--schedule", "08:00-18:00=2,18:00-07:30=20", "--timezone", "Europe/Oslo",
                 "--json")
    assert result.exit_code == 0, result.output
    row = servers()["AOS1"]
    assert (row["groups"], row["threads"], row["timezone"], row["live"]) == (
        ["BG1", "default"], 2, "Europe/Oslo", False)
    assert row["schedule"] == [{"start": "08:00", "end": "18:00", "threads": 2},
                               {"start": "18:00", "end": "07:30", "threads": 20}]
    assert row["threads_now"] in {0, 2, 20} and row["running"] == 0


@pytest.mark.parametrize(("args", "words"), [
    (["--schedule", "08:00-18:00=2,17:00-20:00=4"], ["overlap", "17:00-20:00=4"]),
    (["--schedule", "25:00-07:00=2"], ["25:00"]),
    (["--schedule", "08:00-18:00=-1"], ["08:00-18:00=-1"]),
    (["--threads", "-1"], ["threads", "-1"]),
    (["--timezone", "Mars/Olympus"], ["timezone", "Mars/Olympus"]),
    (["--groups", "NOPE"], ["NOPE"]),
])
def test_bad_server_settings_exit_2_naming_the_culprit_and_store_nothing(args, words):
    result = run("server", "set", "AOS9", *args)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert "AOS9" not in servers()


def test_a_bad_change_leaves_the_server_as_it_was():
    assert run("server", "set", "AOS1", "--threads", "3").exit_code == 0
    assert run("server", "set", "AOS1", "--threads", "5", "--schedule", "25:00-01:00=1"
               ).exit_code == 2
    row = servers()["AOS1"]
    assert (row["threads"], row["schedule"]) == (3, [])


def test_group_remove_is_refused_while_a_server_or_an_unfinished_task_uses_it(tmp_path):
    assert run("group", "add", "BG1").exit_code == 0
    assert run("server", "set", "AOS2", "--groups", "BG1").exit_code == 0
    refused = run("group", "remove", "BG1")
    assert refused.exit_code == 2 and "AOS2" in refused.stderr, refused.output
    assert run("server", "set", "AOS2", "--groups", "default").exit_code == 0

    job = tmp_path / "job.yaml"
    job.write_text("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, "
                   "group: BG1}\n")
    assert run("submit", str(job), "--hold").exit_code == 0
    refused = run("group", "remove", "BG1")
    assert refused.exit_code == 2 and "BG1" in refused.stderr, refused.output
    groups = json.loads(run("group", "list", "--json").stdout)
    assert "BG1" in {g["name"] for g in groups}


def test_the_default_group_always_exists_and_cannot_be_removed():
    groups = json.loads(run("group", "list", "--json").stdout)
    assert "default" in {g["name"] for g in groups}
    refused = run("group", "remove", "default")
    assert refused.exit_code == 2 and "default" in refused.stderr


def test_unknown_server_is_named():
    result = run("server", "show", "GHOST")
    assert result.exit_code == 2 and "GHOST" in result.stderr
    result = run("server", "remove", "GHOST")
    assert result.exit_code == 2 and "GHOST" in result.stderr
