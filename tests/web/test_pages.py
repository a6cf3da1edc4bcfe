"""The console's pages in process on a fresh embedded default: the hooks the browser tests
use are in the HTML, a user's pages stop at their own jobs, the live fragment is the block."""

from __future__ import annotations

import re

import pytest

from batchjobs import api, lifecycle, servers
from batchjobs.examples import job1
from tests.test_cli_validation import home  # noqa: F401 - fixture
from tests.web.conftest import log_in


def test_the_job_page_draws_one_node_per_task_and_one_edge_per_condition(client, people):
    job_id = api.submit(job1(), user="alice", hold=True)
    log_in(client, "alice")
    page = client.get(f"/jobs/{job_id}").text
    assert len(re.findall(r'<g class="node st-hold|<g class="node st-waiting', page)) == 7
    assert re.findall(r'data-task="TASK \d"', page).__len__() >= 7
    edges = re.findall(r'data-from="([^"]+)" data-to="([^"]+)" data-expect="([^"]+)"', page)
    assert len(edges) == 7 and ("TASK 2", "TASK 5", "error") in edges
    assert 'data-action="release"' in page and 'data-action="cancel"' in page
    assert 'data-action="hold"' not in page


def test_a_canceled_job_offers_rerun_and_no_longer_cancel(client, people):
    job_id = api.submit(job1(), user="alice", hold=True)
    lifecycle.cancel(job_id)
    log_in(client, "alice")
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-status="canceled"' in page
    assert 'data-action="rerun"' in page and 'data-action="cancel"' not in page


def test_the_live_fragment_is_only_the_block(client, people):
    job_id = api.submit(job1(), user="alice", hold=True)
    log_in(client, "alice")
    fragment = client.get(f"/jobs/{job_id}", headers={"X-Fragment": "1"}).text
    assert "<html" not in fragment and 'data-task="TASK 1"' in fragment


def test_a_user_does_not_see_another_s_job_page_nor_its_row(client, people):
    theirs = api.submit(job1(), user="bob", hold=True)
    log_in(client, "alice")
    assert client.get(f"/jobs/{theirs}").status_code == 404
    assert f'data-job="{theirs}"' not in client.get("/jobs").text
    assert client.get("/jobs/abc").status_code == 404


def test_the_servers_page_shows_threads_now_and_a_capacity_strip(client, people):
    servers.set_server("AOS1", threads=3)
    servers.set_server("AOS2", threads=0)
    log_in(client, "olga")
    page = client.get("/servers").text
    assert 'data-server="AOS1" data-threads-now="3"' in page
    assert 'data-server="AOS2" data-threads-now="0"' in page
    assert 'data-strip-server="AOS1"' in page and 'data-strip-group="default"' in page
    assert 'data-group="default" data-threads-now="3"' in page


@pytest.mark.parametrize("path", ["/jobs", "/servers", "/groups", "/alerts", "/jobs/1"])
def test_every_page_asks_for_a_login_first(client, path):
    answer = client.get(path, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("path", ["/jobs", "/servers", "/groups", "/alerts"])
def test_every_page_renders_for_each_role(client, people, path):
    for name in ("admin", "olga", "alice"):
        client.cookies.clear()
        log_in(client, name)
        assert client.get(path).status_code == 200


def test_a_polling_page_gets_304_until_the_job_changes(client, people):
    job_id = api.submit(job1(), user="alice", hold=True)
    log_in(client, "alice")
    first = client.get(f"/jobs/{job_id}", headers={"X-Fragment": "1"})
    version = first.headers["ETag"]
    same = client.get(f"/jobs/{job_id}", headers={"X-Fragment": "1", "If-None-Match": version})
    assert same.status_code == 304
    lifecycle.cancel(job_id)
    changed = client.get(f"/jobs/{job_id}", headers={"X-Fragment": "1",
                                                     "If-None-Match": version})
    assert changed.status_code == 200 and 'data-job-status="canceled"' in changed.text
    assert changed.headers["ETag"] != version


def test_a_recurring_job_s_page_lists_its_runs(client, people):
    from batchjobs.definition import job_from_dict

    job = job_from_dict({"description": "nightly", "recurrence": {
        "cron": "0 2 * * *", "timezone": "Europe/Oslo", "end_after": 3},
        "tasks": [{"name": "A", "process": "batchjobs.examples.noop"}]})
    job_id = api.submit(job, user="alice", hold=True)
    log_in(client, "alice")
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-run="1"' in page and "recurring" in page


def test_an_action_s_outcome_is_told_and_a_forged_notice_is_not_shown(client, people):
    job_id = api.submit(job1(), user="alice", hold=True)
    csrf = log_in(client, "alice")
    done = client.post(f"/jobs/{job_id}/hold", data={"csrf_token": csrf})
    assert done.status_code == 200
    assert f"job {job_id} is hold: only a waiting job can be held" in done.text
    forged = client.get(f"/jobs/{job_id}", params={"notice": "call 555 now"})
    assert "call 555 now" not in forged.text


def test_a_failed_attempt_shows_its_traceback_and_log_on_the_job_page(client, people,
                                                                      monkeypatch):
    from sqlalchemy import select

    from batchjobs import JobSpec, store
    from batchjobs.coordinator import claim, record
    from batchjobs.execution import execute
    from batchjobs.models import Task
    from batchjobs.settings import get_settings

    monkeypatch.setenv("BATCHJOBS_IMPORTS", "tests.processes.samples")
    job = JobSpec("chatty")
    job.add_task("C", "tests.processes.samples.chatty_failure")
    job_id = api.submit(job, user="alice")
    settings = get_settings()
    with store.read_session(settings) as session:     # no server here: run it as one would
        task_id = session.execute(select(Task.id).where(Task.job_id == job_id)).scalar_one()
    claimed = claim(task_id, job_id, "S", settings=settings)
    assert claimed is not None
    result = execute(claimed, "S")
    record(task_id, claimed.attempt, result.outcome, result.error,
           traceback=result.traceback, log=result.log, settings=settings)
    log_in(client, "alice")
    page = client.get(f"/jobs/{job_id}").text
    assert 'data-attempt-detail="C#1"' in page
    assert "in _look_up" in page and "step 3 of 3 done" in page
