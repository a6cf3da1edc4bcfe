"""Job lifecycle with real servers: hold/release, cancel while executing, rerun of a
failed branch, client tasks run by hand, recurrence runs one at a time."""

from __future__ import annotations

import itertools
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

import batchjobs
from batchjobs import JobSpec, clock, lifecycle, queues
from batchjobs.errors import InvalidState
from tests.helpers import by_name, statuses, wait_for, when

pytestmark = pytest.mark.integration


def finished(job_id: int, timeout: float = 60) -> dict:
    assert batchjobs.wait(job_id, timeout=timeout) is not None, f"job {job_id} still running"
    return batchjobs.status(job_id)


def quick_job(description: str = "quick") -> JobSpec:
    job = JobSpec(description)
    job.add_task("Q", "batchjobs.examples.noop")
    return job


def test_a_held_job_waits_until_released(servers):
    job = quick_job("held")
    held = batchjobs.submit(job, hold=True)
    other = batchjobs.submit(quick_job("after it"))
    finished(other)
    shown = batchjobs.status(held)
    assert shown["status"] == "hold" and statuses(shown) == {"Q": "waiting"}
    assert batchjobs.attempts(held) == []
    lifecycle.release(held)
    assert finished(held)["status"] == "ended"
    assert [r["status"] for r in batchjobs.history(held)] == ["ended"]


def test_hold_applies_to_waiting_jobs_only(servers):
    job_id = batchjobs.submit(quick_job())
    finished(job_id)
    with pytest.raises(InvalidState, match="only a waiting job"):
        lifecycle.hold(job_id)
    with pytest.raises(InvalidState, match="only a held job"):
        lifecycle.release(job_id)


@pytest.mark.rabbitmq
def test_cancel_stops_executing_tasks_and_starts_no_dependent(servers):
    job = JobSpec("to cancel")
    a = job.add_task("A", "batchjobs.examples.sleep", kwargs={"seconds": 30})
    job.add_task("B", "batchjobs.examples.sleep", kwargs={"seconds": 30})
    job.add_task("C", "batchjobs.examples.noop", depends_on=[(a, "finished")])
    job_id = batchjobs.submit(job)
    wait_for(lambda: statuses(batchjobs.status(job_id))["A"] == "executing"
             and statuses(batchjobs.status(job_id))["B"] == "executing", timeout=30,
             message="A and B executing")
    assert lifecycle.cancel(job_id) == 2
    shown = batchjobs.status(job_id)
    assert shown["status"] == "canceled"
    assert statuses(shown) == {"A": "canceled", "B": "canceled", "C": "canceled"}
    assert {a["task"]: a["outcome"] for a in batchjobs.attempts(job_id)} == {
        "A": "canceled", "B": "canceled"}
    # the servers were really freed: a new job runs long before the sleeps would end
    started = min(when(a["started_at"]) for a in batchjobs.attempts(job_id))
    after = finished(batchjobs.submit(quick_job("after cancel")), timeout=25)
    assert when(after["tasks"][0]["ended_at"]) < started + timedelta(seconds=30)
    assert statuses(batchjobs.status(job_id))["C"] == "canceled"
    assert [a["task"] for a in batchjobs.attempts(job_id)].count("C") == 0
    with pytest.raises(InvalidState, match="already finished"):
        lifecycle.cancel(job_id)


def test_rerun_failed_runs_the_failed_branch_again_and_keeps_history(servers):
    job = JobSpec("rerun")
    a = job.add_task("A", "batchjobs.examples.noop")
    b = job.add_task("B", "batchjobs.examples.flaky", kwargs={"failures": 1}, depends_on=[a])
    job.add_task("C", "batchjobs.examples.noop", depends_on=[(b, "ended")])
    job.add_task("D", "batchjobs.examples.noop", depends_on=[a])
    job_id = batchjobs.submit(job)
    first = finished(job_id)
    assert first["status"] == "error"
    assert statuses(first) == {"A": "ended", "B": "error", "C": "not_run", "D": "ended"}
    with pytest.raises(InvalidState):
        lifecycle.hold(job_id)

    assert lifecycle.rerun(job_id, failed=True) == 2
    second = finished(job_id)
    assert second["status"] == "ended" and second["run"] == 2
    assert statuses(second) == {"A": "ended", "B": "ended", "C": "ended", "D": "ended"}
    runs = [(a["task"], a["number"], a["run"], a["outcome"]) for a in batchjobs.attempts(job_id)]
    assert sorted(runs) == [("A", 1, 1, "ended"), ("B", 1, 1, "error"), ("B", 2, 2, "ended"),
                            ("C", 1, 2, "ended"), ("D", 1, 1, "ended")]
    assert [(r["number"], r["kind"], r["status"]) for r in batchjobs.history(job_id)] == [
        (1, "scheduled", "error"), (2, "rerun", "ended")]


