"""All batchjobs settings in one frozen object, read from ``BATCHJOBS_*``.

With nothing set, batchjobs runs on the *embedded default*: SQLite in
``./batchjobs.db`` and the filesystem broker (:mod:`batchjobs.broker`) in ``./batchjobs.broker/``,
so a single host needs no server at all. Celery's own options live in
``celeryconfig.py``, which reads the broker URL from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .secrets import mask_url, url_setting

#: SQLite file used when BATCHJOBS_DATABASE_URL is unset.
DEFAULT_DATABASE_FILE = "batchjobs.db"
#: Folder of the filesystem broker used when BATCHJOBS_BROKER_URL is unset.
DEFAULT_BROKER_FOLDER = "batchjobs.broker"
#: Name of the batch group every installation has.
DEFAULT_GROUP = "default"
#: Seconds between the filesystem broker's polls of its folder (one hop costs about this).
FILESYSTEM_POLLING_INTERVAL = 0.005
#: Seconds a ``ready`` task may sit unclaimed before its message is published again.
REPUBLISH_AFTER = 30.0
#: Messages a batch group's queue is kept at: a job starting with more ready tasks
#: publishes this many, and housekeepers publish more as the queue drains.
QUEUE_DEPTH = 1000
#: Seconds a batch server's thread goes on taking its group's backlog without a message
#: once a task of it ended (a chain, :mod:`batchjobs.runner`); 0: never.
CHAIN_SECONDS = 1.0
#: The highest message priority RabbitMQ queues are declared with (``x-max-priority``):
#: one level per rank above ``low`` (:mod:`batchjobs.priority`).
PRIORITY_LEVELS = 3
#: Seconds a ready task waits before its priority rises one rank (twice that: two ranks,
#: up to critical), so that a stream of higher tasks never starves a lower one. 0: never.
PRIORITY_AGING = 600.0
#: Seconds without a heartbeat after which a server is presumed dead and its tasks lost.
SERVER_TIMEOUT = 30.0
#: Seconds between two passes of a housekeeper.
HOUSEKEEPING_INTERVAL = 0.5
#: Seconds between two reads of the next due instants where the database sends no
#: notifications (SQLite): how late a job submitted with ``run_at`` just ahead may start.
DUE_POLL_INTERVAL = 0.05
#: Seconds between two heartbeats of a batch server (and the recovery sweeps with them).
HEARTBEAT_INTERVAL = 2.0
#: Tries of one alert delivery before it is given up (marked ``failed``).
ALERT_MAX_TRIES = 8
#: Seconds a claimed alert delivery may take before another process may try again.
ALERT_LEASE = 60.0
#: Messages (and their task-sent events) sent to the broker in one pipelined write.
PUBLISH_BATCH = 1000
#: Seconds before a housekeeper process that died is started again.
HOUSEKEEPER_RESTART_DELAY = 1.0
#: Bytes of log kept per attempt at most.
ATTEMPT_LOG_LIMIT = 1 << 20
#: The module of Celery's own settings (``BATCHJOBS_CELERY_CONFIG``).
CELERY_CONFIG = "celeryconfig"


@dataclass(frozen=True)
class Settings:
    """Where the database and the broker are; everything else has a default."""

    database_url: str
    broker_url: str
    home: Path = field(default_factory=Path.cwd)
    imports: tuple[str, ...] = ()
    republish_after: float = REPUBLISH_AFTER
    server_timeout: float = SERVER_TIMEOUT
    queue_depth: int = QUEUE_DEPTH
    #: ``BATCHJOBS_CHAIN_SECONDS``: how long a thread chains backlog tasks after the
    #: message's own (warm shutdowns and pool resizes wait at most this beyond a task).
    chain_seconds: float = CHAIN_SECONDS
    #: ``BATCHJOBS_PRIORITY_AGING``: see :data:`PRIORITY_AGING` (0 turns aging off).
    priority_aging: float = PRIORITY_AGING
    #: Alert sinks: ``smtp://[user[:password]@]host[:port]`` (or ``smtps://``,
    #: ``smtp+starttls://``) with its sender address, and a webhook URL. None = off.
    smtp_url: str | None = None
    alert_email_from: str = "batchjobs@localhost"
    alert_webhook: str | None = None
    alert_max_tries: int = ALERT_MAX_TRIES
    alert_lease: float = ALERT_LEASE
    #: ``BATCHJOBS_HOUSEKEEPING_INTERVAL``: the housekeepers' tick (due work wakes them
    #: at its own instant, :mod:`batchjobs.wakeup`).
    housekeeping_interval: float = HOUSEKEEPING_INTERVAL
    #: ``BATCHJOBS_DUE_POLL``: seconds between reads of the next due instants on SQLite.
    due_poll_interval: float = DUE_POLL_INTERVAL
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    housekeeper_restart_delay: float = HOUSEKEEPER_RESTART_DELAY
    publish_batch: int = PUBLISH_BATCH
    celery_config: str = CELERY_CONFIG
    #: Seconds added to the clock a server's schedule is read with
    #: (``BATCHJOBS_SCHEDULE_OFFSET``), so a test can put a server just before a window
    #: boundary without changing any other time.
    schedule_offset: float = 0.0
    #: Bytes of log (logging records, stdout, stderr) kept per attempt at most
    #: (``BATCHJOBS_ATTEMPT_LOG_LIMIT``); beyond it the middle is cut, and marked.
    attempt_log_limit: int = ATTEMPT_LOG_LIMIT
    #: Seconds a batch server's own clock is shifted by (``BATCHJOBS_CLOCK_OFFSET``): a
    #: test's way to run a server on a host whose clock is wrong.
    clock_offset: float = 0.0
    #: Seconds a warm shutdown waits for running tasks before it stops them and ends their
    #: attempts ``error`` "stopped" (``BATCHJOBS_STOP_TIMEOUT``; None: as long as they run).
    #: Set it below the service manager's own stop timeout (systemd's ``TimeoutStopSec``),
    #: whose SIGKILL would leave the attempts to recovery.
    stop_timeout: float | None = None
    #: Signs the web console's session cookies; None = a key generated once and kept in
    #: the database (:func:`batchjobs.auth.signing_key`).
    secret_key: str | None = None
    #: Refuse jobs submitted as a user that ``batchjobs user add`` never added
    #: (``BATCHJOBS_REQUIRE_KNOWN_USERS=1``). Off by default: any name may submit, as
    #: before, so installations whose users were never added keep working. A disabled
    #: user is refused either way.
    require_known_users: bool = False
    #: Seconds after which finished jobs are deleted by the housekeepers, once a day
    #: (``BATCHJOBS_RETENTION``, e.g. ``30d``; :mod:`batchjobs.retention`). None = never.
    retention: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("BATCHJOBS_HOME") or Path.cwd()).resolve()
        database_url = (url_setting(env, "BATCHJOBS_DATABASE_URL")
                        or f"sqlite:///{home / DEFAULT_DATABASE_FILE}")
        _check_database_url(database_url)
        broker_url = url_setting(env, "BATCHJOBS_BROKER_URL") or "embedded://"
        imports = tuple(m.strip() for m in env.get("BATCHJOBS_IMPORTS", "").split(",") if m.strip())
        return cls(database_url=database_url, broker_url=broker_url, home=home, imports=imports,
                   republish_after=_seconds(env, "BATCHJOBS_REPUBLISH_AFTER", REPUBLISH_AFTER),
                   server_timeout=_seconds(env, "BATCHJOBS_SERVER_TIMEOUT", SERVER_TIMEOUT),
                   queue_depth=_count(env, "BATCHJOBS_QUEUE_DEPTH", QUEUE_DEPTH),
                   chain_seconds=_seconds_or_off(env, "BATCHJOBS_CHAIN_SECONDS",
                                                 CHAIN_SECONDS),
                   priority_aging=_aging(env),
                   housekeeping_interval=_seconds(env, "BATCHJOBS_HOUSEKEEPING_INTERVAL",
                                                  HOUSEKEEPING_INTERVAL),
                   due_poll_interval=_seconds(env, "BATCHJOBS_DUE_POLL", DUE_POLL_INTERVAL),
                   smtp_url=env.get("BATCHJOBS_SMTP_URL") or None,
                   alert_email_from=env.get("BATCHJOBS_ALERT_EMAIL_FROM") or "batchjobs@localhost",
                   alert_webhook=env.get("BATCHJOBS_ALERT_WEBHOOK") or None,
                   celery_config=env.get("BATCHJOBS_CELERY_CONFIG") or CELERY_CONFIG,
                   schedule_offset=_offset(env, "BATCHJOBS_SCHEDULE_OFFSET"),
                   attempt_log_limit=_count(env, "BATCHJOBS_ATTEMPT_LOG_LIMIT",
                                            ATTEMPT_LOG_LIMIT),
                   clock_offset=_offset(env, "BATCHJOBS_CLOCK_OFFSET"),
                   stop_timeout=(_seconds(env, "BATCHJOBS_STOP_TIMEOUT", 1.0)
                                 if env.get("BATCHJOBS_STOP_TIMEOUT") else None),
                   secret_key=env.get("BATCHJOBS_SECRET_KEY") or None,
                   require_known_users=_flag(env, "BATCHJOBS_REQUIRE_KNOWN_USERS"),
                   retention=_retention(env))

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("embedded://")

    @property
    def broker_folder(self) -> Path:
        return self.home / DEFAULT_BROKER_FOLDER

    def broker_config(self) -> dict[str, object]:
        """Celery's ``broker_url`` and ``broker_transport_options`` for this broker."""
        if not self.embedded_broker:
            # A redelivered message is harmless (the claim refuses it), so the
            # visibility timeout only bounds how long a dead worker's message waits.
            # Priorities: RabbitMQ queues are declared with x-max-priority (a queue declared
            # without it must be deleted once, while empty, to be declared again with it);
            # kombu's Redis transport keeps its default steps 0, 3, 6, 9.
            return {"broker_url": self.broker_url, "task_queue_max_priority": PRIORITY_LEVELS,
                    "broker_transport_options": {"visibility_timeout": 3600}}
        from .broker import register

        register()     # the folders are the broker's to make, when it is first used
        folder = self.broker_folder
        return {"broker_url": self.broker_url, "broker_transport_options": {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "tmp_folder": str(folder / "tmp"),
            "store_processed": False,
            "polling_interval": FILESYSTEM_POLLING_INTERVAL,
        }}

    def safe_database_url(self) -> str:
        """The database URL with any password masked, for printing."""
        return mask_url(self.database_url)

    def no_database(self) -> ConfigError:
        """What a read says where no database is (nothing has been stored yet)."""
        return ConfigError(f"no batchjobs database at {self.safe_database_url()} (nothing "
                           "has been stored here); run this where the jobs are, or point "
                           "BATCHJOBS_HOME (or BATCHJOBS_DATABASE_URL) at their database",
                           name="BATCHJOBS_DATABASE_URL")

    def safe_broker_url(self) -> str:
        """The broker URL with any password masked, for printing."""
        from kombu.utils.url import maybe_sanitize_url

        return str(maybe_sanitize_url(self.broker_url))


