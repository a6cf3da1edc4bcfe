"""Faults an operator meets: processes killed, servers stopped, services restarted, forged
or repeated messages. Each test waits for states (never for a time bound) and asserts the
final statuses and the attempts."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

import batchjobs
from batchjobs import JobSpec, clock, incarnation, queues, store
from batchjobs.coordinator import claim, record, start_job
from batchjobs.coordinator.sweeps import fail_own_attempts
from batchjobs.errors import ServerNameTaken
from batchjobs.groups import add_group
from batchjobs.launch import ServerProcess, wait_until_ready
from batchjobs.models import BatchServer, Task
from batchjobs.servers import beat, set_server, show_server
from batchjobs.settings import get_settings
from batchjobs.status import Outcome
from tests.helpers import by_name, wait_for
from tests.services import CuttableProxy, PrivatePostgres, PrivateRedis, pointed_at

pytestmark = pytest.mark.integration

HOLD = "tests.processes.faults.hold"
IMPORTS = {"BATCHJOBS_IMPORTS": "tests.processes.faults"}
_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A server or group name no other test (nor a real server) uses."""
    return f"{prefix}-{os.getpid()}-{clock.now().timestamp():.0f}-{next(_names)}"


def pid_of(folder: Path, task: str, attempt: int) -> int:
    """The pool process running ``attempt`` of ``task`` (written by the ``hold`` process)."""
    marker = folder / f"{task}-{attempt}.pid"
    wait_for(marker.exists, timeout=60, message=f"{task} attempt {attempt} running")
    return int(marker.read_text())


def attempts_of(job_id: int) -> list[tuple[int, str, str | None]]:
    return [(a["number"], a["outcome"], a["error"]) for a in batchjobs.attempts(job_id)]


def held_job(folder: Path, group: str, *, retries: int = 0, release: str = "",
             **task: Any) -> int:
    job = JobSpec("held")
    job.add_task("held", HOLD, kwargs={"folder": str(folder), "release": release},
                 group=group, retries=retries, **task)
    return batchjobs.submit(job)


def serve(start_server: Callable[..., ServerProcess], prefix: str, *, threads: int = 1,
          env: dict[str, str] | None = None) -> tuple[ServerProcess, str]:
    group = unique(prefix.lower())
    return start_server(unique(prefix), groups=[group], threads=threads,
                        env={**IMPORTS, **(env or {})}), group


