"""Is a batch server healthy? One answer for ``batchjobs server health NAME``, a server's
``/healthz``, a systemd watchdog script and a Kubernetes probe.

A server is healthy while its heartbeat is fresh: the housekeeper beats it every
:data:`servers.HEARTBEAT_INTERVAL` seconds through the database, so a fresh heartbeat
says that the server's process lives, its housekeeper runs and the database answers it.
Where the question is asked inside the server (``/healthz``), its broker connection
must be up too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import clock, servers
from .settings import Settings


@dataclass(frozen=True)
class Health:
    """The verdict on one server, with the one line that explains it."""

    server: str
    healthy: bool
    reason: str

    def line(self) -> str:
        return f"{self.server} {'healthy' if self.healthy else 'unhealthy'}: {self.reason}"


def server_health(name: str, *, consumer: Any = None, settings: Settings | None = None,
                  ) -> Health:
    """The health of server ``name`` (:class:`errors.ServerNotFound` if it has no record).

    ``consumer`` (Celery's, inside the server) adds the broker connection to the check."""
    row = servers.show_server(name, settings=settings)
    beat = row["heartbeat_at"]
    if beat is None:
        return Health(name, False, "stopped (no heartbeat)")
    age = (clock.now() - datetime.fromisoformat(beat)).total_seconds()
    if not row["live"]:
        return Health(name, False, f"no heartbeat for {age:.0f} s")
    if consumer is not None and not _broker_connected(consumer):
        return Health(name, False, "its broker connection is down")
    return Health(name, True, f"heartbeat {max(age, 0.0):.1f} s ago, "
                              f"{row['running']} task(s) running")


def _broker_connected(consumer: Any) -> bool:
    connection = getattr(consumer, "connection", None)
    return bool(connection is not None and connection.connected)
