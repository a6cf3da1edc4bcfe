"""Alerts end to end: each setting against each outcome, delivered by a real server's
housekeeper to a real SMTP server and a real webhook on 127.0.0.1, and a sink that is
down (retried, logged, never changing the job)."""

from __future__ import annotations

import json
import uuid

import pytest

import batchjobs
from batchjobs import JobSpec
from batchjobs.groups import add_group
from tests.helpers import wait_for
from tests.test_sinks import free_port, hook, smtp  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def job_alerts(job_id: int) -> list[dict]:
    return [a for a in batchjobs.list_alerts(limit=1000) if a["job_id"] == job_id]


def one_task_job(alert: str, *, fail: bool, group: str = "default") -> JobSpec:
    job = JobSpec(f"alert {alert} {'failing' if fail else 'passing'}", alert=alert)
    job.add_task("only", "batchjobs.examples.fail" if fail else "batchjobs.examples.noop",
                 group=group)
    return job


@pytest.mark.parametrize(("setting", "fail", "alerted"), [
    ("always", False, True), ("always", True, True),
    ("error", False, False), ("error", True, True),
    ("never", False, False), ("never", True, False),
])
def test_each_alert_setting_against_each_outcome(servers, setting, fail, alerted):
    job_id = batchjobs.submit(one_task_job(setting, fail=fail), user="carol")
    status = batchjobs.wait(job_id, timeout=30)
    assert status is (batchjobs.JobStatus.ERROR if fail else batchjobs.JobStatus.ENDED)
    found = job_alerts(job_id)
    assert len(found) == (1 if alerted else 0)
    if alerted:
        alert = found[0]
        assert (alert["user"], alert["status"], alert["run"]) == ("carol", status.value, 1)
        assert alert["deliveries"] == []        # no sink configured on these servers
        assert [t["name"] for t in alert["failed_tasks"]] == (["only"] if fail else [])
    assert batchjobs.list_alerts(user="nobody-" + uuid.uuid4().hex) == []


def test_a_failed_job_delivers_one_webhook_post_and_one_email(start_server, hook, smtp):
    group = f"alerts-{uuid.uuid4().hex[:6]}"
    add_group(group)
    batchjobs.add_user("dave", email="dave@example.test")
    start_server(f"A-{group}", groups=[group], env={
        "BATCHJOBS_ALERT_WEBHOOK": hook.url(), "BATCHJOBS_SMTP_URL": smtp.url(),
        "BATCHJOBS_ALERT_EMAIL_FROM": "batch@example.test"})
    job = JobSpec("nightly posting", alert="error")
    job.add_task("post ledger", "batchjobs.examples.fail",
                 kwargs={"message": "ledger is locked"}, group=group)
    job.add_task("report", "batchjobs.examples.noop", group=group)
    job_id = batchjobs.submit(job, user="dave")
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ERROR

    wait_for(lambda: hook.requests and smtp.mailbox.messages, timeout=20,
             message="webhook and email delivered")
    wait_for(lambda: all(d["status"] == "sent" for d in job_alerts(job_id)[0]["deliveries"]),
             timeout=10, message="deliveries marked sent")
    assert len(hook.requests) == 1
    body = json.loads(hook.requests[0]["body"])
    assert (body["job_id"], body["status"], body["user"]) == (job_id, "error", "dave")
    assert body["failed_tasks"][0]["name"] == "post ledger"
    assert "ledger is locked" in body["failed_tasks"][0]["error"]
    sender, recipients, message = smtp.mailbox.messages[0]
    assert (sender, recipients) == ("batch@example.test", ["dave@example.test"])
    assert "post ledger" in message.get_content() and str(job_id) in message["Subject"]
    assert len(smtp.mailbox.messages) == 1


def test_a_sink_that_is_down_is_retried_and_never_changes_the_job(start_server):
    group = f"down-{uuid.uuid4().hex[:6]}"
    add_group(group)
    start_server(f"D-{group}", groups=[group], env={
        "BATCHJOBS_ALERT_WEBHOOK": f"http://127.0.0.1:{free_port()}/hook"})
    job_id = batchjobs.submit(one_task_job("always", fail=False, group=group))
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED

    def tried() -> dict | None:
        found = job_alerts(job_id)
        delivery = found[0]["deliveries"][0] if found and found[0]["deliveries"] else None
        return delivery if delivery and delivery["tries"] >= 1 and delivery["last_error"] \
            else None

    delivery = wait_for(tried, timeout=20, message="a failed delivery try")
    assert delivery["status"] == "pending" and "refused" in delivery["last_error"]
    assert batchjobs.status(job_id)["status"] == "ended"


def test_an_email_alert_for_a_user_without_address_fails_at_once_saying_why(start_server,
                                                                            smtp):
    group = f"noaddr-{uuid.uuid4().hex[:6]}"
    add_group(group)
    start_server(f"N-{group}", groups=[group], env={"BATCHJOBS_SMTP_URL": smtp.url()})
    job_id = batchjobs.submit(one_task_job("always", fail=False, group=group),
                              user=f"ghost-{group}")
    assert batchjobs.wait(job_id, timeout=30) is batchjobs.JobStatus.ENDED
    delivery = job_alerts(job_id)[0]["deliveries"][0]
    assert (delivery["sink"], delivery["status"], delivery["tries"]) == ("email", "failed", 0)
    assert "has no email address" in delivery["last_error"]
    assert smtp.mailbox.messages == []
