"""The Celery app of batchjobs (``celery -A batchjobs.app ...``).

Settings come from ``celeryconfig`` (or the module named by
``BATCHJOBS_CELERY_CONFIG``); whatever that module says, messages are JSON only.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("batchjobs")
app.config_from_object(os.environ.get("BATCHJOBS_CELERY_CONFIG", "celeryconfig"))
app.conf.update(
    task_serializer="json", result_serializer="json", event_serializer="json",
    accept_content=["json"], result_accept_content=["json"],
)
app.conf.include = ["batchjobs.runner", "batchjobs.servers"]
