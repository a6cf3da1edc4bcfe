"""Batch group → Celery queue, and publishing ready tasks onto those queues.

A publish that cannot reach the broker raises :class:`DispatchError` (one line, the URL
without its password); the tasks stay ready in the database, and housekeepers publish
them once their queue is reachable and they have waited ``BATCHJOBS_REPUBLISH_AFTER``
(:func:`batchjobs.coordinator.sweeps.republish_lost`). A broker URL that can never
work (an unknown scheme, a malformed address) is refused before anything is stored
(:func:`check_broker_url`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, DispatchError
from .priority import message_priority
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
    #: Its priority's rank now (:mod:`batchjobs.priority`): the message's priority.
    rank: int = 1


def publish(dispatches: Iterable[Dispatch], *, settings: Settings | None = None) -> int:
    """Publish each ready task on its group's queue, over one producer; return the count.

    The message carries ids only (the process and its kwargs are read from the
    database by the server that claims the task). So that Flower's task list shows what
    each message is, its Celery task is named after the process and its id starts with
    the job's id and the task's name (:func:`message_id`).

    Messages go out in pipelined batches where the transport can (kombu's
    ``Producer.batch``: Redis), one round trip per ``settings.publish_batch`` messages
    instead of one per message and one per task-sent event: a started job with 100,000
    roots is on its queues in seconds. A batch that fails to reach the broker raises;
    its tasks stay ready in the database and a housekeeper republishes them.
    """
    dispatches = list(dispatches)
    if not dispatches:
        return 0
    from kombu.exceptions import OperationalError

    from .app import app

    settings = settings or get_settings()
    try:
        with app.producer_or_acquire() as producer, _batch(producer, settings.publish_batch):
            for d in dispatches:
                app.send_task(
                    d.process, args=[d.task_id], kwargs={"job": d.job_id, "task": d.name},
                    task_id=message_id(d), queue=queue_name(d.group),
                    routing_key=queue_name(d.group), producer=producer, time_limit=d.timeout,
                    priority=message_priority(d.rank, settings.broker_url),
                )
    except (OperationalError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = _password(settings.broker_url)
        if password:
            reason = reason.replace(password, "**")
        raise DispatchError(f"broker {settings.safe_broker_url()} unreachable: {reason}",
                            count=len(dispatches)) from exc
    log.debug("published %d task(s)", len(dispatches))
    return len(dispatches)


def message_id(dispatch: Dispatch) -> str:
    """A message's (Celery task's) id: ``<job id>:<task name>:<unique>``, so that a list of
    messages (Flower's) says which job and task each one is."""
    return f"{dispatch.job_id}:{dispatch.name}:{uuid.uuid4().hex[:12]}"


def publish_or_defer(dispatches: Iterable[Dispatch], *, settings: Settings | None = None,
                     ) -> int:
    """:func:`publish` after a commit that stands whatever the broker says: an unreachable
    broker is a warning (the tasks are ready in the database; housekeepers publish them
    once it answers), not an error of the operation that made them ready."""
    try:
        return publish(dispatches, settings=settings)
    except DispatchError as exc:
        log.warning("dispatch deferred: %s; housekeepers publish the ready tasks once the "
                    "broker answers", exc)
        return 0


def check_broker_url(settings: Settings) -> None:
    """Refuse a broker URL that can never work: no scheme, a scheme no transport serves,
    a malformed address (:class:`ConfigError`, the URL without its password)."""
    if settings.embedded_broker:
        return
    from kombu.transport import resolve_transport

    url = settings.broker_url
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigError("BATCHJOBS_BROKER_URL is not a URL (e.g. redis://127.0.0.1:6379/0)",
                          name="BATCHJOBS_BROKER_URL")
    try:
        urlsplit(url).port   # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:   # not printed: the rest of the URL may hold a password
        raise ConfigError(f"BATCHJOBS_BROKER_URL {scheme}://… is malformed: {exc}",
                          name="BATCHJOBS_BROKER_URL") from None
    shown = settings.safe_broker_url()
    try:
        resolve_transport(scheme.split("+", 1)[0])
    except KeyError:
        raise ConfigError(f"BATCHJOBS_BROKER_URL {shown!r}: no transport for scheme "
                          f"{scheme!r} (e.g. redis://, amqp://, embedded://)",
                          name="BATCHJOBS_BROKER_URL") from None
    except ImportError as exc:
        raise ConfigError(f"BATCHJOBS_BROKER_URL {shown!r}: the {scheme} transport needs "
                          f"{exc.name or 'a library'}, which is not installed",
                          name="BATCHJOBS_BROKER_URL") from None


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """A pipelined publish batch where kombu offers one: even a single message goes out
    with its task-sent event in one round trip."""
    batch = getattr(producer, "batch", None)
    return nullcontext() if batch is None else batch(max_size=size)
