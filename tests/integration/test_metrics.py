"""A batch server's /metrics and /healthz, and ``batchjobs server health``, on real servers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

import batchjobs
from batchjobs import JobSpec, lifecycle, store
from batchjobs.groups import add_group
from batchjobs.launch import ServerProcess
from batchjobs.models import AlertDelivery, Job, Task
from tests.helpers import by_name, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200, text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def figure(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def health_cli(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                           "server", "health", name],
                          capture_output=True, text=True, timeout=60, env=os.environ)


def counts(column, *where) -> dict[str, int]:
    with store.read_session() as session:
        return dict(session.execute(select(column, func.count()).where(*where)
                                    .group_by(column)).all())


@pytest.fixture
def metered(start_server) -> Callable[..., tuple[ServerProcess, int]]:
    def start(name: str, group: str, threads: int = 1,
              env: dict[str, str] | None = None) -> tuple[ServerProcess, int]:
        port = free_port()
        proc = start_server(name, groups=[group], threads=threads,
                            env={"BATCHJOBS_METRICS_PORT": str(port), **(env or {})})
        wait_for(lambda: _answers(port), timeout=60, message=f"{name} serves /healthz")
        return proc, port
    return start


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_metrics_show_attempts_hops_running_threads_and_installation_figures(metered):
    group, idle = f"met-{uuid.uuid4().hex[:6]}", f"idle-{uuid.uuid4().hex[:6]}"
    name = f"Metered-{uuid.uuid4().hex[:6]}"
    # An email sink: the alert of a user without an address is a delivery failed at once
    # (nothing is sent; the URL is never contacted).
    _, port = metered(name, group, threads=2, env={"BATCHJOBS_SMTP_URL": "smtp://127.0.0.1:1"})
    failed_before = figure(scrape(port), "batchjobs_alert_deliveries", status="failed")
    job = JobSpec("metered", alert="error")
    job.add_task("A", "batchjobs.examples.sleep", kwargs={"seconds": 0.3}, group=group)
    job.add_task("B", "batchjobs.examples.noop", depends_on=["A"], group=group)
    job.add_task("C", "batchjobs.examples.fail", depends_on=["B"], group=group)
    job_id = batchjobs.submit(job, user=f"nomail-{name}")
    assert batchjobs.wait(job_id, timeout=60) is batchjobs.JobStatus.ERROR

    # This server's histograms: three attempts (two ended, one error), two hops (B, C).
    def observed() -> Samples | None:
        samples = scrape(port)
        done = figure(samples, "batchjobs_attempt_duration_seconds_count", server=name,
                      outcome="ended")
        return samples if done == 2 else None
    samples = wait_for(observed, timeout=30, message="two ended attempts observed")
    assert figure(samples, "batchjobs_attempt_duration_seconds_count", server=name,
                  outcome="error") == 1
    assert figure(samples, "batchjobs_attempt_duration_seconds_sum", server=name,
                  outcome="ended") >= 0.3
    assert figure(samples, "batchjobs_attempt_duration_seconds_bucket", server=name,
                  outcome="ended", le="0.1") == 1        # B; A slept 0.3 s
    assert figure(samples, "batchjobs_dependency_hop_seconds_count", server=name) == 2
    assert figure(samples, "batchjobs_dependency_hop_seconds_bucket", server=name,
                  le="+Inf") == 2

    # Running per server, threads now vs applied: a long task holds one of two threads.
    long_job = JobSpec("long")
    long_job.add_task("L", "batchjobs.examples.sleep", kwargs={"seconds": 60}, group=group)
    long_id = batchjobs.submit(long_job)
    wait_for(lambda: by_name(batchjobs.status(long_id))["L"]["status"] == "executing",
             timeout=60, message="L executing")
    # Ready tasks and queued messages of a group no server serves.
    add_group(idle)
    waiting = JobSpec("unserved")
    for i in range(3):
        waiting.add_task(f"W{i}", "batchjobs.examples.noop", group=idle)
    waiting_id = batchjobs.submit(waiting)
    try:
        samples = scrape(port)
        assert figure(samples, "batchjobs_server_running_tasks", server=name) == 1
        assert figure(samples, "batchjobs_server_threads_now", server=name) == 2
        assert figure(samples, "batchjobs_server_threads_applied", server=name) == 2
        assert figure(samples, "batchjobs_server_live", server=name) == 1
        assert figure(samples, "batchjobs_ready_tasks", group=idle) == 3
        assert figure(samples, "batchjobs_queue_messages", group=idle) == 3
        assert figure(samples, "batchjobs_queue_messages", group=group) == 0
        # Installation-wide figures are the database's.
        jobs, tasks = counts(Job.status), counts(Task.status)
        for status in ("ended", "error", "executing", "canceled"):
            assert figure(samples, "batchjobs_jobs", status=status) == jobs.get(status, 0)
        for status in ("ready", "executing", "ended", "error", "not_run"):
            assert figure(samples, "batchjobs_tasks", status=status) == tasks.get(status, 0)
        deliveries = counts(AlertDelivery.status)
        failed = figure(samples, "batchjobs_alert_deliveries", status="failed")
        assert failed == deliveries["failed"] == failed_before + 1
    finally:
        lifecycle.cancel(long_id)
        lifecycle.cancel(waiting_id)


def test_healthz_and_server_health_follow_the_heartbeat(metered):
    name = f"Probed-{uuid.uuid4().hex[:6]}"
    proc, port = metered(name, "default")
    status, text = get(port, "/healthz")
    assert status == 200 and text.startswith(f"{name} healthy")
    assert get(port, "/nowhere")[0] == 404
    answer = health_cli(name)
    assert answer.returncode == 0 and answer.stdout.startswith(f"{name} healthy"), answer

    # A housekeeper that no longer runs stops the heartbeat: unhealthy, though the process lives.
    keeper = int(wait_for(lambda: re.search(r"housekeeper of \S+ running in process (\d+)",
                                            proc.log_tail(400)), timeout=30,
                          message="housekeeper pid in the log").group(1))
    os.kill(keeper, signal.SIGSTOP)
    try:
        wait_for(lambda: get(port, "/healthz")[0] == 503, timeout=60,
                 message="/healthz answers 503")
        assert "no heartbeat for" in get(port, "/healthz")[1]
        answer = health_cli(name)
        assert answer.returncode == 1 and "unhealthy: no heartbeat for" in answer.stderr, answer
    finally:
        os.kill(keeper, signal.SIGCONT)
    wait_for(lambda: get(port, "/healthz")[0] == 200, timeout=60, message="healthy again")

    proc.stop()
    # Stopped ("stopped" when the shutdown cleared the heartbeat, else once it ages).
    answer = wait_for(lambda: (a := health_cli(name)).returncode == 1 and a, timeout=60,
                      message="unhealthy once stopped")
    assert re.match(rf"{name} unhealthy: (stopped|no heartbeat for)", answer.stderr), answer
    unknown = health_cli("NoSuchServer")
    assert unknown.returncode == 2 and "NoSuchServer" in unknown.stderr
    assert "Traceback" not in unknown.stderr
