"""The CLI as a user runs it: real subprocesses against the live backend and servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchjobs.definition import load_job_file
from batchjobs.examples import job1

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "deploy" / "jobs"
TASK_KEYS = {"name", "status", "group", "attempts", "server", "started_at", "ended_at", "error",
             "reason"}


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def submit(path: Path) -> int:
    result = cli("submit", str(path))
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.parametrize("fail", [None, "TASK 1", "TASK 2", "TASK 3"])
def test_shipped_job1_files_match_the_python_definition(fail):
    name = "job1.yaml" if fail is None else f"job1-{fail.lower().replace(' ', '')}-fails.yaml"
    assert load_job_file(JOBS / name).to_dict() == job1(fail=fail, seconds=0.5).to_dict()


def test_submit_prints_the_id_alone_and_status_json_has_every_field(servers):
    job_id = submit(JOBS / "job1-task2-fails.yaml")
    waited = cli("wait", str(job_id), "--timeout", "60")
    assert waited.returncode == 1 and waited.stdout.strip() == "error"
    result = cli("status", str(job_id), "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert {"id", "description", "status", "created_by", "tasks"} <= set(data)
    assert (data["id"], data["description"], data["status"]) == (job_id, "JOB 1", "error")
    assert all(set(task) >= TASK_KEYS for task in data["tasks"])
    assert {t["name"]: t["status"] for t in data["tasks"]} == {
        "TASK 1": "ended", "TASK 2": "error", "TASK 3": "not_run", "TASK 4": "not_run",
        "TASK 5": "ended", "TASK 6": "not_run", "TASK 7": "not_run"}
    task1 = data["tasks"][0]
    assert task1["server"] in {"Batch1", "Batch2"}
    assert task1["started_at"].endswith("Z") and task1["ended_at"] > task1["started_at"]


def test_wait_exits_0_when_the_job_ended(servers, tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"description": "ok", "tasks": [
        {"name": "A", "process": "batchjobs.examples.noop"}]}))
    job_id = submit(path)
    waited = cli("wait", str(job_id), "--timeout", "60")
    assert (waited.returncode, waited.stdout.strip()) == (0, "ended")


def test_wait_exits_124_when_the_job_outlives_the_timeout(servers, tmp_path):
    path = tmp_path / "slow.yaml"
    path.write_text("description: slow\ntasks:\n"
                    "  - {name: A, process: batchjobs.examples.sleep, kwargs: {seconds: 5}}\n")
    job_id = submit(path)
    assert cli("wait", str(job_id), "--timeout", "0.5").returncode == 124
    assert cli("wait", str(job_id), "--timeout", "60").returncode == 0


def test_list_json_shows_the_submitted_job(servers):
    job_id = submit(JOBS / "job1.yaml")
    listed = json.loads(cli("list", "--json").stdout)
    row = next(j for j in listed if j["id"] == job_id)
    assert set(row) == {"id", "description", "status", "created_by", "created_at", "hold_reason"}
    assert row["description"] == "JOB 1"
    assert cli("wait", str(job_id), "--timeout", "60").returncode == 0
