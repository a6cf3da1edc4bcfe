"""What operators' tools ask of a console: ``/healthz`` for a probe (no login: it says only
whether the console and its database answer) and ``/metrics`` for Prometheus (a bearer
token of an admin or operator: the figures cover every job)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from .. import store
from .routes_api import Who
from .security import Forbidden

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 while the database answers, else 503 (for a Kubernetes probe or a watchdog)."""
    try:
        with store.read_session(request.app.state.settings) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return JSONResponse({"status": "unhealthy", "reason": type(exc).__name__},
                            status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
def metrics(request: Request, who: Who) -> Response:
    """The installation's figures in Prometheus' text format (jobs and tasks by status,
    ready tasks and queue depth per group, servers' threads, alert deliveries)."""
    if not who.principal.sees_every_job:
        raise Forbidden(f"user {who.principal.name!r} may not read the installation's "
                        "figures (admin or operator only)")
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = _registry(request)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _registry(request: Request) -> Any:
    registry = getattr(request.app.state, "metrics", None)
    if registry is None:
        from ..app import app as celery_app
        from ..metrics import installation_registry

        registry = request.app.state.metrics = installation_registry(celery_app)
    return registry
