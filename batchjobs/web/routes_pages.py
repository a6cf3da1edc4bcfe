"""The console's pages: login, jobs, a job (graph, timeline, attempts, runs, actions),
servers (with their capacity ahead), groups, alerts.

Each page renders whole on a GET; asked with ``X-Fragment: 1`` it renders only its live
block, which the page's script fetches once a second and swaps in when it changed.
Actions are forms posted with the session's CSRF token and confirmed in the browser.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import alerts, api, auth, capacity, clock, groups, lifecycle, servers
from ..errors import BatchJobsError, JobNotFound
from ..status import JOB_FINAL, JobStatus, TaskStatus
from . import drawing, queries
from .failures import status_of
from .security import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Caller,
    caller,
    check_csrf,
)

router = APIRouter(include_in_schema=False)

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))
_templates.globals["t"] = lambda value: value[:19].replace("T", " ") if value else "-"

#: Actions a job page offers, by the job's status: (path, label, dangerous).
_ACTIONS: dict[str, list[tuple[str, str, bool]]] = {
    JobStatus.WAITING: [("hold", "Hold", False), ("cancel", "Cancel", True)],
    JobStatus.HOLD: [("release", "Release", False), ("cancel", "Cancel", True)],
    JobStatus.EXECUTING: [("cancel", "Cancel", True)],
}
_FINAL_ACTIONS = [("rerun", "Rerun", False), ("rerun-failed", "Rerun failed", False)]


def _age(value: str | None) -> str:
    if not value:
        return "never"
    seconds = (clock.now() - datetime.fromisoformat(value)).total_seconds()
    return f"{seconds:.0f} s ago"


_templates.globals["age"] = _age


def _render(request: Request, name: str, who: Caller | None, status: int = 200,
            etag: str | None = None, **context: Any) -> HTMLResponse:
    fragment = request.headers.get("x-fragment") == "1" and "live" in context
    template = context.pop("live") if fragment else name
    context.setdefault("notice", request.app.state.signer.read_notice(
        request.query_params.get("notice")))
    html = _templates.get_template(template).render(
        me=who.principal if who else None, csrf=who.csrf if who else "",
        live_url=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context)
    headers = {"Cache-Control": "no-store", **({"ETag": etag} if etag else {})}
    return HTMLResponse(html, status_code=status, headers=headers)


def _page_caller(request: Request) -> Caller:
    return caller(request, request.app.state.signer, request.app.state.settings)


def _settings(request: Request) -> Any:
    return request.app.state.settings


# -- login ----------------------------------------------------------------------------


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token, cookie = request.app.state.signer.login_token()
    response = _render(request, "login.html", None, status=status, title="Log in",
                       login_token=token, error=error)
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=LOGIN_MAX_AGE, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
def login(request: Request, username: str = Form(""), password: str = Form(""),
          login_token: str = Form("")) -> Response:
    signer = request.app.state.signer
    if not signer.login_token_matches(request.cookies.get(LOGIN_COOKIE), login_token):
        return _login_page(request, "The login form expired; try again.", status=403)
    found = auth.authenticate(username, password, settings=_settings(request))
    if found is None:
        return _login_page(request, "Wrong user name or password.", status=401)
    response = RedirectResponse("/jobs", status_code=303)
    response.set_cookie(SESSION_COOKIE, signer.session(found), max_age=SESSION_MAX_AGE,
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    who = _page_caller(request)
    check_csrf(request, who, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse("/jobs", status_code=303)


# -- jobs -----------------------------------------------------------------------------


@router.get("/jobs")
def jobs(request: Request, status: str = "", user: str = "", description: str = "",
         page: int = 1) -> Response:
    who = _page_caller(request)
    if status not in {s.value for s in JobStatus}:
        status = ""
    if not who.principal.sees_every_job:
        user = who.principal.name
    shown = queries.jobs_page(page=min(max(page, 1), 100_000), status=status or None,
                              user=user or None, description=description[:500] or None,
                              settings=_settings(request))
    filters = {"status": status, "user": user, "description": description}

    def page_url(number: int) -> str:
        return "/jobs?" + urlencode({**{k: v for k, v in filters.items() if v},
                                     "page": number})

    return _render(request, "jobs.html", who, title="Jobs", live="jobs_live.html",
                   page=shown, filters=filters, statuses=[s.value for s in JobStatus],
                   page_url=page_url)


def _visible(request: Request, job_id: int, who: Caller) -> None:
    if not who.principal.may_see(queries.owner(job_id, settings=_settings(request))):
        raise JobNotFound(job_id)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: int) -> Response:
    who = _page_caller(request)
    settings = _settings(request)
    try:
        created_by, version = queries.job_version(job_id, settings=settings)
        if not who.principal.may_see(created_by):
            raise JobNotFound(job_id)
    except JobNotFound as exc:
        return _render(request, "base.html", who, status=404, title="Not found",
                       notice=str(exc))
    fragment = request.headers.get("x-fragment") == "1"
    if fragment and request.headers.get("if-none-match") == version:
        return Response(status_code=304, headers={"ETag": version,
                                                  "Cache-Control": "no-store"})
    job = api.status(job_id, settings=settings)
    shape = queries.graph(job_id, settings=settings)
    tried = api.attempts(job_id, settings=settings)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for a in tried:
        by_task.setdefault(a["task"], []).append(a)
    panels = job["tasks"] if len(job["tasks"]) <= drawing.MAX_DRAWN_TASKS else []
    actions = _ACTIONS.get(job["status"], _FINAL_ACTIONS if job["status"] in JOB_FINAL else [])
    return _render(
        request, "job.html", who, title=f"Job {job_id}", live="job_live.html", job=job,
        graph=drawing.task_graph(job["tasks"], shape["edges"], shape["condition_types"]),
        timeline=drawing.timeline(tried, now=clock.now()), attempts_by_task=by_task, panels=panels,
        not_run=[t for t in job["tasks"]
                 if t["status"] == TaskStatus.NOT_RUN][:drawing.MAX_DRAWN_TASKS],
        runs=api.history(job_id, settings=settings), actions=actions,
        task_statuses=[s.value for s in TaskStatus], etag=version if fragment else None)


@router.post("/jobs/{job_id}/{action}")
def job_action(request: Request, job_id: int, action: str,
               csrf_token: str = Form("")) -> Response:
    who = _page_caller(request)
    check_csrf(request, who, csrf_token)
    settings = _settings(request)
    done = {"hold": "held", "release": "released", "cancel": "canceled", "rerun": "rerun",
            "rerun-failed": "rerun (failed tasks)"}
    if action not in done:
        return _render(request, "base.html", who, status=404, title="Not found",
                       notice=f"no action {action!r}")
    try:
        _visible(request, job_id, who)
        if action == "hold":
            lifecycle.hold(job_id, settings=settings)
        elif action == "release":
            lifecycle.release(job_id, settings=settings)
        elif action == "cancel":
            lifecycle.cancel(job_id, settings=settings)
        else:
            lifecycle.rerun(job_id, failed=action == "rerun-failed", settings=settings)
    except BatchJobsError as exc:
        if isinstance(exc, JobNotFound):
            return _render(request, "base.html", who, status=404, title="Not found",
                           notice=str(exc))
        if status_of(exc) >= 500:
            raise
        return _back_to(request, job_id, str(exc))
    return _back_to(request, job_id, f"job {job_id} {done[action]}")


def _back_to(request: Request, job_id: int, notice: str) -> Response:
    signed = request.app.state.signer.notice(notice)
    return RedirectResponse(f"/jobs/{job_id}?" + urlencode({"notice": signed}), status_code=303)


# -- servers, groups, alerts ----------------------------------------------------------


@router.get("/servers")
def servers_page(request: Request) -> Response:
    who = _page_caller(request)
    settings = _settings(request)
    rows = servers.list_servers(settings=settings)
    hours = capacity.DEFAULT_HOURS
    ahead = capacity.preview(rows, now=clock.now(), hours=hours)
    strips = {s["name"]: drawing.capacity_strip(s["name"], s["changes"], hours=hours,
                                                timezone=s["timezone"])
              for s in ahead["servers"]}
    group_strips = {g["name"]: drawing.capacity_strip(g["name"], g["changes"], hours=hours,
                                                      timezone=g["timezone"], kind="group")
                    for g in ahead["groups"]}
    return _render(request, "servers.html", who, title="Servers", live="servers_live.html",
                   servers=rows, capacity=ahead, strips=strips, group_strips=group_strips,
                   hours=hours)


@router.get("/groups")
def groups_page(request: Request) -> Response:
    who = _page_caller(request)
    return _render(request, "groups.html", who, title="Groups", live="groups_live.html",
                   groups=groups.list_groups(settings=_settings(request)))


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    who = _page_caller(request)
    return _render(request, "alerts.html", who, title="Alerts", live="alerts_live.html",
                   alerts=alerts.list_alerts(user=who.principal.name,
                                             settings=_settings(request)))