@pytest.fixture
def private_pg(backend: Any) -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this test alone (the shared broker), which it may stop and start."""
    pg = PrivatePostgres()
    try:
        pg.start()
        with pointed_at(BATCHJOBS_DATABASE_URL=pg.url):
            yield pg
    finally:
        pg.remove()


@pytest.fixture
def private_redis(backend: Any) -> Iterator[PrivateRedis]:
    """A Redis of this test alone (the shared database), which it may kill and restart."""
    server = PrivateRedis()
    try:
        server.start()
        with pointed_at(BATCHJOBS_BROKER_URL=server.url):
            yield server
    finally:
        server.remove()


REDIS_PG = pytest.mark.parametrize("backend", ["redis-pg"], indirect=True)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_killed_pool_process_ends_its_attempt_error_while_its_server_lives(
        start_server, tmp_path, retries):
    server, group = serve(start_server, "Killed")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=retries, release=str(release))
    os.kill(pid_of(tmp_path, "held", 1), signal.SIGKILL)
    wait_for(lambda: attempts_of(job_id)[0][1] == "error", timeout=60,
             message="attempt 1 ends error")
    assert server.process.poll() is None
    (number, _, error), *_ = attempts_of(job_id)
    assert error is not None and "process" in error and server.name in error
    if retries:
        pid_of(tmp_path, "held", 2)
        release.touch()
    assert batchjobs.wait(job_id, timeout=60) is (
        batchjobs.JobStatus.ENDED if retries else batchjobs.JobStatus.ERROR)
    outcomes = [outcome for _, outcome, _ in attempts_of(job_id)]
    assert outcomes == (["error", "ended"] if retries else ["error"])
    assert by_name(batchjobs.status(job_id))["held"]["status"] == (
        "ended" if retries else "error")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGQUIT"])
def test_a_stop_signal_to_a_busy_pool_process_is_left_to_its_main_process(
        start_server, tmp_path, sig):
    """systemd and a terminal signal every process of a server. A pool process that ended
    its task on its own SIGQUIT raced the main process's cold shutdown, which kills it:
    killed while it told the pool it was exiting, it left the pool's result pipe locked,
    and the server never stopped. Its main process alone decides."""
    server, group = serve(start_server, "Deaf")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=1, release=str(release))
    pid = pid_of(tmp_path, "held", 1)
    os.kill(pid, getattr(signal, sig))
    wait_for(lambda: log_says(server, f"pool process {pid}: {sig} ignored"), timeout=60,
             message=f"the pool process's word on {sig}")
    os.kill(pid, 0)   # alive
    release.touch()
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert attempts_of(job_id) == [(1, "ended", None)]
    assert server.process.poll() is None


# -- one live process per server name ---------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_a_second_start_under_a_live_name_is_refused_and_the_live_task_ends_ended(
        start_server, tmp_path):
    server, group = serve(start_server, "Live")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, release=str(release))
    pid_of(tmp_path, "held", 1)
    second = run_cli("worker", "--server", server.name, env=IMPORTS)
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert server.name in line and socket.gethostname() in line
    assert str(server.process.pid) in line
    release.touch()
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [(n, o) for n, o, _ in attempts_of(job_id)] == [(1, "ended")]
    assert server.process.poll() is None


def test_replace_takes_the_name_over_and_the_fenced_process_changes_nothing(
        start_server, backend, tmp_path):
    old, group = serve(start_server, "Replaced")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=1, release=str(release))
    pid_of(tmp_path, "held", 1)
    new = ServerProcess(old.name, env={**os.environ, **IMPORTS}, extra=["--replace"],
                        log_path=backend.home / f"{old.name}-new.log")
    try:
        wait_until_ready([new])
        # The new start fails its predecessor's attempt; the retry runs on the new one.
        pid_of(tmp_path, "held", 2)
        assert attempts_of(job_id)[0][1] == "error"
        release.touch()     # both processes end their attempts: only the new one counts
        assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
        # The old process found its name taken and stops by itself once its task ended.
        wait_for(lambda: old.process.poll() is not None, timeout=60,
                 message="the fenced-off process stops")
    finally:
        new.stop()
    assert [(n, o) for n, o, _ in attempts_of(job_id)] == [(1, "error"), (2, "ended")]
    assert by_name(batchjobs.status(job_id))["held"]["status"] == "ended"


def test_a_holder_that_is_gone_does_not_block_a_start(backend):
    settings = get_settings()
    name = unique("Gone")
    set_server(name, groups=["default"], threads=1)
    elsewhere = incarnation.take(name, settings=settings, host="elsewhere.invalid", pid=4242)
    with store.transaction() as session:     # ... and beating there
        row = session.get(BatchServer, name)
        assert row is not None
        row.heartbeat_at = clock.now()
    with pytest.raises(ServerNameTaken) as refused:
        incarnation.take(name, settings=settings)
    assert (refused.value.host, refused.value.pid) == ("elsewhere.invalid", 4242)
    # No heartbeat for BATCHJOBS_SERVER_TIMEOUT: gone.
    with store.transaction() as session:
        row = session.get(BatchServer, name)
        assert row is not None and row.incarnation == elsewhere
        row.heartbeat_at = clock.now() - timedelta(seconds=settings.server_timeout + 1)
    here = incarnation.take(name, settings=settings, pid=dead_pid())
    assert here != elsewhere
    # A pid dead on this host: gone at once, heartbeat or not.
    with store.transaction() as session:
        row = session.get(BatchServer, name)
        assert row is not None
        row.heartbeat_at = clock.now()
    taken = incarnation.take(name, settings=settings)
    assert taken not in {here, elsewhere}
    # A live process of this host that has not beaten yet is a server starting: it holds
    # the name; a live pid that is not a batch server (reused) does not.
    starting = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()",
                                 "batchjobs", "worker"], stdin=subprocess.PIPE)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        beat(name, alive=False, incarnation=taken)
        incarnation.take(name, settings=settings, pid=starting.pid)
        with pytest.raises(ServerNameTaken):
            incarnation.take(name, settings=settings)
        incarnation.take(name, settings=settings, pid=other.pid, replace=True)
        incarnation.take(name, settings=settings)
    finally:
        for child in (starting, other):
            child.communicate(b"")


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("retries", [0, 1])
def test_a_server_killed_mid_task_and_restarted_fails_only_its_previous_attempts(
        start_server, backend, tmp_path, retries):
    server, group = serve(start_server, "Restarted")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=retries, release=str(release))
    pid_of(tmp_path, "held", 1)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    again = ServerProcess(server.name, env={**os.environ, **IMPORTS},
                          log_path=backend.home / f"{server.name}-again.log")
    try:
        wait_until_ready([again])
        if retries:
            pid_of(tmp_path, "held", 2)
            release.touch()
        final = batchjobs.wait(job_id, timeout=60)
    finally:
        again.stop()
    assert final is (batchjobs.JobStatus.ENDED if retries else batchjobs.JobStatus.ERROR)
    (first, *rest) = attempts_of(job_id)
    assert first[1] == "error" and "restarted" in (first[2] or "")
    assert [o for _, o, _ in rest] == (["ended"] if retries else [])


# -- shutdown as systemd does it ----------------------------------------------------------


def signal_server(server: ServerProcess, sig: signal.Signals, *, group: bool) -> None:
    """``kill -SIG PID`` (the main process only) or ``kill -SIG -PGID`` (every process of
    the server, as systemd's default ``KillMode=control-group`` does)."""
    if group:
        os.killpg(server.process.pid, sig)
    else:
        server.process.send_signal(sig)


def accepted_by_main_process(server: ServerProcess) -> bool:
    """Whether the server's main process knows its pool process runs a task (Celery's
    active requests, by remote control). The task's own pid file says only that the pool
    process started it: a cold shutdown signalled before the main process has read that
    cannot stop it (it knows no pid to kill), and waits for it."""
    from batchjobs.app import app

    replies = app.control.inspect(timeout=1.0).active() or {}
    return any(host.startswith(f"{server.name}@") and tasks for host, tasks in replies.items())


def log_says(server: ServerProcess, text: str, *, times: int = 1) -> bool:
    return server.log_path is not None and server.log_path.read_text(
        errors="replace").count(text) >= times


def heartbeat_after(name: str, instant: datetime) -> bool:
    beat = show_server(name)["heartbeat_at"]
    return beat is not None and datetime.fromisoformat(beat) > instant


@pytest.mark.parametrize("group", [False, True], ids=["main-process", "process-group"])
def test_sigterm_lets_the_running_task_finish_and_be_recorded(start_server, tmp_path, group):
    server, _group = serve(start_server, "Term")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, _group, release=str(release))
    pid_of(tmp_path, "held", 1)
    signal_server(server, signal.SIGTERM, group=group)
    signalled = clock.now()
    wait_for(lambda: log_says(server, "Warm shutdown"), timeout=60, message="warm shutdown")
    # The task runs on for longer than BATCHJOBS_SERVER_TIMEOUT, its server beating still:
    # nothing takes it for lost.
    timeout = get_settings().server_timeout
    wait_for(lambda: heartbeat_after(server.name, signalled + timedelta(seconds=timeout + 1)),
             timeout=60, message="heartbeats while the task finishes")
    assert attempts_of(job_id) == [(1, "running", None)]
    release.touch()
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert server.process.wait(60) == 0
    assert attempts_of(job_id) == [(1, "ended", None)]


