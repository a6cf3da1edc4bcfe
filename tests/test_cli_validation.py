"""The CLI on an invalid definition: exit 2, the culprit on stderr, nothing half-stored.

Every test runs on its own embedded default (SQLite and the filesystem broker in a fresh
``BATCHJOBS_HOME``); no worker is started, so only held or refused jobs are submitted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from batchjobs.cli import cli

UNSET = ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL", "BATCHJOBS_IMPORTS")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded default for this test only."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BATCHJOBS_HOME", str(home))
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def stored_jobs() -> list[dict]:
    """The jobs stored here; none when nothing made the database at all."""
    listed = run("list", "--json")
    if listed.exit_code == 2 and "no batchjobs database" in listed.stderr:
        return []
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)


NOOP = "{name: A, process: batchjobs.examples.noop}"

# name -> (file name, file text, words the error line must contain)
INVALID = {
    "unknown-process-no-module": (
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: no_such_module_xyz.run}\n",
        ["task 'A'", "'no_such_module_xyz.run'"]),
    "unknown-process-not-batchable": (
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: os.path.join}\n",
        ["task 'A'", "'os.path.join'"]),
    "duplicate-task": (
        "job.yaml", f"description: J\ntasks:\n  - {NOOP}\n  - {NOOP}\n",
        ["task 'A'", "field 'name'"]),
    "unknown-dependency": (
        "job.yaml", f"description: J\ntasks:\n  - {NOOP}\n  - name: B\n"
        "    process: batchjobs.examples.noop\n    depends_on: [{task: GHOST}]\n",
        ["task 'B'", "'GHOST'"]),
    "cycle": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.noop, depends_on: [{task: B}]}\n"
        "  - {name: B, process: batchjobs.examples.noop, depends_on: [{task: A}]}\n",
        ["A -> B -> A"]),
    "bad-status-word": (
        "job.yaml", f"description: J\ntasks:\n  - {NOOP}\n  - name: B\n"
        "    process: batchjobs.examples.noop\n    depends_on: [{task: A, status: done}]\n",
        ["task 'B'", "'done'"]),
    "bad-condition-word": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.noop, condition: some}\n",
        ["task 'A'", "field 'condition'", "'some'"]),
    "bad-alert-word": (
        "job.yaml", f"description: J\nalert: loud\ntasks:\n  - {NOOP}\n",
        ["field 'alert'", "'loud'"]),
    "kwargs-date": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.sleep, kwargs: {seconds: 2030-01-01}}\n",
        ["task 'A'", "field 'kwargs'"]),
    "kwargs-set": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.sleep, kwargs: {seconds: !!set {1, 2}}}\n",
        ["task 'A'", "field 'kwargs'"]),
    "kwargs-nan": (
        "job.json", '{"description": "J", "tasks": [{"name": "A", '
        '"process": "batchjobs.examples.sleep", "kwargs": {"seconds": NaN}}]}',
        ["task 'A'", "field 'kwargs'"]),
    "kwargs-not-accepted": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.sleep, kwargs: {secs: 1}}\n",
        ["task 'A'", "field 'kwargs'", "secs"]),
    "negative-retries": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.noop, retries: -1}\n",
        ["task 'A'", "field 'retries'"]),
    "unknown-group": (
        "job.yaml", "description: J\ntasks:\n"
        "  - {name: A, process: batchjobs.examples.noop, group: BG9}\n",
        ["task 'A'", "field 'group'", "'BG9'"]),
    "unknown-job-key": (
        "job.yaml", f"description: J\nowner: bob\ntasks:\n  - {NOOP}\n", ["'owner'"]),
    "unknown-task-key": (
        "job.json", '{"description": "J", "tasks": [{"name": "A", '
        '"process": "batchjobs.examples.noop", "retry": 2}]}', ["task 'A'", "'retry'"]),
    "malformed-yaml": (
        "job.yaml", "description: J\ntasks: [\n  {name: A\n", ["job.yaml", "YAML"]),
    "malformed-json": (
        "job.json", '{"description": "J", "tasks": [}', ["job.json", "JSON"]),
    "missing-file": (None, None, ["nowhere.yaml"]),
    "run-at-without-offset": (
        "job.yaml", f"description: J\nrun_at: 2030-01-02T03:04:05\ntasks:\n  - {NOOP}\n",
        ["field 'run_at'", "offset"]),
    "empty-description": (
        "job.json", '{"description": "", "tasks": [{"name": "A", '
        '"process": "batchjobs.examples.noop"}]}', ["field 'description'"]),
    "no-tasks": ("job.yaml", "description: J\ntasks: []\n", ["field 'tasks'"]),
    "recurrence-bad-every": (
        "job.yaml", f"description: J\nrecurrence: {{every: 90x}}\ntasks:\n  - {NOOP}\n",
        ["recurrence.every", "90x"]),
    "recurrence-bad-cron": (
        "job.yaml", f"description: J\nrecurrence: {{cron: '61 * * * *'}}\ntasks:\n  - {NOOP}\n",
        ["recurrence.cron", "61 * * * *"]),
    "recurrence-unknown-zone": (
        "job.yaml", f"description: J\nrecurrence: {{every: 1h, timezone: Mars/Base}}\n"
        f"tasks:\n  - {NOOP}\n", ["recurrence.timezone", "Mars/Base"]),
    "recurrence-both": (
        "job.yaml", f"description: J\nrecurrence: {{every: 1h, cron: '0 2 * * *'}}\n"
        f"tasks:\n  - {NOOP}\n", ["recurrence"]),
}

FORMERLY_BUGGY = {
    "yaml-boolean-key": pytest.param(
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: "
        "batchjobs.examples.noop, on: x}\n", ["task 'A'", "True"],
        id="yaml-boolean-key"),
    "process-with-two-leading-dots": pytest.param(
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: ..examples.noop}\n",
        ["task 'A'", "'..examples.noop'"],
        id="process-with-two-leading-dots"),
}


# The retry policy and conditions on other jobs (issue 15).
INVALID.update({
    "retry-delay-not-a-duration": (
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, "
        "retry_delay: soon}\n", ["task 'A'", "retry_delay", "'soon'"]),
    "retry-on-not-a-list": (
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, "
        "retry_on: KeyError}\n", ["task 'A'", "retry_on", "'KeyError'"]),
    "job-retry-backoff-below-1": (
        "job.yaml", f"description: J\nretry_backoff: 0.5\ntasks:\n  - {NOOP}\n",
        ["retry_backoff", "0.5"]),
    "condition-on-unknown-job": (
        "job.yaml", "description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, "
        "depends_on: [{job: 42, status: ended}]}\n", ["task 'A'", "job 42"]),
})

def write_job(tmp_path: Path, file_name: str | None, text: str | None) -> Path:
    if file_name is None:
        return tmp_path / "nowhere.yaml"
    path = tmp_path / file_name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("file_name", "text", "words"),
                         [pytest.param(*case, id=name) for name, case in INVALID.items()]
                         + list(FORMERLY_BUGGY.values()))
def test_submitting_an_invalid_file_exits_2_names_the_culprit_and_stores_nothing(
        home, tmp_path, file_name, text, words):
    path = write_job(tmp_path, file_name, text)
    result = run("submit", str(path))
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("error: ")
    for word in words:
        assert word in first_line, f"{word!r} not in {first_line!r}"
    assert stored_jobs() == []


def test_a_malformed_yaml_file_is_reported_in_one_line(home, tmp_path):
    path = write_job(tmp_path, "job.yaml", "description: J\ntasks: [\n  {name: A\n")
    result = run("submit", str(path))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_submitting_a_file_that_is_not_utf8_exits_2(home, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: café\ntasks: []\n".encode("latin-1"))
    result = run("submit", str(path))
    assert result.exit_code == 2, (result.exit_code, result.exception)
    assert "latin1.yaml" in result.stderr


def test_status_of_an_unknown_job_exits_2_naming_the_id(home):
    assert run("db", "upgrade").exit_code == 0
    result = run("status", "999", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "999" in result.stderr


def test_a_held_job_prints_its_id_alone_and_its_tasks_wait(home, tmp_path):
    path = write_job(tmp_path, "job.yaml", "description: HELD\ntasks:\n"
                     "  - {name: A, process: batchjobs.examples.noop}\n"
                     "  - {name: B, process: batchjobs.examples.noop, depends_on: [{task: A}]}\n"
                     "  - {name: C, process: batchjobs.examples.fail, condition: any,\n"
                     "     depends_on: [{task: A, status: error}, {task: B}]}\n")
    submitted = run("submit", str(path), "--hold", "--user", "alice")
    assert submitted.exit_code == 0, submitted.output
    assert submitted.stdout.strip().isdigit()
    job_id = int(submitted.stdout)
    assert submitted.stdout == f"{job_id}\n"

    shown = run("status", str(job_id), "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert (data["id"], data["description"], data["status"], data["created_by"]) == \
        (job_id, "HELD", "hold", "alice")
    assert {t["name"]: t["status"] for t in data["tasks"]} == {"A": "waiting", "B": "waiting",
                                                               "C": "waiting"}
    assert [(j["id"], j["status"]) for j in stored_jobs()] == [(job_id, "hold")]


def test_the_command_exits_2_on_a_cycle_and_prints_the_cycle(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    path = write_job(tmp_path, "cycle.yaml", INVALID["cycle"][1])
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["BATCHJOBS_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-c", "from batchjobs.cli import main; main()", "submit", str(path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "A -> B -> A" in result.stderr
    assert "Traceback" not in result.stderr


def test_users_history_and_alerts_from_the_cli(home, tmp_path):
    added = run("user", "add", "alice", "--email", "alice@example.test")
    assert added.exit_code == 0, added.output
    bad = run("user", "add", "bob", "--email", "not-an-address")
    assert bad.exit_code == 2 and "not-an-address" in bad.stderr
    assert json.loads(run("user", "list", "--json").stdout) == [
        {"name": "alice", "email": "alice@example.test", "role": "user", "password_set": False,
         "tokens": 0, "disabled": False, "disabled_at": None}]

    path = tmp_path / "job.yaml"
    path.write_text("description: nightly\nrecurrence: {cron: '0 2 * * *', timezone: "
                    f"Europe/Oslo, end_after: 3}}\ntasks:\n  - {NOOP}\n")
    submitted = run("submit", str(path), "--hold", "--user", "alice")
    assert submitted.exit_code == 0, submitted.output
    job_id = int(submitted.stdout)
    runs = json.loads(run("history", str(job_id), "--json").stdout)
    assert [(r["number"], r["status"], r["kind"]) for r in runs] == [(1, "hold", "scheduled")]
    assert runs[0]["scheduled_at"].endswith(("T00:00:00Z", "T01:00:00Z"))   # 02:00 in Oslo
    shown = json.loads(run("status", str(job_id), "--json").stdout)
    assert shown["recurrence"]["cron"] == "0 2 * * *" and shown["run"] == 1
    assert json.loads(run("alerts", "--json").stdout) == []
    assert run("history", "999").exit_code == 2
    refused = run("release", "999")
    assert refused.exit_code == 2 and "999" in refused.stderr
    refused = run("hold", str(job_id))
    assert refused.exit_code == 2 and "hold" in refused.stderr


def test_the_coordinator_command_starts_due_jobs_with_no_server_running(home, tmp_path):
    """The timers without a batch server: a due job starts (its task becomes ready and is
    queued), then SIGTERM stops the coordinator cleanly."""
    import signal
    import time

    path = tmp_path / "job.yaml"
    path.write_text(f"description: later\nrun_at: '2020-01-01T00:00:00Z'\ntasks:\n  - {NOOP}\n")
    submitted = run("submit", str(path), "--hold")
    job_id = int(submitted.stdout)
    assert run("release", str(job_id)).exit_code == 0      # due at once: release starts it
    assert json.loads(run("status", str(job_id), "--json").stdout)["status"] == "executing"
    path.write_text("description: soon\nrun_at: '" + (
        datetime.now(UTC) + timedelta(seconds=1)).isoformat() + f"'\ntasks:\n  - {NOOP}\n")
    soon = int(run("submit", str(path)).stdout)
    assert json.loads(run("status", str(soon), "--json").stdout)["status"] == "waiting"
    proc = subprocess.Popen([sys.executable, "-c", "from batchjobs.cli import main; main()",
                             "coordinator"], env=dict(os.environ), cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while json.loads(run("status", str(soon), "--json").stdout)["status"] != "executing":
            assert time.monotonic() < deadline, "the coordinator did not start the due job"
            time.sleep(0.05)
        shown = json.loads(run("status", str(soon), "--json").stdout)
        assert shown["tasks"][0]["status"] == "ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.parametrize("args", [("status", "1"), ("list",), ("wait", "1"), ("history", "1"),
                                  ("server", "list"), ("group", "list"), ("alerts",),
                                  ("attempts", "1"), ("log", "1")])
def test_a_command_that_reads_never_creates_the_embedded_database(home, args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert f"no batchjobs database at sqlite:///{home / 'batchjobs.db'}" in result.output
    assert "BATCHJOBS_HOME" in result.output and "Traceback" not in result.output
    assert not (home / "batchjobs.db").exists()
