"""Is a batch server healthy? One answer for ``batchjobs server health NAME``, a server's
``/healthz``, a systemd watchdog script and a Kubernetes probe.

A server is healthy while its heartbeat is fresh: the housekeeper beats it every heartbeat
interval (``Settings.heartbeat_interval``) through the database, so a fresh heartbeat says
that the server's process lives, its housekeeper runs and the database answers it.
Where the question is asked inside the server (``/healthz``), its broker connection
must be up too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import servers, store
from .errors import ServerNotFound
from .models import BatchServer
from .settings import Settings, get_settings


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

    One primary-key read of the server's row: a probe every few seconds costs nothing,
    however many attempts the database holds. ``consumer`` (Celery's, inside the server)
    adds the broker connection to the check."""
    settings = settings or get_settings()
    with store.read_session(settings) as session:
        server = session.get(BatchServer, name)
        if server is None:
            raise ServerNotFound(name)
        beat = server.heartbeat_at
        now = store.now(session)       # the clock the heartbeat was written with
    if beat is None:
        return Health(name, False, "stopped (no heartbeat)")
    age = now - beat
    if age > timedelta(seconds=servers.LIVE_HEARTBEATS * settings.heartbeat_interval):
        return Health(name, False, f"no heartbeat for {age.total_seconds():.0f} s")
    if consumer is not None and not _broker_connected(consumer):
        return Health(name, False, "its broker connection is down")
    return Health(name, True, f"heartbeat {max(age.total_seconds(), 0.0):.1f} s ago")


def _broker_connected(consumer: Any) -> bool:
    connection = getattr(consumer, "connection", None)
    return bool(connection is not None and connection.connected)
