"""The Celery app of batchjobs (``celery -A batchjobs.app ...``).

Built when this module is imported, never by ``import batchjobs``: a command that
only reads the database does not pay for Celery. Its configuration has three layers,
the last one winning:

1. batchjobs' defaults (:data:`DEFAULTS`);
2. the user's Celery module, if one can be imported: ``celeryconfig`` or the module
   ``BATCHJOBS_CELERY_CONFIG`` names (the repository's ``celeryconfig.py`` shows what
   belongs there);
3. what correctness depends on (:data:`ENFORCED`) and the broker of the settings:
   whatever a config module says, messages are JSON only, a thread holds only the task
   it runs (late ack, prefetch 1), a task whose process died is not acknowledged as
   done, and servers send the events Flower shows.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from celery import Celery

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Defaults a user's Celery module may change.
DEFAULTS: dict[str, Any] = {
    "broker_connection_retry_on_startup": True,
    "task_ignore_result": True,
    "task_default_queue": "batch.default",
    "timezone": "UTC",
    "enable_utc": True,
}

#: Settings batchjobs relies on; applied over any configuration module.
ENFORCED: dict[str, Any] = {
    # Security: JSON only, everywhere.
    "task_serializer": "json", "result_serializer": "json", "event_serializer": "json",
    "accept_content": ["json"], "result_accept_content": ["json"],
    # One thread, one task: no prefetching beyond the task in hand, ack after it ran.
    "task_acks_late": True, "worker_prefetch_multiplier": 1,
    "task_reject_on_worker_lost": True,
    # Flower and `celery events` see every batch task and the server that ran it.
    "worker_send_task_events": True, "task_send_sent_event": True,
}


def user_config(module: str) -> dict[str, Any]:
    """The upper-case-free Celery settings of the user's module; none if it cannot be
    imported (it is optional)."""
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise     # the module exists but imports something missing: say so
        return {}
    return {key: value for key, value in vars(loaded).items()
            if not key.startswith("_") and key.islower() and not callable(value)
            and not isinstance(value, type(importlib))}


def configure(settings: Settings | None = None) -> None:
    """Point the app at the settings' broker, with the user's module and what batchjobs
    enforces (for processes that switch installations, such as tests). kombu keeps one
    pool per broker, so the previous broker's pool stays usable for whoever holds it."""
    settings = settings or get_settings()
    app.conf.update({**DEFAULTS, **user_config(settings.celery_config), **ENFORCED,
                     **settings.broker_config()})
    app._pool = None
    # The AMQP helper caches producers and the task-sent event dispatcher per broker.
    app.__dict__.pop("amqp", None)


app = Celery("batchjobs")
app.conf.include = ["batchjobs.runner", "batchjobs.worker", "batchjobs.logfilters",
                    "batchjobs.metrics"]
configure()
