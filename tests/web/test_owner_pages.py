"""The console with owners: a job held because its owner was disabled says why, on its page
and in the jobs list; releasing it while the owner is disabled is a 409 naming the user."""

from __future__ import annotations

from datetime import timedelta

from batchjobs import api, clock, owners
from batchjobs.examples import job1
from tests.test_cli_validation import home  # noqa: F401 - fixture
from tests.web.conftest import log_in


def test_the_hold_reason_shows_on_the_job_page_and_the_list(client, people):
    later = job1()
    later.run_at = clock.now() + timedelta(days=1)
    job_id = api.submit(later, user="alice")
    api_job = client.get(f"/api/jobs/{job_id}", headers=people.bearer("alice")).json()
    assert api_job["hold_reason"] is None
    owners.disable_user("alice")
    log_in(client, "olga")
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-hold-reason="owner alice disabled"' in page
    listed = client.get("/jobs").text
    assert f'data-hold-reason-of="{job_id}">owner alice disabled<' in listed
    answer = client.post(f"/api/jobs/{job_id}/release", headers=people.bearer("olga"))
    assert answer.status_code == 409
    assert "'alice'" in answer.json()["error"] and str(job_id) in answer.json()["error"]
    api_job = client.get(f"/api/jobs/{job_id}", headers=people.bearer("olga")).json()
    assert (api_job["status"], api_job["hold_reason"]) == ("hold", "owner alice disabled")
