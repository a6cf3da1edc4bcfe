"""Capacity ahead: how many threads each batch server and each batch group has over the
next hours, from the servers' schedules.

:func:`preview` is pure (the records and the instant are arguments), so it is tested with
fixed datetimes across DST; :func:`server_preview` reads the records and the clock and is
what ``batchjobs server preview`` and the web console's servers page call.

A server's changes are the instants at which :func:`batchjobs.schedule.threads_at` changes
(:func:`batchjobs.schedule.next_change`), the first one being the state now. A group's
threads at an instant are the sum over the servers that serve it, so a group's changes are
taken at every change of any of its servers, keeping those where the sum moves. The
figures are what the records ask for, live or not (``live`` says whether a server runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import clock, servers
from .errors import InvalidValue
from .schedule import windows_from_json
from .servers import ServerConfig
from .settings import Settings

#: Longest preview: a week shows every daily pattern and its weekend and DST turns.
MAX_HOURS = 168
DEFAULT_HOURS = 24


def check_hours(hours: object) -> int:
    """A whole number of hours from 1 to :data:`MAX_HOURS`, or :class:`InvalidValue`."""
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_HOURS:
        raise InvalidValue(f"hours must be a whole number from 1 to {MAX_HOURS}",
                           field="hours", value=hours)
    return hours


def _change(instant: datetime, zone: ZoneInfo, threads: int) -> dict[str, Any]:
    return {"at": instant.astimezone(UTC).isoformat(),
            "local": instant.astimezone(zone).isoformat(), "threads": threads}


def _server(record: Mapping[str, Any]) -> ServerConfig:
    return ServerConfig(name=record["name"], groups=tuple(record["groups"]),
                        threads=record["threads"], timezone=record["timezone"],
                        windows=windows_from_json(record.get("schedule") or []))


def preview(records: Sequence[Mapping[str, Any]], *, now: datetime,
            hours: int = DEFAULT_HOURS, groups: Sequence[str] | None = None,
            ) -> dict[str, Any]:
    """Each server's and each group's threads from ``now`` for ``hours``.

    ``records`` are server records as :func:`batchjobs.servers.list_servers` gives them;
    ``groups`` limits the groups shown (default: every group a record names). A group's
    ``local`` times are in its servers' zone when they share one, else UTC.
    """
    check_hours(hours)
    start = now.astimezone(UTC)
    end = start + timedelta(hours=hours)
    parsed = [_server(r) for r in records]
    live = {r["name"]: bool(r.get("live", False)) for r in records}
    server_rows = []
    instants: dict[str, list[datetime]] = {}
    for s in parsed:
        instants[s.name] = s.changes(start, end)
        zone = ZoneInfo(s.timezone)
        server_rows.append({"name": s.name, "timezone": s.timezone, "groups": list(s.groups),
                            "live": live[s.name],
                            "changes": [_change(t, zone, s.threads_at(t))
                                        for t in instants[s.name]]})
    names = sorted({g for s in parsed for g in s.groups}) if groups is None else list(groups)
    group_rows = [_group(name, [s for s in parsed if name in s.groups], instants, start)
                  for name in names]
    return {"from": start.isoformat(), "hours": hours, "servers": server_rows,
            "groups": group_rows}


def _group(name: str, members: list[ServerConfig], instants: Mapping[str, list[datetime]],
           start: datetime) -> dict[str, Any]:
    zones = {s.timezone for s in members}
    zone = ZoneInfo(zones.pop()) if len(zones) == 1 else ZoneInfo("UTC")
    changes: list[dict[str, Any]] = []
    for instant in sorted({start, *(t for s in members for t in instants[s.name])}):
        total = sum(s.threads_at(instant) for s in members)
        if not changes or changes[-1]["threads"] != total:
            changes.append(_change(instant, zone, total))
    return {"name": name, "timezone": zone.key, "servers": [s.name for s in members],
            "changes": changes}


def server_preview(name: str | None = None, *, hours: int = DEFAULT_HOURS,
                   settings: Settings | None = None) -> dict[str, Any]:
    """The preview of every server (or of server ``name`` and the groups it serves) from
    now; an unknown name raises :class:`batchjobs.errors.ServerNotFound`."""
    check_hours(hours)
    records = servers.list_servers(settings=settings)
    if name is None:
        return preview(records, now=clock.now(), hours=hours)
    own = servers.show_server(name, settings=settings)
    shown = preview(records, now=clock.now(), hours=hours, groups=own["groups"])
    shown["servers"] = [s for s in shown["servers"] if s["name"] == name]
    return shown
