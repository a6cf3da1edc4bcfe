"""The HTTP API under ``/api``: jobs, their attempts and runs, servers and their capacity,
groups, alerts. JSON in and out; the same checks and messages as the CLI.

Every route needs a caller (:mod:`.security`); a ``user`` sees only the jobs they created
(another's is 404, as if it did not exist), an ``operator`` every job, an ``admin``
everything and is the only one who may change servers and groups (403 for the others).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from .. import alerts, api, capacity, groups, lifecycle, servers
from ..definition import job_from_dict
from ..errors import InvalidValue, JobNotFound, ServerNotFound
from ..status import JobStatus
from . import queries
from .security import Caller, Forbidden, caller, check_csrf

router = APIRouter()


_bearer = HTTPBearer(auto_error=False, description="a token of `batchjobs user token NAME`")


def api_caller(request: Request,
               _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
               ) -> Caller:
    """The authenticated caller; a cookie-authenticated change must carry the CSRF header.
    (``_token`` only documents the scheme in the OpenAPI document.)"""
    who = caller(request, request.app.state.signer, request.app.state.settings)
    check_csrf(request, who)
    return who


Who = Annotated[Caller, Depends(api_caller)]


def admin(who: Who) -> Caller:
    if not who.principal.manages_servers:
        raise Forbidden(f"user {who.principal.name!r} ({who.principal.role.value}) may not "
                        "change servers or groups (admin only)")
    return who


Admin = Annotated[Caller, Depends(admin)]
Hours = Annotated[int, Query(ge=1, le=capacity.MAX_HOURS, description="1 to 168")]


def visible_job(request: Request, job_id: int, who: Caller) -> int:
    """``job_id`` if the caller may see it, else :class:`JobNotFound` (404)."""
    created_by = queries.owner(job_id, settings=request.app.state.settings)
    if not who.principal.may_see(created_by):
        raise JobNotFound(job_id)
    return job_id


def _job_view(request: Request, job_id: int) -> dict[str, Any]:
    settings = request.app.state.settings
    data = api.status(job_id, settings=settings)
    data["edges"] = queries.graph(job_id, settings=settings)["edges"]
    return data


class ServerBody(BaseModel):
    """What ``batchjobs server set`` takes; fields left out do not change."""

    model_config = ConfigDict(extra="forbid")
    groups: list[str] | None = None
    threads: int | None = None
    schedule: str | None = None
    timezone: str | None = None


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = Field(default="", max_length=2000)


# -- who am I -------------------------------------------------------------------------


@router.get("/me", summary="The authenticated user and their role")
def me(who: Who) -> dict[str, Any]:
    return {"name": who.principal.name, "role": who.principal.role.value}


# -- jobs -----------------------------------------------------------------------------


@router.get("/jobs", summary="Jobs, newest first, paged and filtered")
def list_jobs(request: Request, who: Who, status: JobStatus | None = None,
              user: Annotated[str | None, Query(max_length=200)] = None,
              description: Annotated[str | None, Query(max_length=500)] = None,
              page: Annotated[int, Query(ge=1, le=100_000)] = 1,
              per_page: Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE)] = 25,
              ) -> dict[str, Any]:
    if not who.principal.sees_every_job:
        user = who.principal.name
    return queries.jobs_page(page=page, per_page=per_page,
                             status=status.value if status else None, user=user,
                             description=description, settings=request.app.state.settings)


@router.post("/jobs", status_code=201, summary="Submit a job definition (as in a job file)")
def submit_job(request: Request, definition: Annotated[dict[str, Any], Body()], who: Who,
               hold: bool = False) -> dict[str, Any]:
    job = job_from_dict(definition)
    job_id = api.submit(job, user=who.principal.name, hold=hold,
                        settings=request.app.state.settings)
    return _job_view(request, job_id)


@router.get("/jobs/{job_id}", summary="A job as `status --json` shows it, with its edges")
def get_job(request: Request, job_id: int, who: Who) -> dict[str, Any]:
    return _job_view(request, visible_job(request, job_id, who))


@router.get("/jobs/{job_id}/attempts", summary="Every attempt of every task, oldest first")
def job_attempts(request: Request, job_id: int,
                 who: Who) -> list[dict[str, Any]]:
    return api.attempts(visible_job(request, job_id, who), settings=request.app.state.settings)


@router.get("/jobs/{job_id}/runs", summary="Every run of the job")
def job_runs(request: Request, job_id: int,
             who: Who) -> list[dict[str, Any]]:
    return api.history(visible_job(request, job_id, who), settings=request.app.state.settings)


@router.post("/jobs/{job_id}/hold", summary="Keep a waiting job from starting")
def hold_job(request: Request, job_id: int, who: Who) -> dict[str, Any]:
    lifecycle.hold(visible_job(request, job_id, who), settings=request.app.state.settings)
    return _job_view(request, job_id)


@router.post("/jobs/{job_id}/release", summary="Let a held job start")
def release_job(request: Request, job_id: int,
                who: Who) -> dict[str, Any]:
    lifecycle.release(visible_job(request, job_id, who), settings=request.app.state.settings)
    return _job_view(request, job_id)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (executing tasks are stopped)")
def cancel_job(request: Request, job_id: int,
               who: Who) -> dict[str, Any]:
    lifecycle.cancel(visible_job(request, job_id, who), settings=request.app.state.settings)
    return _job_view(request, job_id)


@router.post("/jobs/{job_id}/rerun", summary="Run a finished job again (or its failed part)")
def rerun_job(request: Request, job_id: int, who: Who,
              failed: bool = False) -> dict[str, Any]:
    lifecycle.rerun(visible_job(request, job_id, who), failed=failed,
                    settings=request.app.state.settings)
    return _job_view(request, job_id)


# -- servers and groups ---------------------------------------------------------------


def _server_name(name: str) -> str:
    """A name that could be a server's; any other is not found (never a database error)."""
    try:
        return groups.check_name(name)
    except InvalidValue:
        raise ServerNotFound(name) from None


