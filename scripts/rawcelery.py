"""Raw Celery app for ``scripts/bench.py``: the same no-op work as batchjobs, no batchjobs code.

Workers run ``celery -A rawcelery worker ...`` with ``scripts/`` on ``PYTHONPATH``; the
bench process builds its client app with :func:`make_app`. Settings mirror
``celeryconfig.py`` (JSON only, late ack, prefetch 1, task events, sent events); the broker,
its transport options and the result backend come from ``RAW_*`` environment variables.

Each task appends one line to ``$RAW_SINK/<tag>.log`` (one ``os.write`` on an ``O_APPEND``
descriptor, so lines of concurrent processes never interleave):

``RAW_DEFAULTS=1`` runs Celery with its own defaults (early ack, prefetch 4, no events).

* ``raw.noop(tag, i)`` writes ``i start end``;
* ``raw.hop(prev_end, tag, i)`` writes ``i start prev_end``, *before* it takes its own end
  time, which it returns: a ``chain`` passes it to the next link as ``prev_end``. The hop
  (``start - prev_end``) therefore contains no bookkeeping of this module.

The embedded side uses batchjobs' ``embedded://`` transport (kombu's filesystem transport
with atomic publish/claim, :mod:`batchjobs.broker`): the same broker batchjobs runs on, so
the ratio isolates batchjobs' own work. Only ``batchjobs.broker`` is imported, and only then.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery

QUEUE = "raw.bench"
_fds: dict[str, int] = {}


def make_app(broker_url: str, transport_options: dict[str, Any] | None = None,
             result_backend: str | None = None, *, defaults: bool = False) -> Celery:
    """The raw app; ``defaults``: Celery's own defaults for acknowledgement, prefetch and
    events (early ack, prefetch 4 per process, no task events) instead of batchjobs'."""
    if broker_url.startswith("embedded://"):
        import batchjobs.broker

        batchjobs.broker.register()
    app = Celery("rawcelery")
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options or {},
        broker_connection_retry_on_startup=True,
        task_serializer="json", result_serializer="json", event_serializer="json",
        accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=not result_backend,
        result_backend=result_backend or None,
        task_default_queue=QUEUE,
        worker_send_task_events=True,
        task_send_sent_event=True,
        timezone="UTC", enable_utc=True,
    )
    if defaults:
        app.conf.update(task_acks_late=False, worker_prefetch_multiplier=4,
                        worker_send_task_events=False, task_send_sent_event=False)
    return app


app = make_app(os.environ.get("RAW_BROKER_URL", "redis://127.0.0.1:6379/13"),
               json.loads(os.environ.get("RAW_TRANSPORT_OPTIONS") or "{}"),
               os.environ.get("RAW_RESULT_BACKEND") or None,
               defaults=os.environ.get("RAW_DEFAULTS") == "1")


def _record(tag: str, line: str) -> None:
    fd = _fds.get(tag)
    if fd is None:
        path = os.path.join(os.environ["RAW_SINK"], f"{tag}.log")
        fd = _fds[tag] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())


@app.task(name="raw.noop")
def noop(tag: str, i: int) -> float:
    start = time.time()
    end = time.time()
    _record(tag, f"{i} {start!r} {end!r}\n")
    return end


@app.task(name="raw.hop")
def hop(prev_end: float | None, tag: str, i: int) -> float:
    start = time.time()
    _record(tag, f"{i} {start!r} {prev_end!r}\n")
    return time.time()
