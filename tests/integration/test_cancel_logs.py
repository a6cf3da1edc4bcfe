"""A cancel leaves no false warning in the servers' logs (there is no result backend)."""

from __future__ import annotations

import pytest

import batchjobs
from batchjobs import JobSpec, lifecycle
from batchjobs.app import app
from tests.helpers import statuses, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


def test_cancel_logs_no_result_backend_warning_on_any_server(servers):
    job = JobSpec("cancel quietly")
    job.add_task("A", "batchjobs.examples.sleep", kwargs={"seconds": 30})
    job_id = batchjobs.submit(job)
    wait_for(lambda: statuses(batchjobs.status(job_id))["A"] == "executing", timeout=60,
             message="A executing")
    assert lifecycle.cancel(job_id) == 1
    # Remote-control commands reach each server in order: once both answer a ping sent
    # after the revoke, both have handled the revoke (and logged whatever it logs).
    def answered() -> bool:
        replies = app.control.ping(timeout=2.0)
        return set(servers) <= {host.split("@")[0] for reply in replies for host in reply}
    wait_for(answered, timeout=60, message="both servers answer a ping after the revoke")
    logs = {name: proc.log_tail(400) for name, proc in servers.items()}
    assert not [name for name, text in logs.items() if "No result backend" in text], logs
    assert statuses(batchjobs.status(job_id)) == {"A": "canceled"}
