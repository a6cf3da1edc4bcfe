"""Users: who jobs run as, and where their alerts go.

A job records the user who submitted it whether or not the user is known
here; a known user's ``email`` receives the alerts of their jobs.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from . import clock, store
from .errors import InvalidValue
from .models import User
from .settings import Settings

_EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\Z")


def add_user(name: str, *, email: str | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Create a user, or change the email of a known one."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue("a user needs a non-empty name", field="name", value=name)
    if email is not None and not _EMAIL.match(email):
        raise InvalidValue(f"{email!r} is not an email address", field="email", value=email)
    with store.transaction(settings) as session:
        user = session.get(User, name)
        if user is None:
            user = User(name=name, email=email, created_at=clock.now())
            session.add(user)
        elif email is not None:
            user.email = email
        return {"name": user.name, "email": user.email}


def list_users(*, settings: Settings | None = None) -> list[dict[str, Any]]:
    with store.read_session(settings) as session:
        return [{"name": u.name, "email": u.email}
                for u in session.execute(select(User).order_by(User.name)).scalars()]
