"""Batch servers as records, managed from one place.

A record holds what a server serves (groups), its all-day ``threads``, and an
optional schedule of windows in its time zone. ``batchjobs server set`` edits
records from any machine with the database URL; a running worker reads its own
record every half second (:mod:`batchjobs.controller`) and follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock, store
from .errors import InUse, InvalidValue, ServerNotFound, UnknownGroup
from .groups import check_name, existing_groups
from .models import Attempt, BatchGroup, BatchServer, ServerGroup
from .schedule import (
    MAX_THREADS,
    Window,
    next_change,
    parse_schedule,
    parse_timezone,
    threads_at,
    windows_from_json,
    windows_to_json,
)
from .settings import DEFAULT_GROUP, Settings, get_settings
from .status import Outcome

#: A server is live while its last heartbeat is at most this many intervals old.
LIVE_HEARTBEATS = 3


@dataclass(frozen=True)
class ServerConfig:
    """What a server should do, as its record says."""

    name: str
    groups: tuple[str, ...]
    threads: int
    timezone: str
    windows: tuple[Window, ...]

    def threads_at(self, instant: datetime) -> int:
        """Threads the schedule allows at ``instant`` (``threads`` all day without one)."""
        return threads_at(self.windows, ZoneInfo(self.timezone), instant, default=self.threads)

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """``start`` and every instant before ``end`` at which the threads change."""
        zone = ZoneInfo(self.timezone)
        instants = [start]
        while True:
            after = next_change(self.windows, zone, instants[-1], default=self.threads)
            if after is None or after >= end:
                return instants
            instants.append(after)

    @property
    def most_threads(self) -> int:
        """The largest thread count the record can ask for: the pool size to start with."""
        return max([self.threads, *(w.threads for w in self.windows)])


def _config(server: BatchServer) -> ServerConfig:
    return ServerConfig(name=server.name, groups=tuple(g.group_name for g in server.groups),
                        threads=server.threads, timezone=server.timezone,
                        windows=windows_from_json(server.schedule or []))


def check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise InvalidValue(f"threads {threads!r} must be a whole number from 0 to {MAX_THREADS}",
                           field="threads", value=threads)
    return threads


def get_server(name: str, *, settings: Settings | None = None) -> ServerConfig:
    with store.read_session(settings) as session:
        server = session.get(BatchServer, name)
        if server is None:
            raise ServerNotFound(name)
        return _config(server)


def set_server(name: str, *, groups: Sequence[str] | None = None, threads: int | None = None,
               schedule: str | None = None, timezone: str | None = None,
               settings: Settings | None = None) -> ServerConfig:
    """Create or update a server record; only the given fields change.

    Groups must exist (``batchjobs group add``); a new server defaults to the
    ``default`` group, 1 thread, no schedule, UTC. Everything is checked before
    anything is written.
    """
    check_name(name)
    windows = parse_schedule(schedule) if schedule is not None else None
    zone = parse_timezone(timezone).key if timezone is not None else None
    if threads is not None:
        check_threads(threads)
    wanted = None
    if groups is not None:
        wanted = sorted({check_name(g) for g in groups})
        if not wanted:
            raise InvalidValue("a server serves at least one group", field="groups", value="")
    with store.transaction(settings) as session:
        if wanted is not None:
            missing = sorted(set(wanted) - existing_groups(session, wanted))
            if missing:
                raise UnknownGroup.named(missing[0], field="groups")
        server = session.get(BatchServer, name)
        if server is None:
            server = BatchServer(name=name, threads=1, timezone="UTC", schedule=[],
                                 created_at=clock.now())
            server.groups = [ServerGroup(server_name=name, group_name=DEFAULT_GROUP)]
            session.add(server)
        if wanted is not None:
            server.groups = [ServerGroup(server_name=name, group_name=g) for g in wanted]
        if threads is not None:
            server.threads = threads
        if windows is not None:
            server.schedule = windows_to_json(windows)
        if zone is not None:
            server.timezone = zone
        session.flush()
        return _config(server)


def register_worker(name: str, groups: Sequence[str], threads: int,
                    *, settings: Settings | None = None, incarnation: str | None = None,
                    host: str | None = None, pid: int | None = None) -> ServerConfig:
    """A worker starts: its record if it has one, else a new record from the worker's own
    groups and threads (groups it names are created: starting a worker is how a host
    joins). A new record carries the worker's incarnation, host and pid (an existing
    one got them when the worker took the name: :func:`batchjobs.incarnation.take`)."""
    with store.transaction(settings) as session:
        now = store.now(session)
        server = session.get(BatchServer, name)
        if server is None:
            for group in sorted(set(groups) - existing_groups(session, list(groups))):
                session.add(BatchGroup(name=check_name(group), description="", created_at=now))
            session.flush()
            server = BatchServer(name=name, threads=check_threads(threads), timezone="UTC",
                                 schedule=[], created_at=now, incarnation=incarnation,
                                 host=host, pid=pid)
            server.groups = [ServerGroup(server_name=name, group_name=g)
                             for g in sorted(set(groups))]
            session.add(server)
        server.heartbeat_at = now
        session.flush()
        return _config(server)


def beat(name: str, *, alive: bool = True, settings: Settings | None = None,
         incarnation: str | None = None) -> bool:
    """Record a heartbeat (or, at shutdown, that the server is gone); False if the record
    is gone or belongs to another incarnation than ``incarnation`` (given): a process
    fenced off by a newer start beats for nothing."""
    with store.transaction(settings) as session:
        server = session.get(BatchServer, name)
        if server is None or (incarnation is not None and server.incarnation != incarnation):
            return False
        server.heartbeat_at = store.now(session) if alive else None
        if not alive:
            server.applied_threads = None
            server.applied_groups = []
            server.pid = None       # its name is free (the incarnation stays: fencing)
        return True


def record_applied(name: str, groups: Sequence[str], threads: int,
                   *, settings: Settings | None = None) -> None:
    """The running worker says what it now serves and with how many threads."""
    with store.transaction(settings) as session:
        server = session.get(BatchServer, name)
        if server is not None:
            server.applied_groups = sorted(groups)
            server.applied_threads = threads


def remove_server(name: str, *, settings: Settings | None = None) -> None:
    """Remove a server's record; refused while it is live."""
    settings = settings or get_settings()
    with store.transaction(settings) as session:
        server = session.get(BatchServer, name)
        if server is None:
            raise ServerNotFound(name)
        if _live(server, store.now(session), settings):
            raise InUse("batch server", name, ["its running worker (stop it first)"])
        session.delete(server)


