"""Priorities and concurrency caps without servers: validation (exit 2, culprit named,
nothing stored), the job file and the Python API storing the same, what ``status`` and
``group list/show`` print, which ready task the feeders take next, the broker's
priority words and aging.

Each test runs on its own embedded default (no worker started)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import batchjobs
from batchjobs import JobSpec, store
from batchjobs.coordinator.feed import next_ready
from batchjobs.definition import job_from_dict, load_job_file
from batchjobs.errors import InvalidValue
from batchjobs.groups import add_group, set_group
from batchjobs.models import Task
from batchjobs.priority import aging_cutoffs, message_priority, rank, word
from tests.test_cli_validation import home, run, stored_jobs  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("home")

NOOP = "{name: A, process: batchjobs.examples.noop}"


@pytest.mark.parametrize(("text", "words"), [
    (f"description: J\npriority: urgent\ntasks:\n  - {NOOP}\n",
     ["field 'priority'", "'urgent'", "low | normal | high | critical"]),
    ("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, priority: top}\n",
     ["task 'A'", "field 'priority'", "'top'"]),
    ("description: J\ntasks:\n  - {name: A, process: batchjobs.examples.noop, priority: 3}\n",
     ["task 'A'", "field 'priority'", "3"]),
    (f"description: J\nmax_concurrency: 0\ntasks:\n  - {NOOP}\n",
     ["field 'max_concurrency'", "0"]),
    (f"description: J\nmax_concurrency: two\ntasks:\n  - {NOOP}\n",
     ["field 'max_concurrency'", "'two'"]),
    (f"description: J\nmax_concurrency: true\ntasks:\n  - {NOOP}\n",
     ["field 'max_concurrency'", "True"]),
    (f"description: J\nmax_concurrency: 2.5\ntasks:\n  - {NOOP}\n",
     ["field 'max_concurrency'", "2.5"]),
])
def test_a_bad_priority_or_cap_exits_2_naming_it_and_stores_nothing(tmp_path, text, words):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    result = run("submit", str(path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for expected in words:
        assert expected in result.stderr
    assert stored_jobs() == []


def test_the_python_api_refuses_the_same_values_before_storing():
    job = JobSpec("J", priority="urgent")
    job.add_task("A", "batchjobs.examples.noop")
    with pytest.raises(InvalidValue) as caught:
        batchjobs.submit(job)
    assert (caught.value.field, caught.value.value) == ("priority", "urgent")
    job = JobSpec("J", max_concurrency=-1)
    job.add_task("A", "batchjobs.examples.noop", priority="high")
    with pytest.raises(InvalidValue) as caught:
        batchjobs.submit(job)
    assert caught.value.field == "max_concurrency"
    assert stored_jobs() == []


def stored(job_id: int) -> dict:
    status = batchjobs.status(job_id)
    with store.read_session() as session:
        ranks = {t.name: (t.priority, t.rank) for t in session.query(Task)
                 .filter(Task.job_id == job_id)}
    keep = ("priority", "max_concurrency", "status", "description")
    return {**{k: status[k] for k in keep},
            "tasks": [{k: t[k] for k in ("name", "priority", "effective_priority")}
                      for t in status["tasks"]], "ranks": ranks}


def test_a_job_file_and_the_python_api_store_the_same_priorities_and_cap(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("description: J\npriority: high\nmax_concurrency: 3\ntasks:\n"
                    "  - {name: A, process: batchjobs.examples.noop}\n"
                    "  - {name: B, process: batchjobs.examples.noop, priority: low}\n")
    from_file = int(run("submit", str(path), "--hold").stdout)
    job = JobSpec("J", priority="high", max_concurrency=3)
    job.add_task("A", "batchjobs.examples.noop")
    job.add_task("B", "batchjobs.examples.noop", priority="low")
    from_code = batchjobs.submit(job, hold=True)
    assert stored(from_file) == stored(from_code)
    assert stored(from_code)["ranks"] == {"A": (2, 2), "B": (0, 0)}
    assert job_from_dict(job.to_dict()).to_dict() == load_job_file(path).to_dict()


def test_status_json_shows_the_priorities_and_the_cap(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("description: J\nmax_concurrency: 2\ntasks:\n"
                    "  - {name: A, process: batchjobs.examples.noop, priority: critical}\n"
                    "  - {name: B, process: batchjobs.examples.noop}\n")
    job_id = run("submit", str(path), "--hold").stdout.strip()
    status = json.loads(run("status", job_id, "--json").stdout)
    assert (status["priority"], status["max_concurrency"]) == ("normal", 2)
    assert [(t["name"], t["priority"], t["effective_priority"]) for t in status["tasks"]] == [
        ("A", "critical", "critical"), ("B", "normal", "normal")]


def test_group_set_caps_pauses_and_resumes_a_group_shown_by_list_and_show():
    assert run("group", "add", "BG1").exit_code == 0
    capped = json.loads(run("group", "set", "BG1", "--max-concurrency", "3", "--json").stdout)
    assert (capped["name"], capped["max_concurrency"]) == ("BG1", 3)
    assert run("group", "set", "BG1", "--max-concurrency", "0").stdout.strip() == \
        "BG1: max concurrency 0 (paused)"
    shown = json.loads(run("group", "show", "BG1", "--json").stdout)
    assert (shown["max_concurrency"], shown["executing_tasks"]) == (0, 0)
    assert "max concurrency:   0 (paused)" in run("group", "show", "BG1").stdout
    run("group", "set", "BG1", "--max-concurrency", "none")
    listed = {g["name"]: g for g in json.loads(run("group", "list", "--json").stdout)}
    assert listed["BG1"]["max_concurrency"] is None
    assert "max concurrency: none" in run("group", "list").stdout


@pytest.mark.parametrize(("args", "words"), [
    (["BG1", "--max-concurrency", "-1"], ["field 'max_concurrency'", "'-1'"]),
    (["BG1", "--max-concurrency", "lots"], ["field 'max_concurrency'", "'lots'"]),
    (["BG9", "--max-concurrency", "2"], ["BG9"]),
])
def test_a_bad_group_cap_exits_2_naming_it_and_changes_nothing(args, words):
    run("group", "add", "BG1")
    run("group", "set", "BG1", "--max-concurrency", "4")
    result = run("group", "set", *args)
    assert result.exit_code == 2, result.output
    for expected in words:
        assert expected in result.stderr
    assert json.loads(run("group", "show", "BG1", "--json").stdout)["max_concurrency"] == 4


# -- the choice of the next ready task ------------------------------------------------


def ready_job(description: str, names: list[str], *, group: str, **job: object) -> int:
    spec = JobSpec(description, **job)  # type: ignore[arg-type]
    for name in names:
        spec.add_task(name, "batchjobs.examples.noop", group=group)
    return batchjobs.submit(spec)


def chosen(group: str, limit: int = 100) -> list[str]:
    with store.transaction() as session:
        return [d.name for d in next_ready(session, group=group, limit=limit)]


def test_the_feed_takes_the_highest_priority_first_then_the_first_ready(monkeypatch):
    """A queue kept one deep: each job's start publishes one task, the rest wait in the
    database for the feed."""
    monkeypatch.setenv("BATCHJOBS_QUEUE_DEPTH", "1")
    add_group("nobody")     # served by no server: nothing is claimed
    ready_job("low", ["L1", "L2", "L3"], group="nobody", priority="low")
    ready_job("normal", ["N1", "N2"], group="nobody")
    ready_job("critical", ["C1", "C2"], group="nobody", priority="critical")
    assert chosen("nobody", limit=2) == ["C2", "N2"]
    assert chosen("nobody") == ["L2", "L3"]
    assert chosen("nobody") == []


def test_the_feed_takes_no_more_than_a_job_or_group_cap_leaves_free(monkeypatch):
    monkeypatch.setenv("BATCHJOBS_QUEUE_DEPTH", "1")
    add_group("nobody")
    capped = ready_job("capped", ["A1", "A2", "A3", "A4"], group="nobody",
                       priority="critical", max_concurrency=2)   # A1 published: 1 in flight
    ready_job("free", ["F1", "F2", "F3"], group="nobody")        # F1 published
    assert chosen("nobody", limit=3) == ["A2", "F2", "F3"]
    assert chosen("nobody") == []                     # the capped job has 2 in flight
    set_group("nobody", max_concurrency=0)
    with store.transaction() as session:
        session.query(Task).filter(Task.job_id == capped, Task.name == "A1").update(
            {"status": "ended"})
    assert chosen("nobody") == []                     # a slot of the job, but the group paused
    set_group("nobody", max_concurrency=5)            # 4 in flight (A2, F1, F2, F3)
    assert chosen("nobody") == ["A3"]


# -- pure rules -----------------------------------------------------------------------


def test_each_broker_is_told_the_priority_in_its_own_sense():
    ranks = [rank(w) for w in ("low", "normal", "high", "critical")]
    assert ranks == [0, 1, 2, 3] and [word(r) for r in ranks] == ["low", "normal", "high",
                                                                   "critical"]
    # Redis reads its lowest step first; RabbitMQ and the embedded broker the highest.
    assert [message_priority(r, "redis://h:6379/0") for r in ranks] == [9, 6, 3, 0]
    assert [message_priority(r, "amqp://h//") for r in ranks] == ranks
    assert [message_priority(r, "embedded://") for r in ranks] == ranks


def test_a_task_rises_one_rank_per_aging_waited():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert aging_cutoffs(now, 60) == {"p_aged1": now - timedelta(seconds=60),
                                      "p_aged2": now - timedelta(seconds=120),
                                      "p_aged3": now - timedelta(seconds=180)}


def test_aging_raises_waiting_ready_tasks_and_leaves_fresh_ones(monkeypatch):
    from batchjobs.coordinator import sweeps
    from batchjobs.settings import get_settings

    monkeypatch.setenv("BATCHJOBS_QUEUE_DEPTH", "1")
    add_group("nobody")
    job_id = ready_job("old", ["A", "B"], group="nobody", priority="low")
    fresh = ready_job("fresh", ["F"], group="nobody", priority="low")
    with store.transaction() as session:
        session.query(Task).filter(Task.job_id == job_id).update(
            {"ready_at": datetime.now(UTC) - timedelta(seconds=150)})
    aged = dataclasses.replace(get_settings(), priority_aging=60.0)

    class NoBroker:
        def queue_length(self, queue: str) -> int:
            return 0

    sweeps.age_ready(aged, NoBroker())
    sweeps.age_ready(aged, NoBroker())
    sweeps.age_ready(aged, NoBroker())   # 150 s waited: two agings, not three
    with store.read_session() as session:
        ranks = {(t.job_id, t.name): t.rank for t in session.query(Task)}
    assert ranks == {(job_id, "A"): 2, (job_id, "B"): 2, (fresh, "F"): 0}


def test_a_held_job_file_round_trips_its_controls(tmp_path: Path):
    job = JobSpec("J", priority="low", max_concurrency=4)
    job.add_task("A", "batchjobs.examples.noop", priority="critical")
    data = job.to_dict()
    assert (data["priority"], data["max_concurrency"], data["tasks"][0]["priority"]) == (
        "low", 4, "critical")
    assert "priority" not in JobSpec("K").to_dict()
