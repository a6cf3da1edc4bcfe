"""Batch group → Celery queue, and publishing ready tasks onto those queues."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .coordinator import Dispatch

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


def publish(dispatches: Iterable[Dispatch]) -> int:
    """Publish each ready task on its group's queue, over one producer; return the count.

    The message carries ids only (the process and its kwargs are read from the
    database by the server that claims the task); job, task name and process are
    added as keyword arguments so Flower shows what each message is.
    """
    dispatches = list(dispatches)
    if not dispatches:
        return 0
    from .app import app

    with app.producer_or_acquire() as producer:
        for d in dispatches:
            app.send_task(
                RUN_TASK, args=[d.task_id],
                kwargs={"job": d.job_id, "task": d.name, "process": d.process},
                queue=queue_name(d.group), routing_key=queue_name(d.group), producer=producer,
            )
    log.debug("published %d task(s)", len(dispatches))
    return len(dispatches)
