"""Claiming a ready task: the one guarded step that makes a task ``executing``.

The claim and the attempt row it starts are atomic, so a duplicated or redelivered
message finds nothing to claim and runs nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import clock, store
from ..graph import holds
from ..settings import Settings
from ..status import TaskStatus
from .concurrency import claim_capped


@dataclass(frozen=True)
class Claim:
    """A task this server now executes, with what the process needs."""

    task_id: int
    job_id: int
    name: str
    process: str
    kwargs: dict[str, Any]
    company: str | None
    user: str
    attempt: int
    #: The dependents a success of this task decides without a cascade (every one
    #: expects ``ended`` or ``finished``); None when a success needs the full
    #: propagation. See :func:`batchjobs.coordinator.outcome.record`.
    readied_by_success: tuple[int, ...] | None = None
    #: Its job or group has a concurrency cap: when it ends, the next ready task of
    #: that job and group is fed (:func:`batchjobs.coordinator.concurrency.feed_freed`).
    capped: bool = False
    group: str | None = None


def claim(task_id: int, job_id: int, server: str, message_id: str | None = None, *,
          settings: Settings, incarnation: str | None = None) -> Claim | None:
    """Atomically take a ready task for ``server``; None if it is not ready any more, or
    if ``incarnation`` (a batch server's) no longer holds the server's name or the server
    does not serve the task's group, or if its job or group is at its concurrency cap.

    ``message_id`` (Celery's) is kept on the attempt so ``cancel`` can revoke it. The
    hot path's one statement claims a task without a cap; only when it claims nothing
    is the capped claim tried (:func:`concurrency.claim_capped`)."""
    params = {"p_job": job_id, "p_task": task_id, "p_server": server, "p_now": clock.now(),
              "p_message": message_id, "p_incarnation": incarnation}
    with store.atomic(settings) as (steps, conn):
        row = steps.claim(conn, params)
    group = None
    if row is None:
        capped = claim_capped(params, settings)
        if capped is None:
            return None
        row, group = capped
    name, process, kwargs, company, user, attempt, _base, dependents, spawned_by = row
    # A runtime task's end is counted on the task that added it, in the transaction that
    # records it (:func:`settlement.propagate`): never the one-step success.
    at_once = readied_by_success(dependents) if spawned_by is None else None
    return Claim(task_id, job_id, name, process, dict(kwargs or {}), company, user, attempt,
                 at_once, capped=group is not None, group=group)


def claim_next(previous: Claim, server: str, message_id: str | None, *, settings: Settings,
               incarnation: str | None = None) -> Claim | None:
    """The next task for the thread that has just ended ``previous``, taken without a
    message (a chain: :mod:`batchjobs.runner`): the head of its group's backlog, the
    unqueued ready tasks that wait for room on the group's queue, in the feeders' order
    (rank, then the first ready). None when the backlog is empty (a shallow queue: every
    ready task has its message), when its head is another job's, has a time limit or a
    cap, or when the server does not hold its name or serve the group any more.

    The attempt keeps the message's id, so that ``cancel`` and the main process's
    recovery find the attempt the message's process runs now. Only the same job: a
    cancel of another job, which stops the process running its attempt's message, must
    never stop this one."""
    params = {"p_job": previous.job_id, "p_prev": previous.task_id, "p_server": server,
              "p_now": clock.now(), "p_message": message_id, "p_incarnation": incarnation}
    with store.atomic(settings) as (steps, conn):
        row = steps.claim_next(conn, params)
    return None if row is None else chained(tuple(row), previous.job_id)


def chained(row: tuple[Any, ...], job_id: int) -> Claim:
    """The claim of a chain's next task from the claimed columns and its id
    (:data:`statements.CLAIM_NEXT`'s row)."""
    name, process, kwargs, company, user, attempt, _base, dependents, spawned_by, task_id = row
    at_once = readied_by_success(dependents) if spawned_by is None else None
    return Claim(task_id, job_id, name, process, dict(kwargs or {}), company, user, attempt,
                 at_once)


def readied_by_success(dependents: list[Any] | None) -> tuple[int, ...] | None:
    """The ids of the dependents if a success of their parent decides them all without a
    cascade: each expects ``ended`` or ``finished``, so the condition holds, and a held
    condition only ever makes a waiting task ready (or leaves it waiting). None otherwise
    (a dependent expects ``error``: it becomes not_run, and so may its own dependents)."""
    children = tuple(child for child, _ in dependents or ())
    if len(set(children)) != len(children):
        return None
    if all(holds(expected, TaskStatus.ENDED) for _, expected in dependents or ()):
        return children
    return None