@pytest.mark.parametrize("signals", [("SIGTERM", "SIGTERM"), ("SIGQUIT",)],
                         ids=["second-sigterm", "sigquit"])
def test_a_cold_shutdown_ends_the_running_attempt_error_and_the_task_retries(
        start_server, tmp_path, signals):
    server, group = serve(start_server, "Cold")
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=1, release=str(release))
    pid_of(tmp_path, "held", 1)
    wait_for(lambda: accepted_by_main_process(server), timeout=120,
             message="the running task known to the server's main process")
    *first, last = signals
    for number, name in enumerate(first, start=1):   # each handled before the next is sent
        signal_server(server, getattr(signal, name), group=True)
        try:
            wait_for(lambda n=number: log_says(server, "shutdown (MainProcess)", times=n),
                     timeout=120, message=f"{name} handled")
        except AssertionError as exc:
            pytest.fail(f"{exc}; the server's log ends:\n{server.log_tail()}")
    signal_server(server, getattr(signal, last), group=True)
    try:
        server.process.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{last}: the server did not stop; its log ends:\n{server.log_tail()}")
    (number, outcome, error), = attempts_of(job_id)
    assert outcome == "error" and f"batch server {server.name}" in (error or "")
    assert "stopped" in (error or "")
    release.touch()
    start_server(unique("Successor"), groups=[group], env=IMPORTS)
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [(n, o) for n, o, _ in attempts_of(job_id)] == [(1, "error"), (2, "ended")]


