"""URLs with passwords read from files, as container secrets and systemd credentials give them.

``BATCHJOBS_DATABASE_URL_FILE=/run/secrets/database_url`` stands for
``BATCHJOBS_DATABASE_URL`` with the file's content (surrounding whitespace, such as the
final newline an editor adds, removed); the same for the broker. A password then never
stands in an environment that ``ps e``, ``/proc/PID/environ`` or a unit's ``Environment=``
shows. Errors name the variable and the file, never what the file holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

from .errors import ConfigError

#: What stands for a password in anything printed.
MASK = "***"


def url_setting(env: Mapping[str, str], name: str) -> str | None:
    """``env[name]``, else the content of the file ``env[name + "_FILE"]``, else None.

    Both set is refused: which one wins would be a guess."""
    value, file_variable = env.get(name) or None, f"{name}_FILE"
    path = env.get(file_variable) or None
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"set {name} or {file_variable}, not both", name=file_variable)
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{file_variable}: cannot read {path}: {reason}",
                          name=file_variable) from None
    if not content:
        raise ConfigError(f"{file_variable}: {path} is empty", name=file_variable)
    return content


def mask_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (if there is one).

    ``smtp://bob:s3cret@mail:25`` -> ``smtp://bob:***@mail:25``; a URL without a
    password (or a string that is not a URL) comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_loose(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        # An unencoded "/", "?" or "#" in a password cuts the authority short, leaving a
        # "port" that is no number: mask by the last "@" instead.
        return _mask_loose(url) if "@" in url and not port_ok(parts) else url
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def _mask_loose(text: str) -> str:
    """Mask ``scheme://user:password@`` in a string ``urlsplit`` rejects."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return text
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{MASK}@{tail}"


def port_ok(parts: SplitResult) -> bool:
    try:
        _ = parts.port
    except ValueError:
        return False
    return True
