"""The HTTP API in process on a fresh embedded default: authentication, roles, CSRF, the
JSON of jobs with their edges, and errors with the CLI's messages and the right codes."""

from __future__ import annotations

import pytest

from batchjobs.examples import job1
from tests.test_cli_validation import home  # noqa: F401 - fixture
from tests.web.conftest import log_in

JOB = {"description": "web job", "tasks": [
    {"name": "A", "process": "batchjobs.examples.noop"},
    {"name": "B", "process": "batchjobs.examples.noop",
     "depends_on": [{"task": "A", "status": "ended"}]}]}


def submit(client, people, name: str, job: dict | None = None, **params) -> dict:
    answer = client.post("/api/jobs", json=job or JOB, params=params,
                         headers=people.bearer(name))
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/1", "/api/servers", "/api/alerts",
                                  "/api/me"])
def test_without_a_token_or_session_the_api_answers_401(client, path):
    assert client.get(path).status_code == 401


def test_a_wrong_or_revoked_token_is_401(client, people):
    from batchjobs import auth

    assert client.get("/api/me", headers={"Authorization": "Bearer bj_nope"}).status_code == 401
    auth.revoke_tokens("alice")
    assert client.get("/api/me", headers=people.bearer("alice")).status_code == 401
    assert client.get("/api/me", headers=people.bearer("bob")).json() == {
        "name": "bob", "role": "user"}


def test_a_job_is_the_status_json_with_one_edge_per_condition(client, people):
    from batchjobs import api

    job = job1().to_dict()
    created = submit(client, people, "alice", job, hold="true")
    assert created["status"] == "hold" and created["created_by"] == "alice"
    shown = client.get(f"/api/jobs/{created['id']}", headers=people.bearer("alice")).json()
    edges = shown.pop("edges")
    assert shown == api.status(created["id"])
    assert len(edges) == 7
    assert {"from": "TASK 2", "to": "TASK 5", "expect": "error"} in edges
    assert {"from": "TASK 4", "to": "TASK 7", "expect": "ended"} in edges


def test_a_user_sees_only_their_own_jobs_and_another_s_is_404(client, people):
    mine = submit(client, people, "alice", hold="true")["id"]
    theirs = submit(client, people, "bob", hold="true")["id"]
    listed = client.get("/api/jobs", headers=people.bearer("alice")).json()
    assert [j["id"] for j in listed["jobs"]] == [mine]
    for path in (f"/api/jobs/{theirs}", f"/api/jobs/{theirs}/attempts",
                 f"/api/jobs/{theirs}/runs"):
        assert client.get(path, headers=people.bearer("alice")).status_code == 404
    refused = client.post(f"/api/jobs/{theirs}/release", headers=people.bearer("alice"))
    assert refused.status_code == 404
    assert client.get(f"/api/jobs/{theirs}", headers=people.bearer("bob")).json()["status"] \
        == "hold"


def test_an_operator_sees_and_controls_every_job_but_changes_no_server(client, people):
    theirs = submit(client, people, "bob", hold="true")["id"]
    listed = client.get("/api/jobs", headers=people.bearer("olga")).json()
    assert [j["id"] for j in listed["jobs"]] == [theirs]
    canceled = client.post(f"/api/jobs/{theirs}/cancel", headers=people.bearer("olga"))
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    put = client.put("/api/servers/AOS1", json={"threads": 2}, headers=people.bearer("olga"))
    assert put.status_code == 403
    assert client.post("/api/groups", json={"name": "BG1"},
                       headers=people.bearer("olga")).status_code == 403
    assert client.get("/api/servers/AOS1", headers=people.bearer("admin")).status_code == 404


def test_an_admin_changes_servers_and_groups(client, people):
    admin = people.bearer("admin")
    assert client.post("/api/groups", json={"name": "BG1"}, headers=admin).status_code == 201
    put = client.put("/api/servers/AOS1", json={"groups": ["BG1"], "threads": 3,
                                                "schedule": "08:00-18:00=2",
                                                "timezone": "Europe/Oslo"}, headers=admin)
    assert put.status_code == 200, put.text
    assert (put.json()["groups"], put.json()["timezone"]) == (["BG1"], "Europe/Oslo")
    preview = client.get("/api/servers/AOS1/preview", params={"hours": 48}, headers=admin)
    assert preview.status_code == 200
    assert preview.json()["servers"][0]["timezone"] == "Europe/Oslo"
    assert client.delete("/api/groups/BG1", headers=admin).status_code == 409  # in use
    assert client.delete("/api/servers/AOS1", headers=admin).status_code == 204