def test_a_warm_shutdown_past_its_stop_timeout_ends_the_running_attempt_stopped(
        start_server, tmp_path):
    """One SIGTERM, as systemd sends; the task outlives BATCHJOBS_STOP_TIMEOUT: the server
    stops it itself and records it, before a service manager's SIGKILL would."""
    server, group = serve(start_server, "Slow", env={**IMPORTS, "BATCHJOBS_STOP_TIMEOUT": "2"})
    release = tmp_path / "release"
    job_id = held_job(tmp_path, group, retries=1, release=str(release))
    pid_of(tmp_path, "held", 1)
    signal_server(server, signal.SIGTERM, group=True)
    server.process.wait(120)
    (number, outcome, error), = attempts_of(job_id)
    assert outcome == "error" and f"batch server {server.name}" in (error or "")
    assert "stopped" in (error or "")
    release.touch()
    start_server(unique("Heir"), groups=[group], env=IMPORTS)
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [(n, o) for n, o, _ in attempts_of(job_id)] == [(1, "error"), (2, "ended")]


# -- task time limit -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["task", "job"])
def test_a_task_running_past_its_timeout_is_stopped_and_retried(start_server, where):
    server, group = serve(start_server, "Timeout")
    job = JobSpec("hung", timeout=1 if where == "job" else None)
    job.add_task("hung", "batchjobs.examples.sleep", kwargs={"seconds": 300}, group=group,
                 retries=1, timeout=1 if where == "task" else None)
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ERROR
    attempts = attempts_of(job_id)
    assert [(n, o) for n, o, _ in attempts] == [(1, "error"), (2, "error")]
    assert all("timed out after 1 s" in (error or "") for _, _, error in attempts)
    assert by_name(batchjobs.status(job_id))["hung"]["status"] == "error"
    assert server.process.poll() is None


# -- submit while the broker is down ------------------------------------------------------


def job_file(folder: Path, group: str) -> Path:
    path = folder / "job.yaml"
    path.write_text("description: broker down\ntasks:\n"
                    f"  - name: A\n    process: batchjobs.examples.noop\n    group: {group}\n")
    return path


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:secret@127.0.0.1:1//"])
def test_submit_with_the_broker_down_prints_the_id_and_housekeepers_publish_it_later(
        start_server, tmp_path, url):
    group = unique("down")
    add_group(group)
    done = run_cli("submit", str(job_file(tmp_path, group)),
                   env={"BATCHJOBS_BROKER_URL": url})
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())
    (warning,) = done.stderr.strip().splitlines()
    assert warning.startswith("warning:") and "deferred" in warning
    assert "127.0.0.1:1" in warning and "secret" not in warning
    assert by_name(batchjobs.status(job_id))["A"]["status"] == "ready"
    # Once a server and the broker are there, a housekeeper publishes the task.
    start_server(unique("Later"), groups=[group])
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [(n, o) for n, o, _ in attempts_of(job_id)] == [(1, "ended")]


@pytest.mark.parametrize("url", ["foo://127.0.0.1/", "redis://:secret@127.0.0.1:port/0",
                                 "127.0.0.1:6379"])
def test_submit_with_a_broker_url_that_can_never_work_is_refused_and_stores_nothing(
        backend, tmp_path, url):
    before = len(batchjobs.list_jobs(limit=100_000))
    done = run_cli("submit", str(job_file(tmp_path, "default")),
                   env={"BATCHJOBS_BROKER_URL": url})
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: BATCHJOBS_BROKER_URL") and "secret" not in line
    assert len(batchjobs.list_jobs(limit=100_000)) == before


# -- services restarted ----------------------------------------------------------------------


def fan_in_job(folder: Path, group: str, release: Path, width: int) -> int:
    """``width`` held tasks, then one that needs them all."""
    job = JobSpec("fan in")
    for i in range(width):
        job.add_task(f"held{i}", HOLD, kwargs={"folder": str(folder), "release": str(release)},
                     group=group)
    job.add_task("last", "batchjobs.examples.noop", group=group,
                 depends_on=[f"held{i}" for i in range(width)])
    return batchjobs.submit(job)


