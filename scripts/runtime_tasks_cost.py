#!/usr/bin/env python
"""What adding tasks at run time costs, next to submitting them: ``ctx.add_task`` ×N in a
process, then storing them with its success, against ``submit`` of an N-task job.

Runs in this process, without broker or servers: the job is stored due tomorrow (nothing
is published), the adder is claimed, executed and recorded as a batch server does.
Databases: PostgreSQL (``--pg URL``, schema ``batchjobs_runtime_cost`` reset at the start)
and SQLite (a temporary file).

Usage::

    python scripts/runtime_tasks_cost.py [--tasks 10000] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batchjobs import JobSpec, clock, store
from batchjobs.api import submit
from batchjobs.coordinator import claim, record, start_job
from batchjobs.execution import execute
from batchjobs.models import Task
from batchjobs.processes import ProcessContext, batchable
from batchjobs.settings import Settings
from batchjobs.status import Outcome

SCHEMA = "batchjobs_runtime_cost"


@batchable(name="cost.adds")
def adds(ctx: ProcessContext, n: int) -> None:
    for i in range(n):
        ctx.add_task(f"child {i}", "batchjobs.examples.noop")


def measure(settings: Settings, n: int) -> dict[str, float]:
    due = clock.now() + timedelta(days=1)
    warm = JobSpec("schema and imports", run_at=due)
    warm.add_task("t", "batchjobs.examples.noop")
    submit(warm, settings=settings)
    job = JobSpec("submitted", run_at=due)
    for i in range(n):
        job.add_task(f"task {i}", "batchjobs.examples.noop")
    began = time.perf_counter()
    submit(job, settings=settings)
    submitted = time.perf_counter() - began

    adder = JobSpec("added", run_at=due)
    adder.add_task("P", "cost.adds", kwargs={"n": n})
    job_id = submit(adder, settings=settings)
    with store.transaction(settings) as session:
        start_job(session, job_id, settings.queue_depth)
        task_id = session.query(Task.id).filter(Task.job_id == job_id).scalar()
    claimed = claim(task_id, job_id, "S", settings=settings)
    assert claimed is not None
    began = time.perf_counter()
    result = execute(claimed, "S", settings=settings)
    added = time.perf_counter() - began
    assert result.outcome is Outcome.ENDED and len(result.added) == n, result.error
    began = time.perf_counter()
    record(claimed.task_id, claimed.attempt, result.outcome, added=result.added,
           settings=settings)
    stored = time.perf_counter() - began
    return {"submit": submitted, "add_task": added, "store": stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    engine = create_engine(args.pg)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    with tempfile.TemporaryDirectory() as home:
        for name, url in (("postgresql", f"{args.pg}?options=-csearch_path%3D{SCHEMA}"),
                          ("sqlite", f"sqlite:///{home}/cost.db")):
            settings = Settings(database_url=url, broker_url="embedded://", home=Path(home))
            times = measure(settings, args.tasks)
            print(f"{name:<10} {args.tasks} tasks: submit {times['submit']:.2f} s; "
                  f"ctx.add_task {times['add_task']:.2f} s + stored with the success "
                  f"{times['store']:.2f} s = {times['add_task'] + times['store']:.2f} s")
            store.reset_engines()


if __name__ == "__main__":
    main()