@pytest.mark.parametrize(("job", "words"), [
    ({"description": "x", "tasks": [{"name": "A", "process": "no_such_module_xyz.run"}]},
     ["task 'A'", "no_such_module_xyz.run"]),
    ({"description": "x", "tasks": [{"name": "A", "process": "batchjobs.examples.noop",
                                     "depends_on": [{"task": "Z", "status": "ended"}]}]},
     ["'Z'"]),
    ({"description": "x", "tasks": []}, ["task"]),
    ({"description": "x", "tasks": [{"name": "A", "process": "batchjobs.examples.noop",
                                     "group": "NOPE"}]}, ["NOPE"]),
])
def test_a_bad_definition_is_400_with_the_cli_s_message_and_stores_nothing(
        client, people, job, words):
    answer = client.post("/api/jobs", json=job, headers=people.bearer("alice"))
    assert answer.status_code == 400, answer.text
    for word in words:
        assert word in answer.json()["error"]
    assert client.get("/api/jobs", headers=people.bearer("admin")).json()["total"] == 0


@pytest.mark.parametrize("body", ["[1, 2]", "not json", '"text"'])
def test_a_body_that_is_not_a_json_object_is_400(client, people, body):
    answer = client.post("/api/jobs", content=body, headers={
        **people.bearer("alice"), "Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize("job_id", ["0", "-1", "99", str(2**31), str(2**80), "abc"])
def test_an_id_that_does_not_exist_is_404(client, people, job_id):
    answer = client.get(f"/api/jobs/{job_id}", headers=people.bearer("admin"))
    assert answer.status_code == 404, answer.text
    assert "no job" in answer.json()["error"]


def test_a_wrong_state_is_409_naming_the_job_and_its_status(client, people):
    held = submit(client, people, "alice", hold="true")["id"]
    answer = client.post(f"/api/jobs/{held}/hold", headers=people.bearer("alice"))
    assert answer.status_code == 409
    assert answer.json()["error"] == f"job {held} is hold: only a waiting job can be held"


@pytest.mark.parametrize("hours", [0, 169, "many"])
def test_hours_out_of_bounds_are_400(client, people, hours):
    answer = client.get("/api/capacity", params={"hours": hours}, headers=people.bearer("olga"))
    assert answer.status_code == 400 and "hours" in answer.json()["error"]


def test_a_session_cookie_alone_never_acts_the_csrf_token_must_come_with_it(client, people):
    held = submit(client, people, "alice", hold="true")["id"]
    csrf = log_in(client, "alice")
    assert client.get(f"/api/jobs/{held}").status_code == 200      # reading is fine
    assert client.post(f"/api/jobs/{held}/release").status_code == 403
    assert client.post(f"/api/jobs/{held}/release",
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(f"/jobs/{held}/release", follow_redirects=False).status_code == 403
    assert client.get(f"/api/jobs/{held}").json()["status"] == "hold"
    done = client.post(f"/jobs/{held}/release", data={"csrf_token": csrf},
                       follow_redirects=False)
    assert done.status_code == 303
    assert client.get(f"/api/jobs/{held}").json()["status"] != "hold"


def test_a_wrong_password_or_a_login_without_its_form_token_opens_no_session(client, people):
    form = client.get("/login")
    token = form.text.split('name="login_token" value="')[1].split('"')[0]
    wrong = client.post("/login", data={"username": "alice", "password": "nope-nope",
                                        "login_token": token}, follow_redirects=False)
    assert wrong.status_code == 401 and "bj_session" not in wrong.cookies
    client.cookies.clear()
    forged = client.post("/login", data={"username": "alice", "password": "s3cret-password",
                                         "login_token": token}, follow_redirects=False)
    assert forged.status_code == 403 and "bj_session" not in forged.cookies
    assert client.get("/jobs", follow_redirects=False).headers["location"] == "/login"


def test_a_new_password_ends_the_sessions_signed_before_it(client, people):
    from batchjobs import auth

    log_in(client, "alice")
    assert client.get("/api/me").status_code == 200
    auth.set_password("alice", "another-password")
    assert client.get("/api/me").status_code == 401


def test_the_openapi_document_lists_the_api(client):
    document = client.get("/api/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel",
            "/api/servers/{name}/preview", "/api/groups", "/api/alerts"} <= set(document["paths"])


def test_jobs_are_listed_newest_first_filtered_and_paged(client, people):
    first = submit(client, people, "alice", {**JOB, "description": "nightly posting"},
                   hold="true")["id"]
    second = submit(client, people, "bob", {**JOB, "description": "month end"},
                    hold="true")["id"]
    third = submit(client, people, "bob", {**JOB, "description": "nightly 100%"},
                   hold="true")["id"]
    client.post(f"/api/jobs/{second}/cancel", headers=people.bearer("bob"))
    admin = people.bearer("admin")

    def ids(**params) -> list[int]:
        answer = client.get("/api/jobs", params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        return [j["id"] for j in answer.json()["jobs"]]

    assert ids() == [third, second, first]
    assert ids(status="canceled") == [second]
    assert ids(user="bob") == [third, second]
    assert ids(description="NIGHTLY") == [third, first]
    assert ids(description="100%") == [third]             # % is a character, not a wildcard
    assert ids(per_page=2, page=2) == [first]
    row = client.get("/api/jobs", params={"status": "canceled"}, headers=admin).json()["jobs"][0]
    assert row["tasks"] == {"canceled": 2} and row["run"] == 1
    assert client.get("/api/jobs", params={"status": "nope"}, headers=admin).status_code == 400
