"""How far a job has got, and what keeps its ready tasks waiting: what ``batchjobs wait``
shows while it waits.

Both reads are light on purpose (a count per status, the groups of ready tasks), because
``wait`` repeats them every fraction of a second on jobs of 100,000 tasks: the full
:func:`batchjobs.api.status` reads every task and attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from . import store
from .errors import JobNotFound
from .models import Job, Task
from .servers import list_servers
from .settings import Settings
from .status import TASK_FINAL, JobStatus, TaskStatus


@dataclass(frozen=True)
class JobProgress:
    """One look at a job: its status and how many of its tasks are where."""

    job_id: int
    status: JobStatus
    total: int
    done: int        # final: ended, error, not_run, canceled
    running: int     # executing
    failed: int      # ended error
    ready_groups: frozenset[str]   # groups of the tasks that are ready and wait for a server


def job_progress(job_id: int, *, settings: Settings | None = None) -> JobProgress:
    """Count the job's tasks by status in one grouped read; raises :class:`JobNotFound`."""
    with store.read_session(settings) as session:
        status = session.execute(select(Job.status).where(Job.id == job_id)).scalar()
        if status is None:
            raise JobNotFound(job_id)
        counts: dict[TaskStatus, int] = {}
        ready: set[str] = set()
        for stored, group, count in session.execute(
                select(Task.status, Task.group_name, func.count())
                .where(Task.job_id == job_id).group_by(Task.status, Task.group_name)):
            task_status = TaskStatus(stored)
            counts[task_status] = counts.get(task_status, 0) + count
            if task_status is TaskStatus.READY:
                ready.add(group)
    return JobProgress(
        job_id=job_id, status=JobStatus(status), total=sum(counts.values()),
        done=sum(n for s, n in counts.items() if s in TASK_FINAL),
        running=counts.get(TaskStatus.EXECUTING, 0),
        failed=counts.get(TaskStatus.ERROR, 0), ready_groups=frozenset(ready))


def unserved_groups(groups: Iterable[str], *, settings: Settings | None = None) -> list[str]:
    """Those of ``groups`` that no live server serves: their ready tasks wait for nothing
    that will come unless someone starts or reconfigures a server. Live as ``server
    list`` says it (:func:`batchjobs.servers.list_servers`), read at most every few
    seconds by ``wait``."""
    wanted = set(groups)
    if not wanted:
        return []
    served = {group for row in list_servers(settings=settings) if row["live"]
              for group in row["groups"]}
    return sorted(wanted - served)
