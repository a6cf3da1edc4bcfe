"""Who is asking, and whether the request may act.

Two ways in. The HTTP API takes ``Authorization: Bearer <token>`` (``batchjobs user
token``); a browser logs in at ``/login`` and gets a session cookie signed with
:func:`batchjobs.auth.signing_key` (itsdangerous, timestamped, ``HttpOnly``,
``SameSite=Strict``). A session carries a random CSRF token; every request that changes
something and is authenticated by the cookie must repeat it, in the ``X-CSRF-Token`` header
(the console's script) or a ``csrf_token`` form field (its forms). A cross-site page can
make a browser send the cookie but cannot read the token, so a request that carries only
the cookie never acts. A bearer token is never sent by a browser on its own, so it needs
no CSRF token. The login form itself is protected by a double-submit token (a signed
cookie and the same value in the form), so no site can log a browser in as someone else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .. import auth
from ..settings import Settings

SESSION_COOKIE = "bj_session"
LOGIN_COOKIE = "bj_login"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: Seconds a session lasts after login.
SESSION_MAX_AGE = 12 * 3600
#: Seconds a login form stays valid.
LOGIN_MAX_AGE = 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthenticated(Exception):
    """Raised when a request carries no valid token or session (401)."""


class Forbidden(Exception):
    """Raised when an authenticated request may not do what it asks (403)."""


@dataclass(frozen=True)
class Caller:
    """The principal of a request, how it came in, and its session's CSRF token."""

    principal: auth.Principal
    by_session: bool
    csrf: str = ""


class Signer:
    """Signs and reads the cookies; the key is read on first use, not at import."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        found = self._serializers.get(salt)
        if found is None:
            found = URLSafeTimedSerializer(auth.signing_key(self._settings), salt=salt)
            self._serializers[salt] = found
        return found

    def session(self, principal: auth.Principal) -> str:
        fingerprint = auth.session_fingerprint(principal.name, settings=self._settings) or ""
        return self._serializer("session").dumps(
            {"u": principal.name, "f": fingerprint, "c": secrets.token_urlsafe(24)})

    def read_session(self, cookie: str) -> dict[str, Any] | None:
        try:
            data = self._serializer("session").loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                                 for k in ("u", "f", "c")):
            return None
        return data

    def notice(self, text: str) -> str:
        """A message for the next page (after an action), signed so that no link can make
        the console say what it did not."""
        return self._serializer("notice").dumps(text)

    def read_notice(self, signed: str | None) -> str | None:
        if not signed:
            return None
        try:
            text = self._serializer("notice").loads(signed, max_age=300)
        except BadSignature:
            return None
        return text if isinstance(text, str) else None

    def login_token(self) -> tuple[str, str]:
        """A login form's token and the signed cookie that must come back with it."""
        token = secrets.token_urlsafe(24)
        return token, self._serializer("login").dumps(token)

    def login_token_matches(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        try:
            expected = self._serializer("login").loads(cookie, max_age=LOGIN_MAX_AGE)
        except BadSignature:
            return False
        return isinstance(expected, str) and auth.same(expected, token)


def caller(request: Request, signer: Signer, settings: Settings | None) -> Caller:
    """The authenticated caller of ``request``, or :class:`Unauthenticated`."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated()
        found = auth.token_principal(token.strip(), settings=settings)
        if found is None:
            raise Unauthenticated()
        return Caller(found, by_session=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    data = signer.read_session(cookie) if cookie else None
    if data is None:
        raise Unauthenticated()
    principal = auth.session_principal(data["u"], data["f"], settings=settings)
    if principal is None:
        raise Unauthenticated()
    return Caller(principal, by_session=True, csrf=data["c"])


def check_csrf(request: Request, who: Caller, form_token: str | None = None) -> None:
    """Refuse (:class:`Forbidden`) a cookie-authenticated unsafe request without the
    session's CSRF token."""
    if request.method in SAFE_METHODS or not who.by_session:
        return
    given = request.headers.get(CSRF_HEADER) or form_token or ""
    if not given or not auth.same(given, who.csrf):
        raise Forbidden("missing or wrong CSRF token (reload the page)")
