"""Chains: a thread that ends a task of a deep backlog takes the next one without a
message. Each test waits for states, never for a time bound, and asserts who ran what,
how often, and under which message. Each runs on a database of its own
(``own_database``): only its servers feed its queues, at the depth it gives them."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

import batchjobs
from batchjobs import JobSpec, clock, store
from batchjobs.coordinator import NextTask, claim, record
from batchjobs.groups import add_group
from batchjobs.models import Attempt, Task
from batchjobs.settings import get_settings
from batchjobs.status import Outcome
from tests.helpers import by_name, wait_for
from tests.integration.test_faults import HOLD, pid_of, serve
from tests.services import CuttableProxy

pytestmark = pytest.mark.integration

COUNT = "tests.processes.faults.count"
#: A queue of one message: every other ready task of the job is backlog.
SHALLOW = {"BATCHJOBS_QUEUE_DEPTH": "1", "BATCHJOBS_CHAIN_SECONDS": "600"}


def submit(job: JobSpec, depth: int) -> int:
    return batchjobs.submit(job, settings=replace(get_settings(), queue_depth=depth))


def attempt_rows(job_id: int) -> dict[str, list[tuple[int, str, str | None, str]]]:
    """Each task's attempts: (number, outcome, message id, server), oldest first."""
    with store.read_session() as session:
        rows = session.execute(
            select(Task.name, Attempt.number, Attempt.outcome, Attempt.message_id,
                   Attempt.server).join(Attempt, Attempt.task_id == Task.id)
            .where(Task.job_id == job_id).order_by(Attempt.id)).all()
    found: dict[str, list[tuple[int, str, str | None, str]]] = {}
    for name, number, outcome, message, server in rows:
        found.setdefault(name, []).append((number, str(outcome), message, server))
    return found


def counted(folder: Path) -> int:
    path = folder / "count"
    return len(path.read_text().splitlines()) if path.exists() else 0


def counting_job(folder: Path, group: str, n: int) -> JobSpec:
    job = JobSpec("backlog")
    for i in range(n):
        job.add_task(f"t{i:02}", COUNT, kwargs={"folder": str(folder)}, group=group)
    return job


def test_a_deep_backlog_runs_in_chains_each_task_once(backend, own_database, start_server,
                                                      tmp_path):
    _, group = serve(start_server, "Chain", env=SHALLOW)
    job_id = submit(counting_job(tmp_path, group, 40), depth=1)
    assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    rows = attempt_rows(job_id)
    assert counted(tmp_path) == 40
    assert all([(n, o) for n, o, _, _ in attempts] == [(1, "ended")] for attempts in rows.values())
    messages = {attempts[0][2] for attempts in rows.values()}
    assert None not in messages and len(messages) < 40     # tasks shared a message
    if backend.name != "embedded":
        # PostgreSQL claims a chain's next task in the statement that records the success
        # before it: the one instant is the end of one attempt and the start of the next.
        assert handovers(job_id) >= 40 - len(messages)


def handovers(job_id: int) -> int:
    """How many attempts of the job started at the very instant another one ended."""
    with store.read_session() as session:
        times = session.execute(
            select(Attempt.started_at, Attempt.ended_at).join(Task, Attempt.task_id == Task.id)
            .where(Task.job_id == job_id)).all()
    ended = {end for _, end in times}
    return sum(start in ended for start, _ in times)


def test_a_shallow_queue_sends_every_task_its_own_message(
        own_database, start_server, tmp_path):
    _, group = serve(start_server, "Unchained", env={"BATCHJOBS_CHAIN_SECONDS": "600"})
    job_id = submit(counting_job(tmp_path, group, 12), depth=1000)
    assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    rows = attempt_rows(job_id)
    assert counted(tmp_path) == 12
    assert len({attempts[0][2] for attempts in rows.values()}) == 12


def test_no_task_waits_behind_a_long_one_while_another_server_is_free(
        own_database, start_server, tmp_path):
    """Two servers of one group; the job's first task holds its thread until released.
    Every other task runs on the other server meanwhile: none was bundled behind it."""
    first, group = serve(start_server, "FairA", env=SHALLOW)
    second = start_server(f"{first.name}-b", groups=[group], env=SHALLOW)
    release = tmp_path / "release"
    job = JobSpec("long first")
    job.add_task("long", HOLD, kwargs={"folder": str(tmp_path), "release": str(release)},
                 group=group)
    for i in range(20):
        job.add_task(f"t{i:02}", COUNT, kwargs={"folder": str(tmp_path)}, group=group)
    job_id = submit(job, depth=1)
    pid_of(tmp_path, "long", 1)
    wait_for(lambda: counted(tmp_path) == 20, timeout=300,
             message="the short tasks ran while the long one held its thread")
    shown = by_name(batchjobs.status(job_id))
    assert shown["long"]["status"] == "executing"
    long_server = shown["long"]["server"]
    assert {shown[f"t{i:02}"]["server"] for i in range(20)} == (
        {first.name, second.name} - {long_server})
    release.touch()
    assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    assert all(len(attempts) == 1 for attempts in attempt_rows(job_id).values())


