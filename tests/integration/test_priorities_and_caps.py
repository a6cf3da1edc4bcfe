"""Priorities and concurrency caps on real batch servers, read from the attempt rows.

Each test runs its own servers on a group of its own, so the session's Batch1/Batch2
(which serve ``default``) never take its tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import batchjobs
from batchjobs import JobSpec, store
from batchjobs.groups import add_group, set_group, show_group
from batchjobs.models import Task
from batchjobs.servers import show_server
from tests.helpers import by_name, max_overlap, wait_for, when

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def sleeps(description: str, count: int, seconds: float, *, group: str, prefix: str,
           **job: object) -> JobSpec:
    spec = JobSpec(description, **job)  # type: ignore[arg-type]
    for n in range(count):
        spec.add_task(f"{prefix}{n:02d}", "batchjobs.examples.sleep",
                      kwargs={"seconds": seconds}, group=group)
    return spec


def starts(job_id: int) -> dict[str, datetime]:
    return {a["task"]: when(a["started_at"]) for a in batchjobs.attempts(job_id)}


def intervals(*job_ids: int) -> list[tuple[datetime, datetime]]:
    return [(when(a["started_at"]), when(a["ended_at"]))
            for job_id in job_ids for a in batchjobs.attempts(job_id)]


def executing(job_id: int) -> int:
    return sum(t["status"] == "executing" for t in batchjobs.status(job_id)["tasks"])


def finished(job_id: int, timeout: float = 120) -> dict:
    assert batchjobs.wait(job_id, timeout=timeout) is not None, f"job {job_id} did not finish"
    return batchjobs.status(job_id)


def beats_after(server: str, instant: datetime, count: int = 2) -> None:
    """Wait until ``server`` has beaten ``count`` times since ``instant``: its housekeeper
    has fed its queues several times meanwhile (it does so every tick, 4 per beat)."""
    seen: set[str] = set()

    def beaten() -> bool:
        beat = show_server(server)["heartbeat_at"]
        if beat and when(beat) > instant:
            seen.add(beat)
        return len(seen) >= count

    wait_for(beaten, timeout=60, message=f"{server} beats {count} times")


# -- priorities -----------------------------------------------------------------------


@pytest.mark.parametrize("depth", ["1000", "3"])
def test_a_high_job_submitted_after_a_low_one_starts_before_the_rest_of_it(
        backend, start_server, monkeypatch, depth):
    """1 thread; 20 low tasks queued (depth 1000: all on the broker; depth 3: most left
    in the database for the feeders, and half the high job too), then a high job: its
    tasks start next."""
    monkeypatch.setenv("BATCHJOBS_QUEUE_DEPTH", depth)
    group = f"prio{depth}"
    add_group(group)
    start_server(f"Prio{depth}", groups=[group], threads=1)
    low = batchjobs.submit(sleeps("low", 20, 0.15, group=group, prefix="L",
                                  priority="low"))
    wait_for(lambda: executing(low) == 1, timeout=60, message="the low job runs")
    high = batchjobs.submit(sleeps("high", 6, 0.05, group=group, prefix="H",
                                   priority="high"))
    submitted = datetime.now(UTC)
    finished(high)
    low_status = finished(low)
    assert low_status["status"] == "ended"
    high_starts = sorted(starts(high).values())
    low_starts = starts(low)
    # One low task may have been taken by the thread as the high job was published; with
    # a shallow queue, the high tasks left in the database wait for the low messages
    # already on the broker (at most the depth), not for the low backlog behind them.
    allowed = 1 if depth == "1000" else 1 + int(depth)
    passed = [t for t, s in low_starts.items() if submitted < s < high_starts[-1]]
    assert len(passed) <= allowed, f"low tasks {passed} started before the high job's last"
    assert sum(s > high_starts[-1] for s in low_starts.values()) >= 15
    assert low_status["priority"] == "low"
    assert {t["priority"] for t in batchjobs.status(high)["tasks"]} == {"high"}


def test_a_task_may_run_at_another_priority_than_its_job(backend, start_server):
    group = "priotask"
    add_group(group)
    start_server("PrioTask", groups=[group], threads=1)
    blocker = batchjobs.submit(sleeps("blocker", 1, 1.0, group=group, prefix="B"))
    wait_for(lambda: executing(blocker) == 1, timeout=60, message="the blocker runs")
    job = sleeps("mixed", 6, 0.05, group=group, prefix="T")
    job.tasks[4].priority = "critical"
    job.tasks[5].priority = "high"
    job_id = batchjobs.submit(job)
    status = finished(job_id)
    order = sorted(starts(job_id), key=starts(job_id).__getitem__)
    assert order[:2] == ["T04", "T05"]
    assert order[2:] == ["T00", "T01", "T02", "T03"]      # equal priorities: first ready first
    assert by_name(status)["T04"]["priority"] == "critical"
    assert by_name(status)["T00"]["priority"] == "normal"


def test_a_low_task_waiting_behind_a_stream_of_high_ones_rises_until_it_runs(
        backend, start_server):
    """No starvation: a chain of high tasks makes a new high task ready every hop; with
    aging every second, the low task rises to critical and passes the rest of the chain."""
    group = "aging"
    add_group(group)
    start_server("Aging", groups=[group], threads=1, env={"BATCHJOBS_PRIORITY_AGING": "1"})
    chain = JobSpec("high stream", priority="high")
    previous = None
    for n in range(40):
        task = chain.add_task(f"H{n:02d}", "batchjobs.examples.sleep",
                              kwargs={"seconds": 0.25}, group=group)
        if previous is not None:
            task.after(previous)
        previous = task
    stream = batchjobs.submit(chain)
    wait_for(lambda: executing(stream) == 1, timeout=60, message="the chain runs")
    low = batchjobs.submit(sleeps("starving", 1, 0.0, group=group, prefix="L",
                                  priority="low"))
    low_status = finished(low, timeout=180)
    finished(stream, timeout=180)
    low_start = starts(low)["L00"]
    chain_starts = sorted(starts(stream).values())
    assert low_start < chain_starts[-1], "the low task waited for the whole chain"
    later = [s for s in chain_starts if s > low_start]
    assert len(later) >= 5
    task = by_name(low_status)["L00"]
    # Risen to the stream's rank (then first ready first: it was ready before the next
    # link) or above it.
    assert task["priority"] == "low" and task["effective_priority"] in ("high", "critical")


# -- concurrency caps -----------------------------------------------------------------


def test_a_job_capped_at_two_never_runs_more_than_two_on_four_free_threads(
        backend, start_server):
    group = "capjob"
    add_group(group)
    start_server("CapJob1", groups=[group], threads=2)
    start_server("CapJob2", groups=[group], threads=2)
    job_id = batchjobs.submit(sleeps("capped", 10, 0.3, group=group, prefix="C",
                                     max_concurrency=2))
    status = finished(job_id)
    assert status["status"] == "ended"
    assert status["max_concurrency"] == 2
    attempts = batchjobs.attempts(job_id)
    assert len(attempts) == 10 and all(a["outcome"] == "ended" for a in attempts)
    assert max_overlap(intervals(job_id)) == 2
    # An uncapped job on the same threads runs four at once.
    free = batchjobs.submit(sleeps("free", 8, 0.5, group=group, prefix="F"))
    finished(free)
    assert max_overlap(intervals(free)) == 4


def test_a_group_cap_holds_across_jobs_and_servers(backend, start_server):
    group = "capgroup"
    add_group(group)
    set_group(group, max_concurrency=1)
    start_server("CapGroup1", groups=[group], threads=2)
    start_server("CapGroup2", groups=[group], threads=2)
    first = batchjobs.submit(sleeps("one", 4, 0.2, group=group, prefix="A"))
    second = batchjobs.submit(sleeps("two", 4, 0.2, group=group, prefix="B"))
    assert finished(first)["status"] == "ended" and finished(second)["status"] == "ended"
    assert max_overlap(intervals(first, second)) == 1
    assert show_group(group)["max_concurrency"] == 1


def test_a_paused_group_runs_nothing_until_resumed_and_lets_running_tasks_finish(
        backend, start_server):
    group = "pause"
    add_group(group)
    start_server("Pause", groups=[group], threads=2)
    job_id = batchjobs.submit(sleeps("paused", 6, 0.6, group=group, prefix="P"))
    wait_for(lambda: executing(job_id) == 2, timeout=60, message="two tasks run")
    set_group(group, max_concurrency=0)           # live: no restart
    paused_at = datetime.now(UTC)
    wait_for(lambda: executing(job_id) == 0, timeout=60, message="running tasks finish")
    beats_after("Pause", datetime.now(UTC))
    status = batchjobs.status(job_id)
    ran = {t["name"] for t in status["tasks"] if t["status"] == "ended"}
    assert len(ran) == 2
    assert {t["status"] for t in status["tasks"] if t["name"] not in ran} == {"ready"}
    assert all(s < paused_at for s in starts(job_id).values())
    assert show_group(group)["max_concurrency"] == 0

    set_group(group, max_concurrency="none")
    resumed_at = datetime.now(UTC)
    assert finished(job_id)["status"] == "ended"
    later = {t: s for t, s in starts(job_id).items() if t not in ran}
    assert len(later) == 4 and all(s > resumed_at for s in later.values())
    with store.read_session() as session:
        assert session.query(Task).filter(Task.job_id == job_id).count() == 6
