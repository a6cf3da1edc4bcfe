"""Concurrency caps under races: many claims of one capped job or group at the same
instant (threads released by a barrier, each with its own connection) take exactly the
free slots, and a refused task stays ready, unqueued, until a freed slot feeds it."""

from __future__ import annotations

import threading

import pytest

import batchjobs
from batchjobs import JobSpec, store
from batchjobs.coordinator import claim, record
from batchjobs.coordinator.concurrency import feed_freed
from batchjobs.groups import add_group, set_group
from batchjobs.models import Task
from batchjobs.settings import get_settings
from batchjobs.status import Outcome

pytestmark = pytest.mark.integration


def race(job_id: int, names: list[str]) -> list[str]:
    """Claim every named task at once (``run-client``-style claims: no server record);
    the names claimed."""
    with store.read_session() as session:
        ids = {t.name: t.id for t in session.query(Task).filter(Task.job_id == job_id)}
    settings = get_settings()
    barrier = threading.Barrier(len(names))
    won: list[str] = []
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            barrier.wait(timeout=60)
            if claim(ids[name], job_id, "Racer", settings=settings) is not None:
                won.append(name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return won


def tasks(job_id: int) -> dict[str, tuple[str, bool]]:
    with store.read_session() as session:
        return {t.name: (t.status, t.queued) for t in
                session.query(Task).filter(Task.job_id == job_id)}


def submit(description: str, count: int, group: str, **job: object) -> int:
    spec = JobSpec(description, **job)  # type: ignore[arg-type]
    for n in range(count):
        spec.add_task(f"T{n}", "batchjobs.examples.noop", group=group)
    return batchjobs.submit(spec)


def test_six_simultaneous_claims_of_a_job_capped_at_two_take_two(backend):
    add_group("racejob")            # no server serves it: only this test claims
    job_id = submit("race", 6, "racejob", max_concurrency=2)
    won = race(job_id, [f"T{n}" for n in range(6)])
    assert len(won) == 2
    state = tasks(job_id)
    assert sorted(n for n, (status, _) in state.items() if status == "executing") == sorted(won)
    assert all(state[n] == ("ready", False) for n in state if n not in won)
    # One ends: the freed slot feeds the next ready task of the job, and only one.
    with store.read_session() as session:
        first = session.query(Task).filter(Task.job_id == job_id, Task.name == won[0]).one()
        task_id, attempt = first.id, first.attempts
    settings = get_settings()
    record(task_id, attempt, Outcome.ENDED, settings=settings)
    fed = feed_freed(job_id, "racejob", settings)
    # The housekeepers of servers other tests left running feed too (they honour the cap):
    # whichever fed it, one task and only one took the freed slot.
    queued = [n for n, (status, on_queue) in tasks(job_id).items()
              if status == "ready" and on_queue]
    assert len(queued) == 1 and queued[0] not in won
    assert len(fed) <= 1 and all(d.name == queued[0] for d in fed)


def test_simultaneous_claims_across_jobs_of_a_capped_group_take_its_free_slots(backend):
    add_group("racegroup")
    set_group("racegroup", max_concurrency=3)
    first = submit("one", 4, "racegroup")
    second = submit("two", 4, "racegroup")
    with store.read_session() as session:
        ids = {(t.job_id, t.name): t.id for t in session.query(Task)
               .filter(Task.job_id.in_([first, second]))}
    settings = get_settings()
    barrier = threading.Barrier(len(ids))
    won: list[tuple[int, str]] = []

    def one(key: tuple[int, str]) -> None:
        barrier.wait(timeout=60)
        if claim(ids[key], key[0], "Racer", settings=settings) is not None:
            won.append(key)

    threads = [threading.Thread(target=one, args=(key,)) for key in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(won) == 3
    set_group("racegroup", max_concurrency=0)          # paused: no claim at all
    assert race(second, [n for (j, n) in ids if j == second and (j, n) not in won]) == []
