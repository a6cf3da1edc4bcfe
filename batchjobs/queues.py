"""Batch group → Celery queue, and publishing ready tasks onto those queues."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Name of the Celery task every batch server runs.
RUN_TASK = "batchjobs.run"
QUEUE_PREFIX = "batch."


def queue_name(group: str) -> str:
    """The Celery queue of a batch group: ``batch.<group>``."""
    return f"{QUEUE_PREFIX}{group}"


def group_of_queue(queue: str) -> str | None:
    """The batch group a queue belongs to, or None for a queue that is not ours."""
    return queue[len(QUEUE_PREFIX):] if queue.startswith(QUEUE_PREFIX) else None


@dataclass(frozen=True)
class Dispatch:
    """A task that became ready and must be published on its group's queue."""

    task_id: int
    job_id: int
    name: str
    process: str
    group: str
    #: Seconds its process may run: the message's hard time limit (None: no limit).
    timeout: float | None = None


def publish(dispatches: Iterable[Dispatch], *, settings: Settings | None = None) -> int:
    """Publish each ready task on its group's queue, over one producer; return the count.

    The message carries ids only (the process and its kwargs are read from the
    database by the server that claims the task); job, task name and process are
    added as keyword arguments so Flower shows what each message is.

    Messages go out in pipelined batches where the transport can (kombu's
    ``Producer.batch``: Redis), one round trip per ``settings.publish_batch`` messages
    instead of one per message and one per task-sent event: a started job with 100,000
    roots is on its queues in seconds. A batch that fails to reach the broker raises;
    its tasks stay ready in the database and a housekeeper republishes them.
    """
    dispatches = list(dispatches)
    if not dispatches:
        return 0
    from .app import app

    size = (settings or get_settings()).publish_batch
    with app.producer_or_acquire() as producer, _batch(producer, size):
        for d in dispatches:
            app.send_task(
                RUN_TASK, args=[d.task_id],
                kwargs={"job": d.job_id, "task": d.name, "process": d.process},
                queue=queue_name(d.group), routing_key=queue_name(d.group), producer=producer,
                time_limit=d.timeout,
            )
    log.debug("published %d task(s)", len(dispatches))
    return len(dispatches)


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """A pipelined publish batch where kombu offers one: even a single message goes out
    with its task-sent event in one round trip."""
    batch = getattr(producer, "batch", None)
    return nullcontext() if batch is None else batch(max_size=size)