def _check_database_url(url: str) -> None:
    """Refuse a database URL that can never work (``5441x`` as a port) before anything
    connects; the message never repeats the URL, which may hold a password.

    Read with the standard library, not SQLAlchemy's URL parser: a command that only
    reads a job's status never imports SQLAlchemy (:mod:`batchjobs.reads`)."""
    if not _URL.match(url):
        raise ConfigError("BATCHJOBS_DATABASE_URL is not a database URL such as "
                          "postgresql+psycopg://user@host:5432/db",
                          name="BATCHJOBS_DATABASE_URL")
    # After the last "@": never any of a password, even one with an unencoded "/" or "@".
    host = url.partition("://")[2].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
    host = host.rpartition("]")[2]                      # an IPv6 address's colons
    port_text = host.rpartition(":")[2] if ":" in host else ""
    if not port_text:
        return
    if not port_text.isdigit():
        raise ConfigError(f"BATCHJOBS_DATABASE_URL has port {port_text!r}, which is not a "
                          "number", name="BATCHJOBS_DATABASE_URL")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"BATCHJOBS_DATABASE_URL has port {port}, outside 1-65535",
                          name="BATCHJOBS_DATABASE_URL")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw!r}", name=name)
    return value


#: ``30d``, ``12h``, ``90m``, ``45s``, ``2w``: an age or a period, in whole units.
#: scheme://…, as SQLAlchemy spells a database URL.
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")
_DURATION = re.compile(r"\A([0-9]+)([smhdw])\Z")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float | None:
    """Seconds of ``30d``/``12h``/``90m``/``45s``/``2w`` (``0s`` is 0); None if malformed."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    return float(int(match[1]) * _DURATION_UNITS[match[2]])


def _retention(env: Mapping[str, str]) -> float | None:
    raw = env.get("BATCHJOBS_RETENTION")
    if not raw or raw.strip().lower() in ("off", "0"):
        return None
    seconds = parse_duration(raw)
    if seconds is None or seconds <= 0:
        raise ConfigError(f"BATCHJOBS_RETENTION must be an age such as 30d, 12h or 90m "
                          f"(or off), not {raw!r}", name="BATCHJOBS_RETENTION")
    return seconds


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}",
                      name=name)
def _aging(env: Mapping[str, str]) -> float:
    """``BATCHJOBS_PRIORITY_AGING``: seconds, or 0 (aging off)."""
    return _seconds_or_off(env, "BATCHJOBS_PRIORITY_AGING", PRIORITY_AGING)


def _seconds_or_off(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds, or 0 for "off"."""
    if env.get(name, "").strip() in ("0", "0.0"):
        return 0.0
    return _seconds(env, name, default)


