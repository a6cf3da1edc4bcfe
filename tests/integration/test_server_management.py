"""Batch servers managed from one place, with real worker processes: schedules, live
changes, affinity (the AX walkthrough "Batch processing with batch groups")."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import batchjobs
from batchjobs import JobSpec, clock
from batchjobs.groups import add_group
from batchjobs.servers import list_servers, set_server, show_server
from tests.helpers import by_name, max_overlap, wait_for, when

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

OSLO = ZoneInfo("Europe/Oslo")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def applied(name: str) -> dict | None:
    return show_server(name)["applied"]


def wait_applied(name: str, *, threads: int, groups: list[str] | None = None) -> None:
    def done() -> bool:
        state = applied(name)
        return bool(state) and state["threads"] == threads and (
            groups is None or sorted(state["groups"]) == sorted(groups))
    wait_for(done, timeout=10, message=f"{name} applies {threads} thread(s) {groups or ''}")


def start_ahead(start_server, prefix: str, *, reaches: datetime, lead: float, margin: float,
                **options):
    """Start a server whose schedule clock reads ``reaches`` ``lead`` seconds from now.

    A server that took so long to start (or to report what it applies) that less than
    ``margin`` seconds of the lead are left is stopped and another started, with a new
    offset: a slow machine must not turn a schedule test into a race. Returns the server
    and the real instant its clock reads ``reaches``."""
    for _ in range(3):
        opens = clock.now() + timedelta(seconds=lead)
        server = start_server(unique(prefix), offset=(reaches - opens).total_seconds(), **options)
        wait_for(lambda server=server: applied(server.name) is not None, timeout=15,
                 message=f"{server.name} reports what it applies")
        if clock.now() < opens - timedelta(seconds=margin):
            return server, opens
        server.stop()
    pytest.fail(f"three servers took more than {lead - margin} s to start")


def submit_sleepers(group: str, count: int, seconds: float, name: str = "t") -> int:
    job = JobSpec(f"{count} sleepers in {group}")
    for i in range(count):
        job.add_task(f"{name}{i}", "batchjobs.examples.sleep", kwargs={"seconds": seconds},
                     group=group)
    return batchjobs.submit(job)


def intervals(job_id: int, server: str | None = None) -> list[tuple[datetime, datetime]]:
    return [(when(a["started_at"]), when(a["ended_at"])) for a in batchjobs.attempts(job_id)
            if a["ended_at"] and (server is None or a["server"] == server)]


def test_threads_follow_the_schedule_across_window_boundaries(start_server):
    """1 thread until 18:00 Oslo, 3 until 18:00:07, then none: 1 -> 3 -> 0."""
    group = unique("sched")
    today = datetime.now(OSLO).date()
    eighteen = datetime(today.year, today.month, today.day, 18, tzinfo=OSLO)
    server, opens = start_ahead(start_server, "S", reaches=eighteen, lead=8, margin=3,
                                groups=[group], threads=1, timezone="Europe/Oslo",
                                schedule="08:00-18:00=1,18:00-18:00:07=3")
    closes = opens + timedelta(seconds=7)            # 18:00:07 on the server's clock
    job_id = submit_sleepers(group, 24, 2.0)
    wait_for(lambda: clock.now() > closes + timedelta(seconds=3), timeout=30,
             message="past the closing boundary", interval=0.2)
    wait_for(lambda: sum(t["status"] == "executing" for t in batchjobs.status(job_id)["tasks"])
             == 0, timeout=30, message="running tasks finish after the window closes")
    runs = intervals(job_id, server.name)
    margin = timedelta(seconds=1.5)                  # controller tick + remote control
    before = [r for r in runs if r[0] < opens]
    inside = [r for r in runs if opens + margin <= r[0] < closes]
    after = [r for r in runs if r[0] >= closes + margin]
    assert before and max_overlap([r for r in runs if r[0] < opens - margin]) == 1
    assert max_overlap(inside + [r for r in runs if r[0] < opens and r[1] > opens + margin]) == 3
    assert after == []
    statuses = [t["status"] for t in batchjobs.status(job_id)["tasks"]]
    assert statuses.count("ready") > 0 and "error" not in statuses


def test_a_window_starting_in_the_spring_forward_gap_starts_at_the_first_instant_after_it(
        start_server):
    """Europe/Oslo 2027-03-28: 02:00 jumps to 03:00, so a 02:30 window opens at 03:00."""
    group = unique("dst")
    gap_end = datetime(2027, 3, 28, 1, 0, tzinfo=ZoneInfo("UTC"))   # 03:00 local, after the gap
    server, opens = start_ahead(start_server, "D", reaches=gap_end, lead=6, margin=1,
                                groups=[group], threads=1, timezone="Europe/Oslo",
                                schedule="02:30-05:00=2")
    assert applied(server.name)["threads"] == 0      # 01:59:5x: the window is not open yet
    job_id = submit_sleepers(group, 4, 1.0)
    assert batchjobs.wait(job_id, timeout=40) is batchjobs.JobStatus.ENDED
    runs = intervals(job_id)
    assert min(start for start, _ in runs) >= opens
    assert max_overlap(runs) == 2


def test_a_live_change_of_threads_and_groups_reaches_the_running_server(start_server):
    first, second = unique("g1"), unique("g2")
    name = unique("L")
    start_server(name, groups=[first], threads=1)
    changed = clock.now()
    set_server(name, threads=3)
    wait_applied(name, threads=3)
    assert clock.now() - changed < timedelta(seconds=8)   # ticks every 0.5 s: seconds, not minutes
    job_id = submit_sleepers(first, 6, 1.0)
    assert batchjobs.wait(job_id, timeout=40) is batchjobs.JobStatus.ENDED
    runs = intervals(job_id)
    assert max_overlap(runs) == 3
    # six one-second tasks, three at a time: two rounds, not six
    assert max(end for _, end in runs) - min(start for start, _ in runs) < timedelta(seconds=5)

    set_server(name, threads=1)
    wait_applied(name, threads=1)
    job_id = submit_sleepers(first, 3, 0.5)
    assert batchjobs.wait(job_id, timeout=40) is batchjobs.JobStatus.ENDED
    assert max_overlap(intervals(job_id)) == 1

    add_group(second)
    set_server(name, threads=1, groups=[second])
    wait_applied(name, threads=1, groups=[second])
    old_group_job = submit_sleepers(first, 1, 0.1)
    job_id = submit_sleepers(second, 4, 0.5)
    assert batchjobs.wait(job_id, timeout=40) is batchjobs.JobStatus.ENDED
    assert max_overlap(intervals(job_id)) == 1
    assert batchjobs.status(old_group_job)["tasks"][0]["status"] == "ready"


def test_batch_groups_walkthrough_bg1_runs_only_on_aos2_and_aos3(start_server, servers):
    """AX: AOS1..AOS3; BG1 on AOS2 and AOS3 only; default tasks only on AOS1 until the
    default group is added to AOS2. (Batch1/Batch2 are closed meanwhile.)"""
    for name in servers:
        set_server(name, threads=0)
    try:
        for name in servers:
            wait_applied(name, threads=0)
        bg1 = unique("BG1")
        aos1, aos2, aos3 = unique("AOS1"), unique("AOS2"), unique("AOS3")
        start_server(aos1, groups=["default"], threads=2)
        start_server(aos2, groups=[bg1], threads=2)
        start_server(aos3, groups=[bg1], threads=2)

        def run_mixed() -> dict:
            job = JobSpec("mixed")
            for i in range(6):
                job.add_task(f"bg1 {i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.4},
                             group=bg1)
                job.add_task(f"default {i}", "batchjobs.examples.sleep",
                             kwargs={"seconds": 0.4})
            job_id = batchjobs.submit(job)
            assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
            return by_name(batchjobs.status(job_id))

        tasks = run_mixed()
        assert {tasks[f"bg1 {i}"]["server"] for i in range(6)} == {aos2, aos3}
        assert {tasks[f"default {i}"]["server"] for i in range(6)} == {aos1}

        set_server(aos2, groups=[bg1, "default"])
        wait_applied(aos2, threads=2, groups=[bg1, "default"])
        tasks = run_mixed()
        assert {tasks[f"bg1 {i}"]["server"] for i in range(6)} <= {aos2, aos3}
        assert {tasks[f"default {i}"]["server"] for i in range(6)} <= {aos1, aos2}
        assert aos3 not in {tasks[f"default {i}"]["server"] for i in range(6)}
    finally:
        for name in servers:
            set_server(name, threads=1)
        for name in servers:
            wait_applied(name, threads=1)


def test_a_waiting_task_is_taken_by_a_free_server_while_another_is_busy(start_server, tmp_path):
    """The busy server's task runs until the test lets it end, so however long the free
    server takes to start, the quick task can only have run there."""
    group = unique("pick")
    busy, free = unique("busy"), unique("free")
    release = tmp_path / "release"
    start_server(busy, groups=[group], threads=1)
    long_job = JobSpec("long")
    long_job.add_task("long0", "tests.processes.samples.wait_for_file",
                      kwargs={"path": str(release)}, group=group)
    long_id = batchjobs.submit(long_job)
    try:
        wait_for(lambda: batchjobs.status(long_id)["tasks"][0]["status"] == "executing",
                 timeout=60, message="long task executing")
        assert batchjobs.status(long_id)["tasks"][0]["server"] == busy
        start_server(free, groups=[group], threads=1)
        quick = submit_sleepers(group, 1, 0.0, name="quick")
        assert batchjobs.wait(quick, timeout=60) is batchjobs.JobStatus.ENDED
        assert batchjobs.status(quick)["tasks"][0]["server"] == free
        assert batchjobs.status(long_id)["tasks"][0]["status"] == "executing"
    finally:
        release.touch()
    assert batchjobs.wait(long_id, timeout=60) is batchjobs.JobStatus.ENDED


def test_server_list_json_shows_live_servers_with_their_current_threads(start_server):
    name = unique("V")
    group = unique("view")
    start_server(name, groups=[group], threads=2, schedule="00:00-23:59:59=2",
                 timezone="Europe/Oslo")
    rows = {r["name"]: r for r in list_servers()}
    row = rows[name]
    assert (row["live"], row["threads_now"], row["groups"], row["timezone"]) == (
        True, 2, [group], "Europe/Oslo")
    assert row["schedule"] == [{"start": "00:00", "end": "23:59:59", "threads": 2}]
    assert row["running"] == 0 and row["applied"] == {"groups": [group], "threads": 2}