def test_rerun_whole_job_runs_every_task_again(servers):
    job_id = batchjobs.submit(quick_job("twice"))
    finished(job_id)
    with pytest.raises(InvalidState, match="no task ended error"):
        lifecycle.rerun(job_id, failed=True)
    assert lifecycle.rerun(job_id) == 1
    assert finished(job_id)["status"] == "ended"
    assert [a["number"] for a in batchjobs.attempts(job_id)] == [1, 2]


def test_a_client_task_waits_for_run_client_then_the_job_goes_on(servers, backend):
    job = JobSpec("with a manual step")
    first = job.add_task("prepare", "batchjobs.examples.noop")
    manual = job.add_task("sign off", "batchjobs.examples.manual",
                          kwargs={"message": "ledger checked"}, depends_on=[first])
    job.add_task("post", "batchjobs.examples.noop", depends_on=[manual])
    job_id = batchjobs.submit(job)
    wait_for(lambda: statuses(batchjobs.status(job_id))["sign off"] == "ready", timeout=30,
             message="client task ready")
    # a later job runs on the servers meanwhile: they never take the client task
    finished(batchjobs.submit(quick_job("meanwhile")))
    shown = batchjobs.status(job_id)
    assert shown["status"] == "executing"
    assert statuses(shown) == {"prepare": "ended", "sign off": "ready", "post": "waiting"}

    ran = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                          "run-client", "--job", str(job_id)], capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "ledger checked" in ran.stdout and "'sign off': ended" in ran.stdout
    done = finished(job_id)
    assert done["status"] == "ended"
    assert by_name(done)["sign off"]["server"].startswith("client:")


def test_every_2s_with_end_after_3_makes_exactly_three_runs_one_at_a_time(servers):
    job = JobSpec("every 2s", recurrence={"every": "2s", "end_after": 3})
    job.add_task("T", "batchjobs.examples.sleep", kwargs={"seconds": 0.3})
    job_id = batchjobs.submit(job)
    final = finished(job_id, timeout=60)
    assert final["status"] == "ended" and final["run"] == 3
    runs = batchjobs.history(job_id)
    assert [(r["number"], r["status"]) for r in runs] == [(1, "ended"), (2, "ended"),
                                                          (3, "ended")]
    for earlier, later in itertools.pairwise(runs):
        assert when(earlier["ended_at"]) <= when(later["started_at"])
        # on the 2 s grid from the first run (a run slowed down by the machine skips one)
        assert when(later["scheduled_at"]) - when(earlier["scheduled_at"]) == \
            timedelta(seconds=2 * (later["skipped"] + 1))
        assert when(later["started_at"]) >= when(later["scheduled_at"])
    assert len(batchjobs.attempts(job_id)) == 3


def test_occurrences_missed_while_a_run_goes_on_are_skipped_and_counted(servers):
    job = JobSpec("slow every 1s", recurrence={"every": "1s", "end_after": 2})
    job.add_task("T", "batchjobs.examples.sleep", kwargs={"seconds": 2.3})
    job_id = batchjobs.submit(job)
    finished(job_id, timeout=60)
    first, second = batchjobs.history(job_id)
    assert second["skipped"] >= 2
    gap = when(second["scheduled_at"]) - when(first["scheduled_at"])
    assert gap == timedelta(seconds=second["skipped"] + 1)
    assert when(first["ended_at"]) < when(second["scheduled_at"]) <= when(second["started_at"])
    assert len(batchjobs.attempts(job_id)) == 2


def test_racing_schedulers_start_a_due_job_once(servers, backend):
    """Four housekeepers (plus the servers' own) start the same due job at once: one run,
    one message on the queue."""
    import threading

    from batchjobs.app import app
    from batchjobs.coordinator import sweeps
    from batchjobs.groups import add_group
    from batchjobs.housekeeper import Broker
    from batchjobs.settings import get_settings

    group = f"race-{uuid.uuid4().hex[:6]}"            # no server serves it: nothing runs
    add_group(group)
    job = JobSpec("due once", run_at=clock.now() + timedelta(seconds=1))
    job.add_task("T", "batchjobs.examples.noop", group=group)
    job_id = batchjobs.submit(job)
    keepers = [Broker(app) for _ in range(4)]
    barrier = threading.Barrier(len(keepers))
    wait_for(lambda: clock.now() >= job.run_at, timeout=5, message="due")

    def start(keeper: Broker) -> None:
        barrier.wait()
        sweeps.start_due_jobs(get_settings(), keeper)

    threads = [threading.Thread(target=start, args=(k,)) for k in keepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    wait_for(lambda: batchjobs.status(job_id)["status"] == "executing", timeout=10,
             message="job started")
    assert [r["number"] for r in batchjobs.history(job_id)] == [1]
    assert keepers[0].queue_length(queues.queue_name(group)) == 1
    lifecycle.cancel(job_id)
