"""Errors as HTTP answers: JSON with the CLI's culprit-naming message, the right status.

400 for bad input (a definition, a value, a parameter: never FastAPI's 422), 401 without
a valid token or session, 403 for what the role does not allow or a missing CSRF token,
404 for what does not exist (a path parameter that cannot be an id included), 409 for an
operation the job's state refuses. Pages get the same codes; a page asked without a
session is sent to ``/login``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BatchJobsError,
    ConfigError,
    DefinitionError,
    DispatchError,
    InUse,
    InvalidState,
    JobNotFound,
    ServerNotFound,
    UnknownGroup,
    UserDisabled,
    UserHasJobs,
    UserNotFound,
)
from .security import Forbidden, Unauthenticated

_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (DefinitionError, 400), (ConfigError, 400),
    (JobNotFound, 404), (ServerNotFound, 404), (UserNotFound, 404),
    (InvalidState, 409), (InUse, 409), (UserDisabled, 409), (UserHasJobs, 409),
    (DispatchError, 503),
)


def _is_api(request: Request) -> bool:
    """Machines' paths get JSON errors (401, 403…), people's pages a redirect to login."""
    return request.url.path.startswith(("/api", "/metrics"))


def _body(message: str, status: int, **culprit: Any) -> JSONResponse:
    extra = {k: v for k, v in culprit.items() if v is not None}
    return JSONResponse({"error": message, **extra}, status_code=status)


def status_of(exc: BaseException) -> int:
    if isinstance(exc, UnknownGroup) and exc.task is None and exc.field == "group":
        return 404      # the group addressed by the request, not one a definition names
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _culprit(exc: BaseException) -> dict[str, Any]:
    found = {name: getattr(exc, name, None) for name in ("task", "field")}
    value = getattr(exc, "value", None)
    if isinstance(value, (str, int, float, bool)):
        found["value"] = value
    return found


async def _batchjobs_error(request: Request, exc: Exception) -> Response:
    return _body(str(exc), status_of(exc), **_culprit(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] == "path":
        # /api/jobs/abc: no job has that id
        given = request.path_params.get(loc[-1])
        what = "job" if loc[-1] == "job_id" else loc[-1]
        return _body(f"no {what} with id {given!r}", 404)
    where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
    return _body(f"{where}: {first.get('msg', 'invalid')}", 400, field=where or None)


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"error": "authentication required: a bearer token "
                             "(batchjobs user token NAME) or a session (/login)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return RedirectResponse("/login", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return _body(str(exc), 403)


async def _bad_value(request: Request, exc: Exception) -> Response:
    """A value the database cannot hold (too large a number, a NUL character); any other
    statement error is a fault of ours and stays a 500."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(exc, StatementError) and not isinstance(exc, DataError) \
            and not isinstance(orig, (ValueError, OverflowError)):
        raise exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return _body(f"a value cannot be stored: {reason}", 400)


async def _database_down(request: Request, exc: Exception) -> Response:
    return _body("the database is unreachable", 503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request) or exc.status_code != 404:
        return _body(str(exc.detail), exc.status_code)
    return Response("not found", status_code=404, media_type="text/plain")


def install(app: FastAPI) -> None:
    app.add_exception_handler(BatchJobsError, _batchjobs_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(DataError, _bad_value)
    app.add_exception_handler(OverflowError, _bad_value)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(StatementError, _bad_value)
    app.add_exception_handler(StarletteHTTPException, _http_error)