@REDIS_PG
def test_a_postgresql_outage_while_tasks_finish_loses_no_outcome(
        private_pg, start_server, tmp_path):
    server, group = serve(start_server, "Outage", threads=4,
                          env={"BATCHJOBS_SERVER_TIMEOUT": "120"})
    release = tmp_path / "release"
    job_id = fan_in_job(tmp_path, group, release, 4)
    for i in range(4):
        pid_of(tmp_path, f"held{i}", 1)
    private_pg.stop("fast")
    release.touch()         # the four end while the database is down
    wait_for(lambda: log_says(server, "failed (database unreachable)", times=4), timeout=60,
             message="the four outcomes wait for the database")
    private_pg.start()
    store.reset_engines()   # this process's connections died with it
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    assert sorted((a["task"], a["number"], a["outcome"]) for a in batchjobs.attempts(job_id)) \
        == sorted([(f"held{i}", 1, "ended") for i in range(4)] + [("last", 1, "ended")])
    assert server.process.poll() is None


@REDIS_PG
def test_a_postgresql_crash_and_restart_mid_job_loses_no_outcome(
        private_pg, start_server, tmp_path):
    """Killed as by a crash (``immediate``) while a task runs and its successor waits."""
    server, group = serve(start_server, "Crash", threads=2,
                          env={"BATCHJOBS_SERVER_TIMEOUT": "120"})
    release = tmp_path / "release"
    job_id = fan_in_job(tmp_path, group, release, 2)
    pid_of(tmp_path, "held0", 1)
    pid_of(tmp_path, "held1", 1)
    private_pg.stop("immediate")
    private_pg.start()
    store.reset_engines()
    release.touch()
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    assert sorted((a["task"], a["number"], a["outcome"]) for a in batchjobs.attempts(job_id)) \
        == [("held0", 1, "ended"), ("held1", 1, "ended"), ("last", 1, "ended")]
    assert server.process.poll() is None


@REDIS_PG
def test_redis_restarted_empty_mid_job_loses_no_task(private_redis, start_server, tmp_path):
    server, group = serve(start_server, "Amnesia", threads=1)
    release = tmp_path / "release"
    job = JobSpec("redis forgets")
    job.add_task("held", HOLD, kwargs={"folder": str(tmp_path), "release": str(release)},
                 group=group)
    job.add_task("next", "batchjobs.examples.noop", group=group, depends_on=["held"])
    job.add_task("side", "batchjobs.examples.noop", group=group)   # queued behind "held"
    job_id = batchjobs.submit(job)
    pid_of(tmp_path, "held", 1)
    private_redis.kill()
    private_redis.start()          # nothing persisted: the queued message of "side" is gone
    release.touch()
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    assert sorted((a["task"], a["number"], a["outcome"]) for a in batchjobs.attempts(job_id)) \
        == [("held", 1, "ended"), ("next", 1, "ended"), ("side", 1, "ended")]
    assert server.process.poll() is None


# -- forged and repeated messages --------------------------------------------------------------


def started_later(job: JobSpec) -> tuple[int, queues.Dispatch]:
    """Submit ``job`` (one task) to start later, then make its task ready without publishing
    it: the test sends the messages."""
    job.run_at = clock.now() + timedelta(hours=1)
    job_id = batchjobs.submit(job)
    with store.transaction() as session:
        (ready,) = start_job(session, job_id, 10)
    return job_id, ready


def test_a_claim_or_an_outcome_of_a_fenced_off_incarnation_changes_nothing(backend):
    settings = get_settings()
    name = unique("Fenced")
    set_server(name, groups=["default"], threads=1)
    token = incarnation.take(name, settings=settings, host="elsewhere.invalid", pid=1)
    job = JobSpec("fenced")
    job.add_task("only", "batchjobs.examples.noop")
    job_id, ready = started_later(job)
    assert claim(ready.task_id, job_id, name, settings=settings, incarnation="stale") is None
    claimed = claim(ready.task_id, job_id, name, settings=settings, incarnation=token)
    assert claimed is not None and claimed.readied_by_success == ()
    # Taken over: the old incarnation's success (the one-step form) is not recorded.
    newer = incarnation.take(name, settings=settings, replace=True)
    assert record(ready.task_id, claimed.attempt, Outcome.ENDED, children=(),
                  settings=settings, incarnation=token) == []
    assert record(ready.task_id, claimed.attempt, Outcome.ERROR, "late", settings=settings,
                  incarnation=token) == []
    assert attempts_of(job_id) == [(1, "running", None)]
    fail_own_attempts(name, settings, incarnation=newer)
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ERROR
    assert attempts_of(job_id)[0][1] == "error"