@router.get("/servers", summary="Every batch server: record, live, threads now, running")
def list_servers(request: Request, who: Who) -> list[dict[str, Any]]:
    return servers.list_servers(settings=request.app.state.settings)


@router.get("/servers/{name}", summary="One batch server")
def get_server(request: Request, name: str, who: Who) -> dict[str, Any]:
    return servers.show_server(_server_name(name), settings=request.app.state.settings)


@router.get("/capacity", summary="Threads of every server and group over the next hours")
def all_capacity(request: Request, who: Who, hours: Hours = 24) -> dict[str, Any]:
    return capacity.server_preview(hours=hours, settings=request.app.state.settings)


@router.get("/servers/{name}/preview", summary="A server's and its groups' threads ahead")
def server_capacity(request: Request, name: str, who: Who,
                    hours: Hours = 24) -> dict[str, Any]:
    return capacity.server_preview(_server_name(name), hours=hours,
                                   settings=request.app.state.settings)


@router.put("/servers/{name}", summary="Create or change a server's record (admin)")
def set_server(request: Request, name: str, body: ServerBody,
               who: Admin) -> dict[str, Any]:
    settings = request.app.state.settings
    servers.set_server(name, groups=body.groups, threads=body.threads, schedule=body.schedule,
                       timezone=body.timezone, settings=settings)
    return servers.show_server(name, settings=settings)


@router.delete("/servers/{name}", status_code=204, summary="Remove a server's record (admin)")
def remove_server(request: Request, name: str, who: Admin) -> None:
    servers.remove_server(_server_name(name), settings=request.app.state.settings)


@router.get("/groups", summary="Batch groups with their servers and unfinished tasks")
def list_groups(request: Request, who: Who) -> list[dict[str, Any]]:
    return groups.list_groups(settings=request.app.state.settings)


@router.post("/groups", status_code=201, summary="Create a batch group (admin)")
def add_group(request: Request, body: GroupBody, who: Admin) -> dict[str, Any]:
    settings = request.app.state.settings
    groups.add_group(body.name, description=body.description, settings=settings)
    return next(g for g in groups.list_groups(settings=settings) if g["name"] == body.name)


@router.delete("/groups/{name}", status_code=204, summary="Remove a batch group (admin)")
def remove_group(request: Request, name: str, who: Admin) -> None:
    groups.remove_group(name, settings=request.app.state.settings)


# -- alerts ---------------------------------------------------------------------------


@router.get("/alerts", summary="Alerts, newest first (a user's own; everyone's for others)")
def list_alerts(request: Request, who: Who,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    user = None if who.principal.sees_every_job else who.principal.name
    return alerts.list_alerts(user=user, limit=limit, settings=request.app.state.settings)
