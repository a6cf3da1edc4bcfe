"""Every command that changes state prints the resulting record with --json; run-client on
an unknown job exits 2 like status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_validation import home, run  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("home")


def submit_held(tmp_path: Path) -> int:
    path = tmp_path / "job.yaml"
    path.write_text("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop}\n"
                    "  - {name: B, process: batchjobs.examples.fail, depends_on: [{task: A}]}\n")
    result = run("submit", str(path), "--hold")
    assert result.exit_code == 0, result.output
    return int(result.stdout)


def as_json(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_hold_release_and_cancel_print_the_job_after_the_change(tmp_path):
    job_id = submit_held(tmp_path)
    released = as_json("release", str(job_id))
    assert (released["id"], released["status"]) == (job_id, "executing")
    assert {t["name"]: t["status"] for t in released["tasks"]} == {"A": "ready", "B": "waiting"}
    canceled = as_json("cancel", str(job_id))
    assert (canceled["status"], canceled["stopped"]) == ("canceled", 0)
    assert {t["status"] for t in canceled["tasks"]} == {"canceled"}


def test_hold_prints_the_held_job(tmp_path):
    path = tmp_path / "later.yaml"
    path.write_text("description: later\nrun_at: '2099-01-01T00:00:00Z'\n"
                    "tasks:\n  - {name: A, process: batchjobs.examples.noop}\n")
    job_id = int(run("submit", str(path)).stdout)
    held = as_json("hold", str(job_id))
    assert (held["id"], held["status"], held["description"]) == (job_id, "hold", "later")


def test_rerun_prints_the_job_and_how_many_tasks_run_again(tmp_path):
    job_id = submit_held(tmp_path)
    assert run("cancel", str(job_id)).exit_code == 0
    rerun = as_json("rerun", str(job_id), "--failed")
    assert (rerun["id"], rerun["rerun"], rerun["status"]) == (job_id, 2, "executing")


def test_group_add_prints_the_group_and_whether_it_was_created():
    created = as_json("group", "add", "BG1", "--description", "nightly")
    assert created == {"name": "BG1", "description": "nightly", "servers": [],
                       "unfinished_tasks": 0, "executing_tasks": 0, "max_concurrency": None,
                       "created": True}
    assert as_json("group", "add", "BG1")["created"] is False


def test_server_set_prints_the_server_record():
    row = as_json("server", "set", "AOS1", "--groups", "default", "--threads", "3")
    assert (row["name"], row["groups"], row["threads"], row["live"]) == (
        "AOS1", ["default"], 3, False)


def test_run_client_on_an_unknown_job_exits_2():
    assert run("db", "upgrade").exit_code == 0
    result = run("run-client", "--job", "999999")
    assert result.exit_code == 2
    assert result.stdout == "" and "999999" in result.stderr


def test_without_json_the_commands_still_print_one_line(tmp_path):
    job_id = submit_held(tmp_path)
    assert run("release", str(job_id)).stdout == f"job {job_id} released\n"


def test_status_of_a_recurring_job_says_how_it_recurs(tmp_path):
    path = tmp_path / "nightly.yaml"
    path.write_text("description: nightly\nrecurrence: {cron: '0 2 * * 1-5', timezone: "
                    "Europe/Oslo}\ntasks:\n  - {name: A, process: batchjobs.examples.noop}\n")
    job_id = run("submit", str(path), "--hold").stdout.strip()
    shown = run("status", job_id)
    assert shown.exit_code == 0, shown.output
    assert "recurs: cron 0 2 * * 1-5 in Europe/Oslo, run 1" in shown.stdout
