"""Instants written by different hosts are compared with the database's clock: a batch
server whose own clock is two minutes off neither starts a job early nor is taken for dead
while it runs a task (PostgreSQL; the embedded default is one host with one clock)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import batchjobs
from batchjobs import JobSpec, clock
from batchjobs.servers import show_server
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

SKEW = 120.0


@pytest.fixture(autouse=True)
def _server_database(backend):
    if backend.name == "embedded":
        pytest.skip("the embedded default is one host: its database clock is that host's")


def test_a_server_whose_clock_runs_ahead_does_not_start_a_job_early(start_server, servers):
    start_server("Ahead", groups=["ahead"], threads=1, env={"BATCHJOBS_CLOCK_OFFSET": str(SKEW)})
    run_at = clock.now() + timedelta(seconds=6)
    job = JobSpec("not before its time", run_at=run_at)
    job.add_task("T", "batchjobs.examples.noop", group="ahead")
    job_id = batchjobs.submit(job)
    # The server's housekeeper sees run_at as two minutes past: by its own clock it would
    # start the job at its next tick. Until run_at the job must stay waiting.
    while clock.now() < run_at - timedelta(seconds=0.5):
        assert batchjobs.status(job_id)["status"] == "waiting"
        time.sleep(0.1)
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED


def test_a_server_whose_clock_runs_behind_is_live_and_keeps_its_task(start_server, servers,
                                                                     tmp_path):
    """The other servers' housekeepers sweep for dead servers every heartbeat (timeout 3 s
    in the tests): heartbeats stamped two minutes late by the server's own clock would make
    it look dead and its task would be failed."""
    start_server("Behind", groups=["behind"], threads=1,
                 env={"BATCHJOBS_CLOCK_OFFSET": str(-SKEW)})
    release = tmp_path / "release"
    job = JobSpec("held by a late clock")
    job.add_task("T", "tests.processes.samples.wait_for_file", kwargs={"path": str(release)},
                 group="behind")
    job_id = batchjobs.submit(job)
    wait_for(lambda: batchjobs.status(job_id)["tasks"][0]["status"] == "executing",
             timeout=60, message="task executing on Behind")
    try:
        beats = set()
        while len(beats) < 4:       # four heartbeats: several sweeps by every housekeeper
            row = show_server("Behind")
            assert row["live"], row
            assert batchjobs.status(job_id)["tasks"][0]["status"] == "executing"
            beats.add(row["heartbeat_at"])
            time.sleep(0.2)
    finally:
        release.touch()
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [a["number"] for a in batchjobs.attempts(job_id)] == [1]