def chained_hold(folder: Path, group: str) -> int:
    """a0, then ``held`` (retried once), then b0..b4: a0's message, once a0 ended, chains
    ``held`` unless a housekeeper fed ``held`` a message of its own first."""
    folder.mkdir()
    job = JobSpec("kill mid chain")
    job.add_task("a0", COUNT, kwargs={"folder": str(folder)}, group=group)
    job.add_task("held", HOLD, kwargs={"folder": str(folder), "release": str(folder / "go")},
                 group=group, retries=1)
    for i in range(5):
        job.add_task(f"b{i}", COUNT, kwargs={"folder": str(folder)}, group=group)
    return submit(job, depth=1)


def test_kill_9_mid_chain_fails_the_running_task_alone_and_runs_nothing_twice(
        own_database, start_server, tmp_path):
    """The pool process is killed while it runs a task it chained: that attempt (found by
    the message it shares) ends error at once and is retried; the task before it stays
    ended once, those after it run once, and no task is left claimed or executing.

    Which way ``held`` starts (chained, or by a message a housekeeper fed it in the few
    milliseconds a0 runs) is the machine's choice: a job whose ``held`` did not start in
    a0's chain is let finish and another is submitted, until one did."""
    server, group = serve(start_server, "ChainKill", env=SHALLOW)
    for number in range(20):
        folder = tmp_path / f"try{number}"
        job_id = chained_hold(folder, group)
        pid = pid_of(folder, "held", 1)
        rows = attempt_rows(job_id)
        if rows["held"][0][2] == rows["a0"][0][2]:
            break
        (folder / "go").touch()
        assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    else:
        pytest.fail("held never started in a0's chain")
    os.kill(pid, signal.SIGKILL)
    pid_of(folder, "held", 2)
    (folder / "go").touch()
    assert batchjobs.wait(job_id, timeout=300) is batchjobs.JobStatus.ENDED
    assert server.process.poll() is None
    rows = attempt_rows(job_id)
    held = rows.pop("held")
    assert [(n, o) for n, o, _, _ in held] == [(1, "error"), (2, "ended")]
    assert all([(n, o) for n, o, _, _ in attempts] == [(1, "ended")] for attempts in rows.values())
    assert counted(folder) == 6
    error = batchjobs.attempts(job_id, task="held", number=1)[0]["error"]
    assert "process lost" in error


def test_a_chain_claim_whose_reply_was_lost_is_taken_not_left_executing(
        backend, own_database):
    """The statement that records a success and claims the chain's next task ran, but
    its reply never came (the connection to PostgreSQL broke meanwhile). Recording again
    changes nothing, and the task that statement claimed is found by the message's id
    and handed to the chain, so it runs instead of staying executing."""
    if backend.name == "embedded":
        pytest.skip("SQLite records a success and claims the next task in two steps")
    add_group("lost-reply")             # no server serves it: only this test claims
    job = JobSpec("lost reply")
    for name in ("t0", "t1", "t2"):
        job.add_task(name, "batchjobs.examples.noop", group="lost-reply")
    job_id = submit(job, depth=1)
    ids = task_ids(job_id)
    settings = get_settings()
    first = claim(ids["t0"], job_id, "Chainer", "message-1", settings=settings)
    assert first is not None and first.readied_by_success == ()
    url = make_url(settings.database_url)
    proxy = CuttableProxy(url.port or 5432)
    proxied = replace(settings, database_url=url.set(port=proxy.port).render_as_string(
        hide_password=False))
    outcome: list[Any] = []
    warm, muted = threading.Event(), threading.Event()

    def chain_on() -> None:
        # The fast path's connection is this thread's: connected, and the statement
        # prepared (a round trip of its own), before the mute. A success of no attempt
        # records nothing, so it claims nothing.
        with store.atomic(proxied) as (kind, conn):
            outcome.append(kind.success_and_next(conn, {
                "p_task": -1, "p_number": 1, "p_now": clock.now(), "p_children": [],
                "p_log": None, "p_incarnation": None, "p_job": job_id, "p_prev": -1,
                "p_server": "Chainer", "p_message": "message-0"}))
        warm.set()
        muted.wait(60)
        then = NextTask(first, "Chainer", "message-1")
        dispatches = record(first.task_id, first.attempt, Outcome.ENDED, children=(),
                            settings=proxied, then=then)
        outcome.append((dispatches, then.claimed))

    chainer = threading.Thread(target=chain_on)
    try:
        chainer.start()
        assert warm.wait(60)
        proxy.muted = True
        muted.set()
        wait_for(lambda: statuses(job_id)["t0"] == "ended", timeout=60,
                 message="the statement ran")
        proxy.cut()
        proxy.muted = False
        proxy.heal()
        chainer.join(timeout=120)
    finally:
        proxy.close()
        store.reset_engines()
    [], (dispatches, following) = outcome
    claimed = [name for name, status in statuses(job_id).items() if status == "executing"]
    assert dispatches == [] and len(claimed) == 1
    assert following is not None and following.task_id == ids[claimed[0]]
    assert following.attempt == 1
    assert [(n, o, m) for n, o, m, _ in attempt_rows(job_id)[claimed[0]]] == [
        (1, "running", "message-1")]


def task_ids(job_id: int) -> dict[str, int]:
    with store.read_session() as session:
        return dict(session.execute(select(Task.name, Task.id)
                                    .where(Task.job_id == job_id)).all())  # type: ignore[arg-type]


def statuses(job_id: int) -> dict[str, str]:
    with store.read_session() as session:
        return {name: str(status) for name, status in session.execute(
            select(Task.name, Task.status).where(Task.job_id == job_id)).all()}
