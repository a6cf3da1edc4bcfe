"""The console in headless Chromium (Playwright) with real batch servers on Redis +
PostgreSQL: JOB 1's graph and timeline updating live, a cancel from the page, a user kept
to their own jobs, a closed window shown as 0 threads; then the API fuzzed from its
OpenAPI document on the same local server (no answer is a 500).

Screenshots go to ``$BATCHJOBS_SCREENSHOTS`` (``docs/`` when refreshing the README's
pictures), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

import batchjobs
from batchjobs.examples import job1
from batchjobs.web import create_app
from tests.helpers import wait_for
from tests.web.conftest import PASSWORD, People, make_people

pytestmark = [pytest.mark.integration,
              pytest.mark.parametrize("backend", ["redis-pg"], indirect=True)]

CHROMIUM = "/usr/bin/chromium"
#: Generous for a loaded machine: the page polls once a second.
LIVE_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def console(backend) -> Iterator[str]:
    """``batchjobs web`` in a thread of this process, on the test's backend."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=60, message="the web console listens")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def people(backend) -> People:
    return make_people()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BATCHJOBS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def logged_in(browser: Browser, console: str, name: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{console}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console}/jobs")
    return page


def task_status(job_id: int, task: str) -> str:
    return next(t["status"] for t in batchjobs.status(job_id)["tasks"] if t["name"] == task)


def test_job1_page_shows_its_graph_and_timeline_updating_live(servers, console, people,
                                                              browser, shots):
    job_id = batchjobs.submit(job1(seconds=2.5), user="alice")
    wait_for(lambda: task_status(job_id, "TASK 1") == "executing", timeout=60,
             message="TASK 1 executes")
    page = logged_in(browser, console, "alice")
    page.goto(f"{console}/jobs/{job_id}")
    assert page.get_attribute("[data-job-status]", "data-job-status") == "executing"
    assert page.locator('g.node[data-task="TASK 7"] rect').evaluate(
        "rect => getComputedStyle(rect).fill") == "rgb(232, 234, 238)"   # waiting
    page.evaluate("window.notReloaded = true")
    expect(page.locator("g.node")).to_have_count(7)
    expect(page.locator("g.edge")).to_have_count(7)
    expect(page.locator('g.edge[data-from="TASK 2"][data-to="TASK 5"]')).to_have_attribute(
        "data-expect", "error")
    final = {"TASK 1": "ended", "TASK 2": "ended", "TASK 3": "ended", "TASK 4": "ended",
             "TASK 5": "not_run", "TASK 6": "not_run", "TASK 7": "ended"}
    for task, status in final.items():
        expect(page.locator(f'g.node[data-task="{task}"]')).to_have_attribute(
            "data-status", status, timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("[data-job-status]")).to_have_attribute(
        "data-job-status", "ended", timeout=LIVE_TIMEOUT_MS)
    fills = {task: page.locator(f'g.node[data-task="{task}"] rect').evaluate(
        "rect => getComputedStyle(rect).fill") for task in ("TASK 7", "TASK 5")}
    assert fills == {"TASK 7": "rgb(159, 220, 165)", "TASK 5": "rgb(213, 198, 239)"}
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator('[data-reason-of="TASK 5"]')).to_contain_text(
        "condition on 'TASK 2' can no longer hold: it is ended, the condition needs error")
    lanes = {a["server"] for a in batchjobs.attempts(job_id)}
    for lane in lanes:
        expect(page.locator(f'[data-lane="{lane}"]')).to_have_count(1)
    expect(page.locator('[data-attempt="TASK 7#1"]')).to_have_count(1)
    page.click('g.node[data-task="TASK 3"]')
    panel = page.locator('[data-attempts-of="TASK 3"]')
    expect(panel).to_be_visible()
    expect(panel.locator('[data-attempt-row="TASK 3#1"]')).to_contain_text("ended")
    page.screenshot(path=str(shots / "web-job.png"), full_page=True)


def test_a_running_job_is_canceled_from_its_page(servers, console, people, browser):
    job_id = batchjobs.submit(job1(seconds=60), user="alice")
    wait_for(lambda: task_status(job_id, "TASK 1") == "executing", timeout=60,
             message="TASK 1 executes")
    page = logged_in(browser, console, "alice")
    page.goto(f"{console}/jobs/{job_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[data-action="cancel"]')
    expect(page.locator("[data-job-status]")).to_have_attribute(
        "data-job-status", "canceled", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('g.node[data-task="TASK 1"]')).to_have_attribute("data-status",
                                                                         "canceled")
    assert batchjobs.status(job_id)["status"] == "canceled"


def test_a_user_can_neither_see_nor_act_on_another_user_s_job(servers, console, people,
                                                              browser):
    theirs = batchjobs.submit(job1(), user="bob", hold=True)
    page = logged_in(browser, console, "alice")
    answer = page.goto(f"{console}/jobs/{theirs}")
    assert answer is not None and answer.status == 404
    assert page.locator("g.node").count() == 0
    page.goto(f"{console}/jobs")
    expect(page.locator(f'tr[data-job="{theirs}"]')).to_have_count(0)
    # the browser's own session cookie alone cannot act, even on one's own job
    refused = page.request.post(f"{console}/api/jobs/{theirs}/release")
    assert refused.status == 403
    with httpx.Client(base_url=console, headers=people.bearer("alice")) as api:
        assert api.get(f"/api/jobs/{theirs}").status_code == 404
        assert api.post(f"/api/jobs/{theirs}/release").status_code == 404
    with httpx.Client(base_url=console) as anonymous:
        assert anonymous.get(f"/api/jobs/{theirs}").status_code == 401
    assert batchjobs.status(theirs)["status"] == "hold"


def test_the_servers_page_shows_a_closed_window_as_0_threads(servers, start_server, console,
                                                            people, browser, shots):
    opens = datetime.now(UTC) + timedelta(hours=3)
    window = f"{opens:%H:00}-{opens + timedelta(hours=2):%H:00}=4"
    start_server("Closed1", groups=["nightly"], threads=1, schedule=window, timezone="UTC")
    page = logged_in(browser, console, "olga")
    page.goto(f"{console}/servers")
    row = page.locator('[data-server="Closed1"]')
    expect(row).to_have_attribute("data-threads-now", "0")
    expect(row).to_have_attribute("data-live", "yes")
    strip = row.locator('[data-strip-server="Closed1"] rect')
    expect(strip.first).to_have_attribute("data-threads", "0")
    expect(row.locator('rect[data-threads="4"]')).to_have_count(1)
    expect(page.locator('[data-server="Batch1"]')).to_have_attribute("data-threads-now", "1")
    page.screenshot(path=str(shots / "web-servers.png"), full_page=True)


# -- the API fuzzed from its own OpenAPI document -------------------------------------

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_generated_request_without_a_500(case, console, people):
    response = case.call(base_url=console, headers=people.bearer("admin"), timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