def _offset(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name)
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}", name=name) from None


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}", name=name)
    return int(raw)


_ENV_KEYS = ("BATCHJOBS_HOME", "BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL",
             "BATCHJOBS_DATABASE_URL_FILE", "BATCHJOBS_BROKER_URL_FILE",
             "BATCHJOBS_IMPORTS", "BATCHJOBS_REPUBLISH_AFTER", "BATCHJOBS_SERVER_TIMEOUT",
             "BATCHJOBS_QUEUE_DEPTH", "BATCHJOBS_CHAIN_SECONDS", "BATCHJOBS_CELERY_CONFIG",
             "BATCHJOBS_SCHEDULE_OFFSET",
             "BATCHJOBS_ATTEMPT_LOG_LIMIT", "BATCHJOBS_CLOCK_OFFSET",
             "BATCHJOBS_STOP_TIMEOUT",
             "BATCHJOBS_SMTP_URL", "BATCHJOBS_ALERT_EMAIL_FROM", "BATCHJOBS_ALERT_WEBHOOK",
             "BATCHJOBS_SECRET_KEY", "BATCHJOBS_REQUIRE_KNOWN_USERS", "BATCHJOBS_RETENTION")
_cache: dict[tuple[str | None, ...], Settings] = {}


def get_settings() -> Settings:
    """The settings of this process; read again whenever the environment changed."""
    key = (os.getcwd(), *(os.environ.get(k) for k in _ENV_KEYS))
    settings = _cache.get(key)
    if settings is None:
        settings = _cache[key] = Settings.from_env()
    return settings
