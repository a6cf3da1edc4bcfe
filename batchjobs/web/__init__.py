"""The web console and HTTP API of batchjobs (FastAPI on Starlette, served by uvicorn).

``batchjobs web`` runs it on 127.0.0.1:8080; a production server imports the app,
``uvicorn batchjobs.web:app`` (settings from ``BATCHJOBS_*`` as for the CLI), or builds
one with :func:`create_app`. FastAPI was chosen because the OpenAPI document at
``/api/openapi.json`` is generated from the very signatures the routes run with (so the
fuzzing tests read the API as it is), because it runs plain functions in a thread pool
(the store is synchronous) and because it and Starlette are small, typed and well kept.
Its interactive documentation pages are off: they load scripts from a CDN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import store
from ..settings import Settings
from . import failures, routes_api, routes_ops, routes_pages
from .security import Signer

__all__ = ["app", "create_app"]

#: Who may embed or run what on a console page: only its own origin's scripts and styles.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")


class _RefuseNul:
    """Refuse (400) a path or query with a NUL character, which no database text holds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope.get("path", "")
                                        or b"%00" in scope.get("query_string", b"")
                                        or b"\x00" in scope.get("query_string", b"")):
            response = JSONResponse({"error": "a NUL character is not allowed in a URL"},
                                    status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A console on ``settings`` (None: ``BATCHJOBS_*`` of the environment, read per call)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A console is a server, as a batch server is: it makes its database (schema
        # applied) when it starts, where a command that only reads would refuse to.
        store.get_engine(settings)
        yield

    app = FastAPI(title="batchjobs", version="1", openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Jobs, servers, groups and alerts of batchjobs. Authenticate "
                  "with `Authorization: Bearer <token>` (`batchjobs user token NAME`).")
    app.state.settings = settings
    app.state.signer = Signer(settings)
    failures.install(app)
    app.include_router(routes_api.router, prefix="/api")
    app.include_router(routes_pages.router)
    app.include_router(routes_ops.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.middleware("http")
    async def _headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    app.add_middleware(_RefuseNul)
    return app


app = create_app()
