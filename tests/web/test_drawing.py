"""The server-drawn pictures: layout columns, hooks, escaping, the caps on big jobs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from batchjobs.web import drawing


def job1_edges() -> list[dict[str, str]]:
    pairs = [("TASK 1", "TASK 2", "finished"), ("TASK 2", "TASK 3", "ended"),
             ("TASK 2", "TASK 4", "ended"), ("TASK 2", "TASK 5", "error"),
             ("TASK 3", "TASK 6", "error"), ("TASK 3", "TASK 7", "ended"),
             ("TASK 4", "TASK 7", "ended")]
    return [{"from": a, "to": b, "expect": e} for a, b, e in pairs]


def test_a_task_s_column_is_its_longest_chain_of_conditions():
    names = [f"TASK {i}" for i in range(1, 8)]
    assert drawing._layers(names, job1_edges()) == {
        "TASK 1": 0, "TASK 2": 1, "TASK 3": 2, "TASK 4": 2, "TASK 5": 2, "TASK 6": 3,
        "TASK 7": 3}


def test_a_chain_of_thousands_of_tasks_is_laid_out_without_recursion():
    names = [f"t{i}" for i in range(5000)]
    edges = [{"from": f"t{i}", "to": f"t{i + 1}", "expect": "ended"} for i in range(4999)]
    assert drawing._layers(names, edges)["t4999"] == 4999


def test_names_are_escaped_in_the_graph():
    svg = drawing.task_graph([{"name": '<b>"x"</b>', "status": "waiting", "reason": None}],
                             [], {})
    assert "<b>" not in svg and 'data-task="&lt;b&gt;&quot;x&quot;&lt;/b&gt;"' in svg


def test_a_job_too_big_to_draw_says_so():
    tasks = [{"name": f"t{i}", "status": "waiting", "reason": None}
             for i in range(drawing.MAX_DRAWN_TASKS + 1)]
    assert "<svg" not in drawing.task_graph(tasks, [], {})


def test_the_timeline_has_a_lane_per_server_and_a_bar_per_attempt():
    attempts = [
        {"task": "A", "number": 1, "server": "Batch1", "outcome": "error",
         "started_at": "2027-01-15T12:00:00+00:00", "ended_at": "2027-01-15T12:00:10+00:00"},
        {"task": "A", "number": 2, "server": "Batch2", "outcome": "running",
         "started_at": "2027-01-15T12:00:10+00:00", "ended_at": None},
    ]
    svg = drawing.timeline(attempts, now=datetime(2027, 1, 15, 12, 0, 20, tzinfo=UTC))
    assert re.findall(r'data-lane="([^"]+)"', svg) == ["Batch1", "Batch2"]
    assert re.findall(r'data-attempt="([^"]+)"', svg) == ["A#1", "A#2"]


def test_the_capacity_strip_ticks_on_local_whole_hours_across_dst():
    changes = [{"at": "2027-03-27T23:30:00+00:00", "local": "2027-03-28T00:30:00+01:00",
                "threads": 2}]
    svg = drawing.capacity_strip("AOS1", changes, hours=6, timezone="Europe/Oslo")
    # 01:00 CET, then 3 real hours later 05:00 CEST (02:00-03:00 does not exist that night)
    assert re.findall(r'class="axis"[^>]*>(\d\d:\d\d)<', svg) == ["01:00", "05:00"]
    assert 'data-threads="2"' in svg
