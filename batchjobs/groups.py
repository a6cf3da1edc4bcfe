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
from .status import TASK_FINAL

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


def list_groups(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every group with the servers that serve it and its unfinished task count."""
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
        return [{"name": g.name, "description": g.description,
                 "servers": servers.get(g.name, []), "unfinished_tasks": active.get(g.name, 0)}
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
