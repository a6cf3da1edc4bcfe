"""Faults an operator meets: processes killed, servers stopped, services restarted, forged
or repeated messages. Each test waits for states (never for a time bound) and asserts the
final statuses and the attempts."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import batchjobs
from batchjobs import JobSpec, clock
from batchjobs.launch import ServerProcess
from tests.helpers import by_name, wait_for

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
          ) -> tuple[ServerProcess, str]:
    group = unique(prefix.lower())
    return start_server(unique(prefix), groups=[group], threads=threads, env=IMPORTS), group


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
