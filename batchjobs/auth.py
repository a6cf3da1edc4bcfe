"""Who may do what: roles, password hashes, API tokens and the session signing key.

Roles follow the AX/D365 split. ``admin`` does everything, batch servers and groups
included; ``operator`` sees and controls every job but changes no server or group;
``user`` submits jobs and sees and controls only the jobs they created.

Passwords are hashed with argon2id (``argon2-cffi``): a memory-hard hash, the winner of
the Password Hashing Competition and OWASP's first choice, in a small, well-kept binding
whose hashes carry their own parameters (so they can be raised later and old hashes are
re-hashed at the next login). API tokens are 32 random bytes, so a single SHA-256 of one
is as hard to reverse as the token is to guess; only that hash is stored, and it is what a
request is looked up by.

The web console signs its session cookies with ``BATCHJOBS_SECRET_KEY``, or else with a
key generated at first use and kept in the database (``secrets``), so every web process of
an installation accepts the same sessions and a restart logs nobody out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from . import clock, store
from .errors import InvalidValue, UserNotFound
from .models import ApiToken, Secret, User
from .settings import Settings, get_settings

#: Shortest password accepted (NIST SP 800-63B's minimum for a chosen secret).
MIN_PASSWORD_LENGTH = 8
#: Longest password accepted: argon2 takes any length, but a bound keeps requests small.
MAX_PASSWORD_LENGTH = 1024
#: What every token starts with, so a leaked one is recognisable in a scan of logs.
TOKEN_PREFIX = "bj_"
#: Name of the session signing key in ``secrets``.
SESSION_KEY = "session_key"

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user is unknown or has no password, so both cost as much as a
    wrong password (made on first use: importing batchjobs costs no hashing)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    USER = "user"


def check_role(role: str) -> Role:
    """The role named ``role``, or :class:`InvalidValue` naming it."""
    try:
        return Role(role)
    except ValueError:
        raise InvalidValue(f"role {role!r} is not one of {', '.join(r.value for r in Role)}",
                           field="role", value=role) from None


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request and what their role allows."""

    name: str
    role: Role

    @property
    def sees_every_job(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def manages_servers(self) -> bool:
        """Whether they may change batch servers and groups (only an admin)."""
        return self.role is Role.ADMIN

    def may_see(self, created_by: str) -> bool:
        """Whether a job created by ``created_by`` exists for them."""
        return self.sees_every_job or created_by == self.name


# -- passwords ------------------------------------------------------------------------


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) \
            <= MAX_PASSWORD_LENGTH:
        raise InvalidValue(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
                           "characters", field="password", value="(not shown)")
    return password


def set_password(name: str, password: str, *, settings: Settings | None = None) -> None:
    """Store the argon2id hash of ``password`` for user ``name`` (the password never)."""
    hashed = _hasher.hash(check_password(password))
    with store.transaction(settings) as session:
        user = session.get(User, name)
        if user is None:
            raise UserNotFound(name)
        user.password_hash = hashed


def authenticate(name: str, password: str, *,
                 settings: Settings | None = None) -> Principal | None:
    """The user if ``password`` is theirs, else None (unknown user and wrong password alike).

    An outdated hash (older argon2 parameters) is replaced by a new one on success.
    """
    with store.read_session(settings) as session:
        user = session.get(User, name) if isinstance(name, str) and name else None
        stored = user.password_hash if user is not None else None
        role = user.role if user is not None else Role.USER
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        set_password(name, password, settings=settings)
    return Principal(name, Role(role))


def session_fingerprint(name: str, *, settings: Settings | None = None) -> str | None:
    """A short digest of the user's password hash, kept in their session cookie: a new
    password (or none) ends every session signed before it. None for an unknown user."""
    with store.read_session(settings) as session:
        stored = session.execute(select(User.password_hash).where(User.name == name)).first()
    if stored is None or stored[0] is None:
        return None
    return _fingerprint(stored[0])


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def session_principal(name: str, fingerprint: str, *,
                      settings: Settings | None = None) -> Principal | None:
    """The user of a signed session, if its password is still the one it was signed with
    (one query per request)."""
    with store.read_session(settings) as session:
        row = session.execute(select(User.role, User.password_hash)
                              .where(User.name == name)).first()
    if row is None or row.password_hash is None \
            or not same(_fingerprint(row.password_hash), fingerprint):
        return None
    return Principal(name, Role(row.role))


# -- tokens ---------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, *, settings: Settings | None = None) -> str:
    """A new bearer token for ``name``; returned once, only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.transaction(settings) as session:
        if session.get(User, name) is None:
            raise UserNotFound(name)
        session.add(ApiToken(user=name, token_hash=_token_hash(token), created_at=clock.now()))
    return token


def revoke_tokens(name: str, *, settings: Settings | None = None) -> int:
    """Delete every token of ``name``; return how many there were."""
    with store.transaction(settings) as session:
        if session.get(User, name) is None:
            raise UserNotFound(name)
        result = session.execute(delete(ApiToken).where(ApiToken.user == name))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def count_tokens(name: str, *, settings: Settings | None = None) -> int:
    with store.read_session(settings) as session:
        return int(session.execute(select(func.count()).select_from(ApiToken)
                                   .where(ApiToken.user == name)).scalar_one())


def token_principal(token: str, *, settings: Settings | None = None) -> Principal | None:
    """The user a bearer token belongs to, or None for an unknown or revoked token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with store.read_session(settings) as session:
        row = session.execute(select(User.name, User.role)
                              .join(ApiToken, ApiToken.user == User.name)
                              .where(ApiToken.token_hash == _token_hash(token))).first()
    return None if row is None else Principal(row.name, Role(row.role))


# -- the session signing key ----------------------------------------------------------


def signing_key(settings: Settings | None = None) -> str:
    """``BATCHJOBS_SECRET_KEY``, else the installation's key (made once, in the database).

    Two web processes starting together may both try to create it; the primary key lets
    one win and the other reads the winner's.
    """
    settings = settings or get_settings()
    if settings.secret_key:
        return settings.secret_key
    with store.read_session(settings, create=True) as session:
        value = session.execute(select(Secret.value).where(Secret.name == SESSION_KEY)).scalar()
    if value is not None:
        return value
    try:
        with store.transaction(settings) as session:
            session.add(Secret(name=SESSION_KEY, value=secrets.token_urlsafe(48),
                               created_at=clock.now()))
    except IntegrityError:
        pass
    with store.read_session(settings) as session:
        return session.execute(select(Secret.value)
                               .where(Secret.name == SESSION_KEY)).scalar_one()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (CSRF tokens)."""
    return hmac.compare_digest(a.encode(), b.encode())
