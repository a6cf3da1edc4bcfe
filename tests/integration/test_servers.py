"""Batch servers: plain Celery workers, group affinity, run_at, task events for Flower."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

import batchjobs
from batchjobs import JobSpec, clock
from batchjobs.app import app
from batchjobs.launch import ServerProcess, wait_until_ready
from tests.helpers import by_name, wait_for, when

pytestmark = pytest.mark.integration


class PlainCeleryServer(ServerProcess):
    """A batch server started with plain ``celery -A batchjobs.app worker``."""

    def __init__(self, name: str, group: str, log_path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.started_at = clock.now()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "batchjobs.app", "worker",
             "-n", f"{name}@%h", "-Q", f"batch.{group}", "-c", "1",
             "--without-mingle", "--without-gossip", "-l", "INFO"],
            env=dict(os.environ), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)


def test_plain_celery_worker_serves_its_group_and_only_its_group_runs_there(servers, backend):
    plain = PlainCeleryServer("Plain", "plain", backend.home / "Plain.log")
    try:
        wait_until_ready([plain])
        job = JobSpec("affinity")
        for i in range(3):
            job.add_task(f"plain {i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.2},
                         group="plain")
            job.add_task(f"default {i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.2})
        job_id = batchjobs.submit(job)
        assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    finally:
        plain.stop()
    tasks = by_name(batchjobs.status(job_id))
    assert {tasks[f"plain {i}"]["server"] for i in range(3)} == {"Plain"}
    assert {tasks[f"default {i}"]["server"] for i in range(3)} <= {"Batch1", "Batch2"}


def test_job_with_run_at_waits_then_starts_on_its_own(servers):
    run_at = clock.now() + timedelta(seconds=1.5)
    job = JobSpec("later", run_at=run_at)
    job.add_task("A", "batchjobs.examples.noop")
    job_id = batchjobs.submit(job)
    assert batchjobs.status(job_id)["status"] == "waiting"
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED
    started = when(batchjobs.status(job_id)["started_at"])
    assert run_at <= started < run_at + timedelta(seconds=3)   # housekeeper ticks every 0.5 s


def test_workers_send_task_events_naming_job_task_process_and_server(servers):
    events: list[dict] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": events.append})
        thread = threading.Thread(target=receiver.capture,
                                  kwargs={"limit": None, "timeout": None, "wakeup": False},
                                  daemon=True)
        thread.start()
        try:
            wait_for(lambda: any(e["type"] == "worker-heartbeat" for e in events),
                     timeout=30, message="event receiver bound")
            job = JobSpec("events")
            job.add_task("watched", "batchjobs.examples.noop")
            job.add_task("broken", "batchjobs.examples.fail", ignore_failure=True)
            job_id = batchjobs.submit(job)
            assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED

            def received(task: str) -> list[dict]:
                return [e for e in events if e["type"] == "task-received"
                        and f"'job': {job_id}" in e.get("kwargs", "")
                        and f"'task': '{task}'" in e.get("kwargs", "")]

            def outcome(kind: str, uuid: str) -> list[dict]:
                return [e for e in events if e["type"] == kind and e["uuid"] == uuid]

            event = wait_for(lambda: received("watched"), timeout=15, message="received")[0]
            done = wait_for(lambda: outcome("task-succeeded", event["uuid"]), timeout=15,
                            message="task-succeeded event")[0]
            broken = wait_for(lambda: received("broken"), timeout=15, message="received")[0]
            failed = wait_for(lambda: outcome("task-failed", broken["uuid"]), timeout=15,
                              message="task-failed event")[0]
        finally:
            receiver.should_stop = True
            thread.join(10)
    assert event["name"] == "batchjobs.examples.noop"        # the process, as Flower lists it
    assert event["uuid"].startswith(f"{job_id}:watched:")     # job and task, in the task id
    assert "'task': 'watched'" in event["kwargs"]
    assert done["hostname"].split("@")[0] == by_name(batchjobs.status(job_id))["watched"]["server"]
    assert "failed on purpose" in failed["exception"]
