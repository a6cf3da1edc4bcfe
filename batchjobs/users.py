"""Users: who jobs run as, where their alerts go, and their role in the web console.

A job records the user who submitted it whether or not the user is known
here; a known user's ``email`` receives the alerts of their jobs. A user's
``role`` (:mod:`batchjobs.auth`) decides what the web console and the HTTP API let
them see and do; the CLI is the tool of whoever holds the database URL.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from . import clock, store
from .auth import Role, check_role
from .errors import InvalidValue, UserNotFound
from .models import ApiToken, User
from .settings import Settings

_EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\Z")


def add_user(name: str, *, email: str | None = None, role: str | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Create a user (role ``user`` unless given), or change a known one's email or role."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidValue("a user needs a non-empty name of at most 200 characters",
                           field="name", value=name)
    if email is not None and not _EMAIL.match(email):
        raise InvalidValue(f"{email!r} is not an email address", field="email", value=email)
    checked = check_role(role) if role is not None else None
    with store.transaction(settings) as session:
        user = session.get(User, name)
        if user is None:
            user = User(name=name, email=email, created_at=clock.now(),
                        role=(checked or Role.USER).value)
            session.add(user)
        else:
            if email is not None:
                user.email = email
            if checked is not None:
                user.role = checked.value
    return show_user(name, settings=settings)


def set_role(name: str, role: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Give a known user another role."""
    checked = check_role(role)
    with store.transaction(settings) as session:
        user = session.get(User, name)
        if user is None:
            raise UserNotFound(name)
        user.role = checked.value
    return show_user(name, settings=settings)


def show_user(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The user's record: never a password or token hash, only whether they exist."""
    with store.read_session(settings) as session:
        user = session.get(User, name)
        if user is None:
            raise UserNotFound(name)
        tokens = session.execute(select(func.count()).select_from(ApiToken)
                                 .where(ApiToken.user == name)).scalar_one()
        return _view(user, int(tokens))


def list_users(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    with store.read_session(settings) as session:
        tokens = dict(session.execute(select(ApiToken.user, func.count())
                                      .group_by(ApiToken.user)).all())
        return [_view(u, int(tokens.get(u.name, 0)))
                for u in session.execute(select(User).order_by(User.name)).scalars()]


def _view(user: User, tokens: int) -> dict[str, Any]:
    return {"name": user.name, "email": user.email, "role": user.role,
            "password_set": user.password_hash is not None, "tokens": tokens,
            "disabled": user.disabled_at is not None,
            "disabled_at": clock.iso(user.disabled_at)}
