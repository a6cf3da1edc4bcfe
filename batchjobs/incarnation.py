"""Incarnations: one live process per batch-server name.

Every start of a batch server is an incarnation, a random token recorded on the server's
row with the host and pid of its main process, and on every attempt it claims. The
token fences: a claim needs the server's row to carry the claimer's incarnation, and an
outcome counts only if reported by the attempt's incarnation while it still holds the
name (:mod:`batchjobs.store.statements`). A process whose name was taken over claims
nothing and records nothing; a restarted server fails only the attempts of the
incarnations before it.

A start under a name whose holder is alive is refused (:class:`ServerNameTaken`, naming
its host and pid) unless told to take over (``replace``). A holder is gone when its pid
is dead on this host (or runs something else than a batch server), when it has not
beaten for ``BATCHJOBS_SERVER_TIMEOUT``, or when it stopped cleanly (no heartbeat, no
pid). A holder on this host whose process lives but has not beaten yet is starting: it
is alive. Taking a name does not beat: the heartbeat stays the worker's own, from its
registration on (:func:`batchjobs.servers.register_worker`).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update

from . import store
from .errors import ServerNameTaken
from .models import BatchServer
from .settings import Settings

#: The environment variable that hands a server's incarnation to its pool processes.
ENV = "BATCHJOBS_INCARNATION"


def current() -> str | None:
    """This server process's incarnation (its pool processes inherit it), if any."""
    return os.environ.get(ENV) or None


def this_host() -> str:
    return socket.gethostname()


def take(name: str, *, replace: bool = False, settings: Settings,
         host: str | None = None, pid: int | None = None) -> str:
    """Make this process (``host``, ``pid``: this one by default) the holder of server
    ``name`` under a new incarnation, which it returns (the caller exports it as
    :data:`ENV` for the pool processes it starts).

    A server without a record yet has nothing to fence: its record is made when it
    registers, with this incarnation (:func:`batchjobs.servers.register_worker`)."""
    host = host or this_host()
    pid = os.getpid() if pid is None else pid
    token = uuid.uuid4().hex
    while True:
        # A server's start is how a host joins: the database is made here if it is not yet.
        with store.read_session(settings, create=True) as session:
            row = session.get(BatchServer, name)
            seen = None if row is None else (row.incarnation, row.host, row.pid,
                                             row.heartbeat_at)
            now = store.now(session)
        if seen is None:
            break
        held, held_host, held_pid, beat = seen
        if not replace and held is not None and _alive(held_host, held_pid, beat, now,
                                                       settings):
            raise ServerNameTaken(name, held_host, held_pid)
        with store.transaction(settings) as session:
            taken = session.execute(
                update(BatchServer).where(BatchServer.name == name,
                                          BatchServer.incarnation.is_not_distinct_from(held))
                .values(incarnation=token, host=host, pid=pid, applied_threads=None,
                        applied_groups=[])
                .returning(BatchServer.name)).first()
        if taken is not None:
            break
        # Another start took the name between our look and our update: look again.
    return token


def holds(name: str, token: str, *, settings: Settings) -> bool:
    """Whether ``token`` is the incarnation of server ``name`` and its holder is this
    process (an inherited token is not this process's)."""
    with store.read_session(settings) as session:
        row = session.get(BatchServer, name)
        return row is not None and row.incarnation == token and row.pid == os.getpid()


def _alive(host: str | None, pid: int | None, beat: datetime | None, now: datetime,
           settings: Settings) -> bool:
    """Whether the holder of a name may still be running (``now``: the database's clock,
    the one its heartbeats are written with)."""
    local = pid is not None and host == this_host()
    if pid is not None and local and (pid == os.getpid() or not batch_server_runs(pid)):
        return False
    if beat is None:
        return local        # starting here; elsewhere: stopped cleanly, or never came up
    return now - beat <= timedelta(seconds=settings.server_timeout)


def batch_server_runs(pid: int) -> bool:
    """Whether process ``pid`` of this host lives and is a batch server (a pid reused by
    another program does not hold a name)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().lower()
    except OSError:
        return True
    return b"batchjobs" in words or b"celery" in words


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
