"""The Celery app of batchjobs (``celery -A batchjobs.app ...``).

Settings come from ``celeryconfig`` (or the module named by
``BATCHJOBS_CELERY_CONFIG``); whatever that module says, messages are JSON only.
"""

from __future__ import annotations

import os

from celery import Celery

from .settings import Settings, get_settings

app = Celery("batchjobs")
app.config_from_object(os.environ.get("BATCHJOBS_CELERY_CONFIG", "celeryconfig"))
app.conf.update(
    task_serializer="json", result_serializer="json", event_serializer="json",
    accept_content=["json"], result_accept_content=["json"],
)
app.conf.include = ["batchjobs.runner", "batchjobs.worker", "batchjobs.logfilters",
                    "batchjobs.metrics"]


def configure(settings: Settings | None = None) -> None:
    """Point the app at the broker of ``settings`` (default: the environment's); for
    processes that switch installations, such as tests. kombu keeps one pool per
    broker, so the previous broker's pool stays usable for whoever still holds it."""
    app.conf.update((settings or get_settings()).broker_config())
    app._pool = None
    # The AMQP helper caches producers and the task-sent event dispatcher per broker.
    app.__dict__.pop("amqp", None)
