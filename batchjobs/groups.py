"""Batch groups: the attribute of a task that decides which servers may run it.

The ``default`` group always exists. A group's name becomes its queue name
(``batch.<group>``), so it is limited to letters, digits, ``_``, ``-`` and ``.``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from . import clock, store
from .errors import InUse, InvalidValue, UnknownGroup
from .models import BatchGroup, ServerGroup, Task
from .settings import DEFAULT_GROUP, Settings
from .status import TASK_FINAL, TaskStatus

_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


def check_name(name: str) -> str:
    """A valid group name, or :class:`InvalidValue` naming it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidValue("a batch group name is 1-100 letters, digits, '_', '-' or '.'",
                           field="group", value=name)
    return name


def add_group(name: str, *, description: str = "", settings: Settings | None = None) -> bool:
    """Create a group (or update its description); True if it was created."""
    check_name(name)
    with store.transaction(settings) as session:
        group = session.get(BatchGroup, name)
        if group is None:
            session.add(BatchGroup(name=name, description=description, created_at=clock.now()))
            return True
        if description:
            group.description = description
        return False


#: What ``--max-concurrency`` accepts besides a number: no cap.
NO_CAP = "none"


def parse_cap(value: Any) -> int | None:
    """A group's cap: a whole number >= 0 (0 pauses the group) or ``none`` (no cap)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == NO_CAP):
        return None
    try:
        cap = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        cap = -1
    if cap < 0 or cap > 1_000_000 or str(value).strip() not in (str(cap), f"+{cap}"):
        raise InvalidValue(f"{value!r}: max_concurrency is a whole number from 0 (paused) "
                           "to 1000000, or none (no cap)", field="max_concurrency", value=value)
    return cap


def set_group(name: str, *, max_concurrency: Any, settings: Settings | None = None) -> None:
    """Cap a group (at most ``max_concurrency`` of its tasks execute at once; 0 pauses it,
    None / ``none`` lifts the cap). Live: servers read it at every claim, executing tasks
    finish, and the group's waiting ready tasks are fed as the cap allows."""
    check_name(name)
    cap = parse_cap(max_concurrency)
    with store.transaction(settings) as session:
        group = session.get(BatchGroup, name)
        if group is None:
            raise UnknownGroup.named(name, field="group")
        group.max_concurrency = cap


def show_group(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One group as :func:`list_groups` shows it."""
    check_name(name)
    for row in list_groups(settings=settings):
        if row["name"] == name:
            return row
    raise UnknownGroup.named(name, field="group")


def list_groups(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every group with the servers that serve it, its unfinished and executing task
    counts and its concurrency cap (None: none; 0: paused)."""
    with store.read_session(settings) as session:
        groups = session.execute(select(BatchGroup).order_by(BatchGroup.name)).scalars().all()
        servers: dict[str, list[str]] = {}
        for server, group in session.execute(
                select(ServerGroup.server_name, ServerGroup.group_name)
                .order_by(ServerGroup.server_name)):
            servers.setdefault(group, []).append(server)
        active = dict(session.execute(
            select(Task.group_name, func.count()).where(Task.status.not_in(TASK_FINAL))
            .group_by(Task.group_name)).all())
        executing = dict(session.execute(
            select(Task.group_name, func.count()).where(Task.status == TaskStatus.EXECUTING)
            .group_by(Task.group_name)).all())
        return [{"name": g.name, "description": g.description,
                 "servers": servers.get(g.name, []), "unfinished_tasks": active.get(g.name, 0),
                 "executing_tasks": executing.get(g.name, 0),
                 "max_concurrency": g.max_concurrency}
                for g in groups]


def remove_group(name: str, *, settings: Settings | None = None) -> None:
    """Remove a group no server serves and no unfinished task uses."""
    if name == DEFAULT_GROUP:
        raise InUse("batch group", name, ["every installation (it cannot be removed)"])
    with store.transaction(settings) as session:
        group = session.get(BatchGroup, name)
        if group is None:
            raise UnknownGroup.named(name, field="group")
        servers = list(session.execute(select(ServerGroup.server_name)
                                       .where(ServerGroup.group_name == name)).scalars())
        tasks = session.execute(select(func.count()).select_from(Task).where(
            Task.group_name == name, Task.status.not_in(TASK_FINAL))).scalar_one()
        users = [f"server {s}" for s in servers]
        if tasks:
            users.append(f"{tasks} unfinished task(s)")
        if users:
            raise InUse("batch group", name, users)
        session.delete(group)


def existing_groups(session: Any, names: list[str]) -> set[str]:
    return set(session.execute(select(BatchGroup.name)
                               .where(BatchGroup.name.in_(names))).scalars())
