"""Flower's task list names what runs: each batch task's Celery name is its process, its id
starts with the job and the task, and a failed attempt carries the process's traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

import batchjobs
from batchjobs import JobSpec
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return json.loads(answer.read())
    except OSError:
        return None


@pytest.fixture
def flower(backend, servers, tmp_path):
    if backend.name == "embedded":
        pytest.skip("Flower is run against the production broker")
    port = free_port()
    log = open(tmp_path / "flower.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "batchjobs.app", "flower",
         "--address=127.0.0.1", f"--port={port}"],
        env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "1"}, stdout=log,
        stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: get(port, "/api/workers?refresh=1"), timeout=90,
                 message="Flower answers with the workers")
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_flowers_task_list_names_the_process_job_and_task_and_the_processs_traceback(flower):
    job = JobSpec("seen in Flower")
    job.add_task("watched", "batchjobs.examples.noop")
    job.add_task("broken", "batchjobs.examples.fail", ignore_failure=True)
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED

    def listed() -> dict[str, dict[str, Any]] | None:
        tasks = get(flower, "/api/tasks") or {}
        ours = {uuid: t for uuid, t in tasks.items() if uuid.startswith(f"{job_id}:")}
        final = [t for t in ours.values() if t.get("state") in ("SUCCESS", "FAILURE")]
        return ours if len(final) == 2 else None

    tasks = wait_for(listed, timeout=60, message="both tasks final in Flower")
    by_task = {uuid.split(":")[1]: t for uuid, t in tasks.items()}
    assert (by_task["watched"]["name"], by_task["watched"]["state"]) == (
        "batchjobs.examples.noop", "SUCCESS")
    assert (by_task["broken"]["name"], by_task["broken"]["state"]) == (
        "batchjobs.examples.fail", "FAILURE")
    servers = {a["task"]: a["server"] for a in batchjobs.attempts(job_id)}
    assert by_task["watched"]["worker"].split("@")[0] == servers["watched"]
    assert 'examples.py", line' in by_task["broken"]["traceback"]
    assert "failed on purpose" in by_task["broken"]["traceback"]


def test_flower_lists_each_task_a_chain_ran_as_a_task_of_its_own(
        flower, own_database, start_server, tmp_path):
    from tests.integration.test_chains import COUNT, SHALLOW, attempt_rows, counting_job, submit
    from tests.integration.test_faults import serve

    server, group = serve(start_server, "FlowerChain", env=SHALLOW)
    job_id = submit(counting_job(tmp_path, group, 15), depth=1)
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    messages = [attempts[0][2] for attempts in attempt_rows(job_id).values()]
    assert len(set(messages)) < len(messages)           # some ran in a chain

    def listed() -> dict[str, dict[str, Any]] | None:
        tasks = get(flower, "/api/tasks") or {}
        ours = {uuid: t for uuid, t in tasks.items() if uuid.startswith(f"{job_id}:")
                and t.get("state") == "SUCCESS"}
        return ours if len(ours) == 15 else None

    tasks = wait_for(listed, timeout=60, message="all 15 tasks succeeded in Flower")
    assert {t["name"] for t in tasks.values()} == {COUNT}
    assert {uuid.split(":")[1] for uuid in tasks} == {f"t{i:02}" for i in range(15)}
    assert {t["worker"].split("@")[0] for t in tasks.values()} == {server.name}