def test_the_same_task_message_delivered_100_times_runs_the_task_once(start_server, tmp_path):
    server, group = serve(start_server, "Dup", threads=2)
    job = JobSpec("delivered 100 times")
    job.add_task("once", "tests.processes.faults.count", kwargs={"folder": str(tmp_path)},
                 group=group)
    job_id, ready = started_later(job)
    assert queues.publish([ready] * 100) == 100
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    wait_for(lambda: log_says(server, "message dropped", times=99), timeout=120,
             message="the 99 copies dropped")
    assert (tmp_path / "count").read_text().count("\n") == 1
    assert attempts_of(job_id) == [(1, "ended", None)]


def test_a_forged_message_naming_an_unregistered_callable_is_never_executed(
        start_server, tmp_path):
    from batchjobs.app import app

    server, group = serve(start_server, "Forged")
    marker = tmp_path / "executed"
    app.send_task("os.system", args=[f"touch {marker}"], queue=queues.queue_name(group),
                  routing_key=queues.queue_name(group))
    wait_for(lambda: log_says(server, "unregistered task"), timeout=60,
             message="the forged message refused")
    # A task row whose process was forged in the database is refused by the registry.
    job = JobSpec("forged process")
    job.add_task("forged", "batchjobs.examples.noop", group=group)
    job_id, ready = started_later(job)
    with store.transaction() as session:
        session.execute(update(Task).where(Task.id == ready.task_id).values(
            process="os.system", kwargs={"command": f"touch {marker}"}))
    queues.publish([replace(ready, process="os.system")])
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ERROR
    ((number, outcome, error),) = attempts_of(job_id)
    assert outcome == "error" and "os.system" in (error or "")
    assert not marker.exists()
    assert server.process.poll() is None


def test_a_server_does_not_run_a_task_of_a_group_it_does_not_serve(start_server, tmp_path):
    other, served = serve(start_server, "Other")
    group = unique("unserved")
    add_group(group)
    job = JobSpec("misrouted")
    job.add_task("elsewhere", "batchjobs.examples.noop", group=group)
    job_id, ready = started_later(job)
    queues.publish([replace(ready, group=served)])      # forged onto the other's queue
    wait_for(lambda: log_says(other, "message dropped"), timeout=60,
             message="the misrouted message dropped")
    assert by_name(batchjobs.status(job_id))["elsewhere"]["status"] == "ready"
    assert attempts_of(job_id) == []
    right = start_server(unique("Right"), groups=[group])
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    assert [a["server"] for a in batchjobs.attempts(job_id)] == [right.name]


@REDIS_PG
def test_a_server_cut_from_the_database_past_the_timeout_records_nothing_over_the_retry(
        start_server, backend, tmp_path):
    """CutOff's path to PostgreSQL is cut for longer than BATCHJOBS_SERVER_TIMEOUT: Backup's
    housekeeper fails CutOff's attempt and Backup runs the retry. When the path heals, the
    success CutOff kept retrying to record changes nothing."""
    url = backend.env["BATCHJOBS_DATABASE_URL"]
    proxy = CuttableProxy(make_url(url).port or 5432)
    try:
        group = unique("cut")
        release = tmp_path / "release"
        cut_off = start_server(unique("CutOff"), groups=[group], env={
            **IMPORTS, "BATCHJOBS_SERVER_TIMEOUT": "600",
            "BATCHJOBS_DATABASE_URL": url.replace(f":{make_url(url).port}/",
                                                  f":{proxy.port}/")})
        job_id = held_job(tmp_path, group, retries=1, release=str(release))
        pid_of(tmp_path, "held", 1)
        assert batchjobs.attempts(job_id)[0]["server"] == cut_off.name
        backup = start_server(unique("Backup"), groups=[group], env=IMPORTS)
        proxy.cut()
        pid_of(tmp_path, "held", 2)              # failed for lost, retried on Backup
        assert attempts_of(job_id)[0][1] == "error"
        release.touch()
        wait_for(lambda: log_says(cut_off, "failed (database unreachable)"), timeout=60,
                 message="CutOff retries recording its success")
        proxy.heal()
        wait_for(lambda: log_says(cut_off, "succeeded in"), timeout=120,
                 message="CutOff's report after the heal")
        assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ENDED
    finally:
        proxy.close()
    attempts = batchjobs.attempts(job_id)
    assert [(a["number"], a["outcome"], a["server"]) for a in attempts] == [
        (1, "error", cut_off.name), (2, "ended", backup.name)]
