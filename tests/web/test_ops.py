"""The console's /healthz (for probes, no login) and /metrics (Prometheus, admin or
operator token): the same installation figures the batch servers serve."""

from __future__ import annotations

from batchjobs import JobSpec, submit
from tests.test_cli_validation import home  # noqa: F401 - fixture


def test_healthz_answers_without_login_while_the_database_does(client):
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_metrics_need_an_operator_or_admin_and_count_the_jobs(client, people):
    job = JobSpec("counted")
    job.add_task("A", "batchjobs.examples.noop")
    submit(job, user="alice", hold=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=people.bearer("alice")).status_code == 403
    answer = client.get("/metrics", headers=people.bearer("olga"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    assert 'batchjobs_jobs{status="hold"} 1.0' in lines
    assert 'batchjobs_tasks{status="waiting"} 1.0' in lines
