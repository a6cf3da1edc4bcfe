"""A job's count of unfinished tasks, spread over several rows for a large job.

Every finished task is counted down on one counter of its job, and the job ends when
they are all at 0. With one counter (``jobs.remaining``) the completions of a large job
queued on one row: a one-statement success holds the row's lock until its commit has
been flushed, so eight processes finishing tasks of one job waited on each other (a
fifth to a third of the active PostgreSQL backends were waiting on a lock). A job of
:data:`TASKS_PER_COUNTER` × 2 tasks or more has up to :data:`COUNTERS` counters:
counter 0 is still ``jobs.remaining``, counters 1… are ``job_counters`` rows, and a task
is counted on ``its id mod the number of counters`` (``tasks.counter``, chosen when it
is stored). A smaller job, and every task added at run time, has counter 0 alone.

Every recording of an outcome locks rows in one order: the finished task, the tasks it
decides (in the job's order, cascades after), then its job's counters 1… in their order,
the job's row last (:func:`count_down`, and the one-statement success of
``store/steps.py``, which updates its counter after its dependents). With one counter
the job's row came first everywhere and ordered the rest; without that, two
completions of one job locking a dependent and a counter in opposite orders would
wait for each other until PostgreSQL aborts one of them (a second: JOB 1's shape ran
2.5 times slower until this order was kept).

The job's end is found exactly and without a scan: the decrement that brings a counter
to 0 makes its transaction check the job (``settlement.end_settled_job``): the job's row
locked first, then the sum of its counters read in a statement of its own. Of two last
tasks on different counters finishing at once, the one that takes the lock second reads
the sum after the other's transaction has ended, and the other's decrement was
committed by then (a one-statement success commits before it checks; a transaction
checks before it commits), so it reads 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from .store import statements as sql

#: The most counters a job has (the rows its completions spread over).
COUNTERS = 8
#: A job has one counter per this many tasks, up to :data:`COUNTERS`.
TASKS_PER_COUNTER = 64

_counter = sql.job_counter
_SET = (update(_counter).where(_counter.c.job_id == bindparam("p_job"),
                               _counter.c.counter == bindparam("p_counter"))
        .values(remaining=bindparam("p_remaining")))


def spread(task_ids: Sequence[int]) -> dict[int, int]:
    """The counter of each of a new job's tasks (by id)."""
    n = max(1, min(COUNTERS, len(task_ids) // TASKS_PER_COUNTER))
    return {task_id: task_id % n for task_id in task_ids}


def on_job(counter_of: Mapping[int, int]) -> int:
    """What counter 0 (the job's ``remaining``) of a new job starts at."""
    return sum(1 for k in counter_of.values() if k == 0)


def store_counters(session: Session, job_id: int, counter_of: Mapping[int, int]) -> None:
    """Insert the new job's counters 1… for its tasks' ``counter_of``."""
    counted = Counter(counter_of.values())
    others = [{"job_id": job_id, "counter": k, "remaining": counted[k]}
              for k in range(1, max(counted, default=0) + 1)]
    if others:
        session.execute(insert(_counter), others)


def recount(session: Session, job_id: int, task_ids: list[int] | None = None) -> int:
    """A new run counts ``task_ids`` (every task of the job if None) unfinished again:
    set the job's counters 1…; return what counter 0 (``jobs.remaining``) is set to."""
    query = (select(sql.task.c.counter, func.count()).where(sql.task.c.job_id == job_id)
             .group_by(sql.task.c.counter))
    if task_ids is not None:
        query = query.where(sql.task.c.id.in_(task_ids))
    rows: Any = session.execute(query).all()
    counted: dict[int, int] = {int(k): int(n) for k, n in rows}
    _set_all(session, job_id, counted)
    return counted.get(0, 0)


def clear(session: Session, job_id: int) -> None:
    """The job is over (canceled): nothing is left on any counter."""
    _set_all(session, job_id, {})


def _set_all(session: Session, job_id: int, counted: Mapping[int, int]) -> None:
    existing: Any = session.execute(select(_counter.c.counter).where(
        _counter.c.job_id == job_id)).scalars().all()
    if existing:
        session.execute(_SET, [{"p_job": job_id, "p_counter": k,
                                "p_remaining": counted.get(k, 0)} for k in existing])


def count_down(session: Session, job_id: int, finished: Mapping[int, int],
               failed: int) -> bool:
    """Count ``finished`` tasks (how many per counter) and ``failed`` failures on the
    job; True if a counter reached 0 (the job may have no task left: check it).

    Counters 1… in their order, the job's own row last: the order of the locks."""
    conn = session.connection()
    reached = False
    for k in sorted(k for k, n in finished.items() if k and n):
        remaining = conn.execute(sql.COUNT_DOWN, {"p_job": job_id, "p_counter": k,
                                                  "p_finished": finished[k]}).one()[0]
        reached = reached or remaining <= 0
    on_job = finished.get(0, 0)
    if on_job or failed:
        remaining = conn.execute(sql.SETTLE, {"p_job": job_id, "p_finished": on_job,
                                              "p_failed": failed}).one()[0]
        reached = reached or (on_job > 0 and remaining <= 0)
    return reached
