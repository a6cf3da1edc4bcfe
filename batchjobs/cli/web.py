"""``batchjobs web``: the web console and HTTP API, served by uvicorn."""

from __future__ import annotations

import click

from .common import reports_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (only this machine unless told otherwise).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@reports_errors
def web(host: str, port: int) -> None:
    """Serve the web console and the HTTP API (/api, /api/openapi.json).

    Users log in with the password of `batchjobs user password`; programs send
    `Authorization: Bearer TOKEN` (`batchjobs user token`). Behind a production
    server, run the same app: `uvicorn batchjobs.web:app`.

    \b
    Examples:
      batchjobs web
      batchjobs web --host 0.0.0.0 --port 8443   # behind a TLS proxy
    """
    import uvicorn

    from ..web import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False)
