"""Completions of one job lock rows in one order (the task, its dependents, then the
job's counters: ``batchjobs.counters``), so two threads finishing tasks of one job never
deadlock. JOB 1's shape mixes both ways of recording a success (TASK 2 and TASK 3 have a
dependent that expects ``error``: a transaction; TASK 4 the one-statement success), and
TASK 3 and TASK 4 finish side by side and share TASK 7. Asserted from the server's log:
a deadlock makes PostgreSQL abort one statement, which the server logs as it retries."""

from __future__ import annotations

import pytest

import batchjobs
from batchjobs.examples import job1
from tests.integration.test_faults import serve

pytestmark = [pytest.mark.integration,
              pytest.mark.parametrize("backend", ["redis-pg"], indirect=True)]


def test_completions_of_one_job_side_by_side_never_deadlock(backend, own_database,
                                                           start_server):
    server, group = serve(start_server, "Locks", threads=2)
    jobs = []
    for _ in range(30):
        job = job1(seconds=0)
        for task in job.tasks:
            task.group = group
        jobs.append(batchjobs.submit(job))
    for job_id in jobs:
        assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "deadlock" not in log, [line for line in log.splitlines() if "deadlock" in line]
    assert "retrying" not in log
