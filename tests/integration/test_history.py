"""Every attempt keeps its traceback and its log (AX's batch job history), shown by
``batchjobs log`` and ``batchjobs attempts --json``; an ordinary task failure is logged by
its server as a warning with the process's traceback, never as an internal error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import batchjobs
from batchjobs import JobSpec
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

ATTEMPT_KEYS = {"task", "number", "server", "user", "company", "started_at", "ended_at",
                "outcome", "error", "traceback", "log"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def failing_job(retries: int = 1) -> int:
    job = JobSpec("history", company="USMF")
    job.add_task("chatty", "tests.processes.samples.chatty_failure", kwargs={"lines": 2},
                 retries=retries)
    job.add_task("fine", "batchjobs.examples.noop")
    job_id = batchjobs.submit(job, user="ann")
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ERROR
    return job_id


def test_log_and_attempts_show_each_attempts_file_line_and_output(servers):
    job_id = failing_job(retries=1)
    listed = cli("attempts", str(job_id), "--task", "chatty", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["number"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row) >= ATTEMPT_KEYS
        assert (row["outcome"], row["user"], row["company"]) == ("error", "ann", "USMF")
        assert row["server"] in servers
        assert 'samples.py", line' in row["traceback"] and "in _look_up" in row["traceback"]
        assert "step 2 of 2 done" in row["log"] and "about to look up the key" in row["log"]
    shown = cli("log", str(job_id), "--task", "chatty", "--attempt", "2")
    assert shown.returncode == 0, shown.stderr
    assert "chatty attempt 2" in shown.stdout and "KeyError: 'missing_key'" in shown.stdout
    assert "on stderr too" in shown.stdout and "chatty attempt 1" not in shown.stdout
    fine = cli("attempts", str(job_id), "--task", "fine", "--json")
    (ok,) = json.loads(fine.stdout)
    assert (ok["outcome"], ok["traceback"], ok["log"]) == ("ended", None, None)


def test_log_of_a_missing_task_or_attempt_exits_2_naming_it(servers):
    job_id = failing_job(retries=0)
    missing_task = cli("log", str(job_id), "--task", "nope")
    assert missing_task.returncode == 2 and "'nope'" in missing_task.stderr
    missing_attempt = cli("log", str(job_id), "--task", "chatty", "--attempt", "9")
    assert missing_attempt.returncode == 2 and "attempt 9" in missing_attempt.stderr
    assert "Traceback" not in missing_task.stderr + missing_attempt.stderr


def test_a_task_failure_is_logged_as_a_warning_with_the_process_traceback(start_server, backend):
    name = "Historian"
    start_server(name, groups=["history"], threads=1)
    job = JobSpec("logged")
    job.add_task("chatty", "tests.processes.samples.chatty_failure", group="history")
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ERROR
    log_path = backend.home / f"{name}.log"

    def logged() -> str | None:
        text = log_path.read_text(errors="replace")
        return text if "in _look_up" in text else None

    text = wait_for(logged, timeout=60, message="the failure in the server's log")
    lines = text.splitlines()
    warnings = [i for i, line in enumerate(lines) if "WARNING" in line and "'chatty'" in line]
    assert warnings, "no warning for the failed task"
    assert not [line for line in lines if "ERROR" in line and "raised unexpected" in line]
    assert not [line for line in lines if "/ERROR/" in line or " ERROR " in line]
