"""No task is lost: a message lost after commit, a server killed while it executes."""

from __future__ import annotations

import os
import re
import signal
from datetime import datetime, timedelta

import pytest

import batchjobs
from batchjobs import JobSpec, clock, store
from batchjobs.coordinator import claim, start_job
from batchjobs.launch import ServerProcess, wait_until_ready
from batchjobs.servers import show_server
from batchjobs.settings import get_settings
from tests.helpers import by_name, statuses, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def test_ready_task_whose_message_was_lost_is_republished_and_runs(servers):
    job = JobSpec("lost message", run_at=clock.now() + timedelta(hours=1))
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", depends_on=["A"])
    job_id = batchjobs.submit(job)
    assert batchjobs.status(job_id)["status"] == "waiting"
    # A crash between the commit and the publish: the tasks are ready, no message exists.
    with store.transaction() as session:
        assert [d.name for d in start_job(session, job_id, 10)] == ["A"]
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED
    assert statuses(batchjobs.status(job_id)) == {"A": "ended", "B": "ended"}
    assert len(batchjobs.attempts(job_id)) == 2


def test_task_of_a_killed_server_ends_error_and_the_job_goes_on(servers, backend):
    doomed = ServerProcess("Doomed", groups=["doomed"], threads=1,
                           log_path=backend.home / "Doomed.log")
    try:
        wait_until_ready([doomed])
        job = JobSpec("killed server")
        job.add_task("long", "batchjobs.examples.sleep", kwargs={"seconds": 60}, group="doomed")
        job.add_task("cleanup", "batchjobs.examples.noop", depends_on=[("long", "finished")])
        job_id = batchjobs.submit(job)
        wait_for(lambda: by_name(batchjobs.status(job_id))["long"]["status"] == "executing",
                 timeout=30, message="long task executing on Doomed")
        os.killpg(doomed.process.pid, signal.SIGKILL)
        assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ERROR
    finally:
        doomed.stop()
    tasks = by_name(batchjobs.status(job_id))
    assert tasks["long"]["status"] == "error"
    assert tasks["long"]["server"] == "Doomed" and "Doomed" in tasks["long"]["error"]
    assert tasks["cleanup"]["status"] == "ended"
    assert tasks["cleanup"]["server"] in {"Batch1", "Batch2"}


def test_job_whose_last_success_was_recorded_by_a_dying_process_is_ended_by_a_housekeeper(
        servers, backend):
    """PostgreSQL records a success without dependents in one autocommit statement and ends
    the job in a second transaction; a process dying in between must not strand the job."""
    if backend.name == "embedded":
        pytest.skip("SQLite records every outcome in one transaction")
    job = JobSpec("last task's process dies", run_at=clock.now() + timedelta(hours=1))
    job.add_task("only", "batchjobs.examples.noop")
    job_id = batchjobs.submit(job)
    with store.transaction() as session:
        (ready,) = start_job(session, job_id, 10)
    claimed = claim(ready.task_id, job_id, "Ghost", settings=get_settings())
    assert claimed is not None and claimed.readied_by_success == ()
    with store.atomic() as (steps, conn):     # the one-step success, as a server records it
        rows = steps.success_at_once(conn, {"p_task": claimed.task_id,
                                            "p_number": claimed.attempt,
                                            "p_now": clock.now(), "p_children": []})
    assert rows is not None and [(r.job_id, r.remaining) for r in rows] == [(job_id, 0)]
    # ... and the process dies here, before end_settled_job.
    assert batchjobs.status(job_id)["status"] == "executing"
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED
    assert statuses(batchjobs.status(job_id)) == {"only": "ended"}
    assert [r["status"] for r in batchjobs.history(job_id)] == ["ended"]


def test_ready_tasks_beyond_the_queue_depth_are_published_as_the_queue_drains(
        start_server, monkeypatch):
    """A job starting with 30 ready tasks publishes 4 (the depth); housekeepers publish the
    rest as the queue drains, and each task runs once."""
    monkeypatch.setenv("BATCHJOBS_QUEUE_DEPTH", "4")
    group = f"deep-{os.getpid()}-{clock.now().timestamp():.0f}"
    server = start_server(f"Feeder-{group}", groups=[group], threads=2,
                          env={"BATCHJOBS_QUEUE_DEPTH": "4"})
    job = JobSpec("wider than the queue")
    for i in range(30):
        job.add_task(f"t{i}", "batchjobs.examples.noop", group=group)
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    attempts = batchjobs.attempts(job_id)
    assert sorted(a["task"] for a in attempts) == sorted(f"t{i}" for i in range(30))
    assert {a["server"] for a in attempts} == {server.name}


def _housekeeper_pids(server: ServerProcess) -> list[int]:
    """Processes the server's log says its housekeeper ran in, oldest first."""
    text = server.log_path.read_text(errors="replace") if server.log_path else ""
    return [int(pid) for pid in re.findall(r"housekeeper of \S+ running in process (\d+)", text)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:     # a zombie is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_server_housekeeper_runs_apart_is_restarted_and_dies_with_its_server(start_server):
    """The housekeeper is a process of its own: killed, it is started again and the
    heartbeat goes on; when the server's main process dies, so does its housekeeper (it
    must not beat for a dead server)."""
    name = f"Keeper-{os.getpid()}-{clock.now().timestamp():.0f}"
    server = start_server(name, groups=[name.lower()], threads=1)
    first = wait_for(lambda: _housekeeper_pids(server), timeout=15,
                     message="housekeeper started")[-1]
    assert first not in (server.process.pid,) and _alive(first)
    os.kill(first, signal.SIGKILL)
    killed_at = clock.now()
    second = wait_for(lambda: [p for p in _housekeeper_pids(server) if p != first], timeout=15,
                      message="housekeeper started again")[-1]
    wait_for(lambda: (beat := show_server(name)["heartbeat_at"]) is not None
             and datetime.fromisoformat(beat) > killed_at, timeout=15,
             message="heartbeat after the housekeeper's restart")
    os.kill(server.process.pid, signal.SIGKILL)     # the main process only
    wait_for(lambda: not _alive(second), timeout=10, message="housekeeper gone with its server")