def list_servers(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every server: record, ``live``, ``threads_now`` and ``running`` (tasks executing)."""
    settings = settings or get_settings()
    with store.read_session(settings) as session:
        now = store.now(session)
        servers = session.execute(select(BatchServer).order_by(BatchServer.name)).scalars().all()
        running = _running(session)
        return [_view(s, now, running.get(s.name, 0), settings) for s in servers]


def show_server(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    with store.read_session(settings) as session:
        now = store.now(session)
        server = session.get(BatchServer, name)
        if server is None:
            raise ServerNotFound(name)
        return _view(server, now, _running(session, name).get(name, 0), settings)


def _running(session: Session, name: str | None = None) -> dict[str, int]:
    query = (select(Attempt.server, func.count()).where(Attempt.outcome == Outcome.RUNNING)
             .group_by(Attempt.server))
    if name is not None:
        query = query.where(Attempt.server == name)
    rows: Any = session.execute(query).all()
    return dict(rows)


def _live(server: BatchServer, now: datetime, settings: Settings) -> bool:
    """Whether the server's last heartbeat is recent; ``now`` is the database's clock, the
    one its heartbeats were written with."""
    within = timedelta(seconds=LIVE_HEARTBEATS * settings.heartbeat_interval)
    return server.heartbeat_at is not None and now - server.heartbeat_at <= within


def _view(server: BatchServer, now: datetime, running: int, settings: Settings,
          ) -> dict[str, Any]:
    config = _config(server)
    live = _live(server, now, settings)
    return {
        "name": server.name, "groups": list(config.groups), "threads": server.threads,
        "timezone": server.timezone, "schedule": windows_to_json(config.windows),
        "live": live, "threads_now": config.threads_at(now), "running": running,
        "applied": {"groups": list(server.applied_groups or []),
                    "threads": server.applied_threads}
        if live and server.applied_threads is not None else None,
        "heartbeat_at": clock.iso(server.heartbeat_at),
    }
