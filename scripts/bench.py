#!/usr/bin/env python
"""Benchmark batchjobs against raw Celery doing the same no-op work, in one run.

Both sides use the same broker and database server, the same number of worker processes
(``--workers``, one prefork pool of ``--concurrency`` processes each) and Celery options
(JSON, late ack, prefetch 1, task events). The sides never run at the same time.

* hop: a chain of ``--chain`` no-op tasks, each after the previous one ended; the time from
  a parent's end to its dependent's start (batchjobs: attempt rows, stamped in the worker;
  raw Celery: ``celery.chain``, stamped in the task, see ``scripts/rawcelery.py``).
* throughput: ``--tasks`` independent no-op tasks, first start to last end; raw Celery
  without a result backend and with one (Redis db 13; ``file://`` on the embedded side).
* scale (redis-pg): wall time from submit to job end per task, ``--small`` vs ``--large``
  tasks, independent and in ``--layers`` layers (each task after one of the layer before);
  the time to submit the large job from the Python API and from a JSON/YAML file.
* memory (redis-pg): peak RSS (VmHWM) of each worker's main process and pool processes
  after the large jobs; database rows written per task.

Backends: ``redis-pg`` (Redis db 13, PostgreSQL schema ``batchjobs_bench``, both reset at
the start) and ``embedded`` (SQLite + ``embedded://`` in a temporary BATCHJOBS_HOME; hop and
throughput only). Every process started is stopped at the end, also on Ctrl-C or an error.

Usage::

    python scripts/bench.py [--backend redis-pg|embedded|both] [--workers 1] [--concurrency 2]
        [--chain 200] [--tasks 5000] [--small 1000] [--large 100000] [--layers 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from benchlib import (  # after the path above
    NOOP,
    BenchError,
    Profiler,
    WaitSampler,
    chain_job,
    cpu_s,
    hops,
    independent_job,
    layered_job,
    log,
    loopback_only,
    memory,
    percentile,
    run_raw,
    ts,
)

REDIS_URL = os.environ.get("BATCHJOBS_BENCH_REDIS", "redis://127.0.0.1:6379/13")
PG_URL = os.environ.get("BATCHJOBS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "batchjobs_bench"
SUBMIT_TARGET_S = 3.0

# -- backends ------------------------------------------------------------------------------


def prepare(backend: str, home: Path) -> dict[str, str]:
    """Reset the backend and return the environment that points at it."""
    env = {"BATCHJOBS_HOME": str(home)}
    if backend == "redis-pg":
        import redis
        from sqlalchemy import create_engine, text

        engine = create_engine(loopback_only(PG_URL))
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
        engine.dispose()
        redis.Redis.from_url(loopback_only(REDIS_URL)).flushdb()
        env["BATCHJOBS_DATABASE_URL"] = f"{PG_URL}?options=-csearch_path%3D{PG_SCHEMA}"
        env["BATCHJOBS_BROKER_URL"] = REDIS_URL
    return env


def activate(env: dict[str, str]) -> None:
    """Point this process (API, Celery app) at a backend, as tests/conftest.py does."""
    from batchjobs import store
    from batchjobs.app import configure

    for key in [k for k in os.environ if k.startswith("BATCHJOBS_")
                and not k.startswith("BATCHJOBS_BENCH_")]:
        del os.environ[key]  # defaults everywhere else (recovery delays, alerts, imports)
    os.environ.update(env)
    os.environ["PYTHONPATH"] = os.pathsep.join(  # servers import scripts/benchprocs.py
        filter(None, [str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH")]))
    os.environ["BATCHJOBS_IMPORTS"] = "benchprocs"  # processes come only from listed modules
    chain = os.environ.get("BATCHJOBS_BENCH_CHAIN_SECONDS")
    if chain:   # the chains' before/after: 0 runs every task by its own message
        os.environ["BATCHJOBS_CHAIN_SECONDS"] = chain
    configure()
    store.reset_engines()
    store.get_engine()


def drop_pg_schema() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
    engine.dispose()


# -- batchjobs side ------------------------------------------------------------------------


class BatchjobsSide:
    """Batch servers of this backend, and the jobs run on them."""

    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        from batchjobs.launch import ServerProcess, wait_until_ready

        self.args, self.home = args, home
        self.servers = []
        try:
            for k in range(args.workers):
                self.servers.append(ServerProcess(
                    f"Bench{k + 1}", groups=["default"], threads=args.concurrency,
                    env=dict(os.environ), log_path=home / f"Bench{k + 1}.log"))
            wait_until_ready(self.servers, timeout=90)
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.servers]

    def stop(self) -> None:
        from batchjobs.launch import stop_all

        stop_all(self.servers)

    def run(self, job: Any, timeout: float | None = None) -> tuple[int, float, float]:
        """Submit and wait; return (job id, submit start, submit end) in epoch seconds."""
        import batchjobs

        t0 = time.time()
        job_id = batchjobs.submit(job)
        t1 = time.time()
        deadline = time.monotonic() + (timeout or self.args.timeout)
        while True:
            final = batchjobs.wait(job_id, timeout=2)
            if final is not None:
                break
            for s in self.servers:
                if s.process.poll() is not None:
                    raise BenchError(f"batch server {s.name} died\n{s.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"job {job_id} not finished after {timeout or self.args.timeout}s")
        if final.value != "ended":
            raise BenchError(f"job {job_id} ended {final.value}")
        return job_id, t0, t1

    def job_times(self, job_id: int) -> dict[str, float]:
        """From the public API: the job's end, its first attempt start and last attempt end."""
        import batchjobs

        status = batchjobs.status(job_id)
        attempts = batchjobs.attempts(job_id)
        return {"ended_at": ts(status["ended_at"]), "tasks": len(status["tasks"]),
                "first_start": min(ts(a["started_at"]) for a in attempts),
                "last_end": max(ts(a["ended_at"]) for a in attempts), "attempts": len(attempts)}

    def rows(self, job_id: int) -> dict[str, int]:
        """Rows this job wrote, table by table (the tables a job owns, as far as they exist)."""
        from sqlalchemy import func, select

        from batchjobs import models, store

        task = models.Task
        with store.read_session() as session:
            def count(model: Any, *where: Any) -> int:
                return session.execute(select(func.count()).select_from(model)
                                       .where(*where)).scalar_one()
            out = {"jobs": count(models.Job, models.Job.id == job_id)}
            for name in ("JobRun", "Alert", "Task"):  # rows that point at the job
                if hasattr(models, name):
                    model = getattr(models, name)
                    out[model.__tablename__] = count(model, model.job_id == job_id)
            for model in (models.Condition, models.Attempt):  # rows that point at its tasks
                out[model.__tablename__] = count(model, model.task_id.in_(
                    select(task.id).where(task.job_id == job_id)))
            return out

    # -- phases ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        n = 4 * self.args.workers * self.args.concurrency
        self.run(independent_job(n), timeout=60)
        self.run(chain_job(3), timeout=60)

    def hop(self) -> dict[str, float]:
        import batchjobs

        job_id, _, _ = self.run(chain_job(self.args.chain))
        rows = {a["task"]: a for a in batchjobs.attempts(job_id)}
        names = sorted(rows)
        pairs = {k: (ts(rows[n]["started_at"]),
                     ts(rows[names[k - 1]]["ended_at"]) if k else None)
                 for k, n in enumerate(names)}
        return hops(pairs)

    def hop_process(self) -> dict[str, float]:
        """The same chain running ``benchprocs.stamp``: from the end of one process body to
        the start of the next (what the raw Celery side measures)."""
        sink = self.home / "bj-sink.log"
        job = chain_job(self.args.chain, process="benchprocs.stamp", kwargs={"sink": str(sink)})
        self.run(job)
        rows = {name: (float(s), float(e)) for name, s, e in
                (line.split() for line in sink.read_text().splitlines())}
        names = sorted(rows)
        return hops({k: (rows[n][0], rows[names[k - 1]][1] if k else None)
                     for k, n in enumerate(names)})

    def throughput(self) -> dict[str, float]:
        job = independent_job(self.args.tasks)
        cpu0 = cpu_s(self.pids)
        spy = Profiler(self.args.py_spy, f"{self.home.name}-batchjobs-throughput", self.pids)
        try:
            job_id, t0, t1 = self.run(job)
        finally:
            spy.stop()
        cpu = cpu_s(self.pids) - cpu0
        t = self.job_times(job_id)
        return {"tasks_per_s": t["attempts"] / (t["last_end"] - t["first_start"]),
                "cpu_ms_per_task": cpu * 1000 / t["attempts"],
                "submit_ms_per_task": (t1 - t0) * 1000 / t["attempts"]}

    def scale(self) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {}
        for shape, make in (("independent", independent_job),
                            ("layered", lambda n: layered_job(n, a.layers))):
            for size in ("small", "large"):
                n = getattr(a, size)
                b0 = time.perf_counter()
                job = make(n)
                build = time.perf_counter() - b0
                log(f"batchjobs {shape} {size}: {len(job.tasks)} tasks")
                spy = Profiler(a.py_spy if size == "large" else None,
                               f"{self.home.name}-batchjobs-{shape}-large", self.pids)
                try:
                    job_id, t0, t1 = self.run(job)
                finally:
                    spy.stop()
                t = self.job_times(job_id)
                out[f"{shape}_{size}"] = {
                    "tasks": t["tasks"], "ms_per_task": (t["ended_at"] - t0) * 1000 / t["tasks"],
                    "build_s": build, "submit_s": t1 - t0}
                if size == "large":
                    rows = self.rows(job_id)
                    out[f"{shape}_rows"] = rows
                    out[f"{shape}_rows_per_task"] = sum(rows.values()) / rows["tasks"]
        out["memory"] = memory(self.pids)
        out["submit"] = self.submit_times()
        return out

    def submit_times(self) -> dict[str, float]:
        """The large independent job stored, not started (run_at in a month): from the Python
        API and from a file. Same work as ``submit(hold=True)`` without depending on it."""
        import batchjobs

        n = self.args.large
        later = datetime.now(UTC) + timedelta(days=30)
        t0 = time.perf_counter()
        job = independent_job(n, run_at=later)
        t1 = time.perf_counter()
        batchjobs.submit(job)
        t2 = time.perf_counter()
        path = self.home / f"large.{self.args.file_format}"
        with open(path, "w") as f:
            if self.args.file_format == "json":
                json.dump(job.to_dict(), f)
            else:
                import yaml

                yaml.safe_dump(job.to_dict(), f, sort_keys=False)
        t3 = time.perf_counter()
        loaded = batchjobs.load_job_file(path)
        t4 = time.perf_counter()
        batchjobs.submit(loaded)
        t5 = time.perf_counter()
        return {"api_s": t2 - t0, "api_build_s": t1 - t0, "file_s": t5 - t3,
                "file_load_s": t4 - t3, "file_mb": path.stat().st_size / 1e6}

    # -- issue 16: fan-out, many jobs, run-at lag, many processes --------------------------

    def submit_all(self, jobs: list[Any]) -> tuple[list[int], float, float]:
        """Submit ``jobs`` one after another and wait for every one; (ids, t0, t1)."""
        import batchjobs

        t0 = time.time()
        ids = [batchjobs.submit(job) for job in jobs]
        t1 = time.time()
        deadline = time.monotonic() + self.args.timeout
        for job_id in ids:
            while batchjobs.wait(job_id, timeout=2) is None:
                for s in self.servers:
                    if s.process.poll() is not None:
                        raise BenchError(f"batch server {s.name} died\n{s.log_tail()}")
                if time.monotonic() > deadline:
                    raise BenchError(f"job {job_id} not finished after {self.args.timeout}s")
        return ids, t0, t1

    def span(self, ids: list[int]) -> dict[str, float]:
        """First attempt start, last attempt end and attempts of these jobs (one query)."""
        from sqlalchemy import func, select

        from batchjobs import models, store

        a, t = models.Attempt, models.Task
        with store.read_session() as session:
            first, last, count = session.execute(
                select(func.min(a.started_at), func.max(a.ended_at), func.count())
                .join(t, t.id == a.task_id).where(t.job_id.in_(ids))).one()
        return {"first_start": ts(first), "last_end": ts(last), "attempts": int(count)}

    def fanout(self) -> dict[str, Any]:
        """One job of N independent tasks per size: tasks/s from the first start to the last
        end, and from the start of the submit to the last end."""
        out: dict[str, Any] = {}
        for n in self.args.fanout:
            log(f"batchjobs fan-out {n}")
            ids, t0, _ = self.submit_all([independent_job(n)])
            t = self.span(ids)
            out[str(n)] = {"tasks": n,
                           "tasks_per_s": t["attempts"] / (t["last_end"] - t["first_start"]),
                           "submit_to_end_per_s": t["attempts"] / (t["last_end"] - t0)}
        return out

    def many_jobs(self) -> dict[str, Any]:
        """``--many-jobs`` jobs of ``--many-tasks`` independent tasks submitted together,
        against one job of as many tasks; and jobs of JOB 1's shape (no-op bodies)."""
        a = self.args
        total = a.many_jobs * a.many_tasks
        log(f"batchjobs one job of {total} tasks, then {a.many_jobs} x {a.many_tasks}")
        ids, t0, _ = self.submit_all([independent_job(total)])
        one = self.span(ids)
        ids, m0, m1 = self.submit_all([independent_job(a.many_tasks)
                                       for _ in range(a.many_jobs)])
        many = self.span(ids)
        from batchjobs.examples import job1

        log(f"batchjobs {a.job1_jobs} jobs of JOB 1's shape")
        ids, j0, _ = self.submit_all([job1(seconds=0) for _ in range(a.job1_jobs)])
        shape = self.span(ids)
        one_rate = one["attempts"] / (one["last_end"] - one["first_start"])
        return {"one_tasks_per_s": one_rate,
                "many_tasks_per_s": many["attempts"] / (many["last_end"] - many["first_start"]),
                "many_submit_s": m1 - m0,
                "job1_ms_per_job": (shape["last_end"] - shape["first_start"]) * 1000
                / a.job1_jobs,
                "job1_attempts_per_job": shape["attempts"] / a.job1_jobs,
                "task_ms": 1000 / one_rate}

    def run_at_lag(self) -> dict[str, Any]:
        """Jobs due shortly, an ``every: 1s`` recurrence beside them: first task start -
        run_at (a run's scheduled instant), in ms. One job is submitted every 0.2 s, each
        due 0.3-0.7 s after its submit begins (before the next housekeeper tick, often),
        far below the servers' throughput: no task waits for a free process."""
        import batchjobs
        from batchjobs import JobSpec

        a = self.args
        rec = JobSpec("bench every 1s", recurrence={"every": "1s", "end_after": a.runat_runs},
                      run_at=datetime.now(UTC) + timedelta(seconds=1))
        rec.add_task("T", NOOP)
        every_id = batchjobs.submit(rec)
        due, ids = [], []
        for k in range(a.runat_jobs):
            run_at = datetime.now(UTC) + timedelta(seconds=0.3 + 0.1 * (k % 5))
            job = JobSpec(f"bench due {k}", run_at=run_at)
            job.add_task("T", NOOP)
            ids.append(batchjobs.submit(job))
            due.append(run_at)
            time.sleep(0.2)   # pacing the submits, not waiting for anything
        deadline = time.monotonic() + self.args.timeout
        for job_id in [*ids, every_id]:
            while batchjobs.wait(job_id, timeout=2) is None:
                if time.monotonic() > deadline:
                    raise BenchError(f"job {job_id} not finished after {self.args.timeout}s")
        lags, wake = [], []   # wake: the run's start (the housekeeper's) - run_at
        for job_id, run_at in zip(ids, due, strict=True):
            starts = [ts(x["started_at"]) for x in batchjobs.attempts(job_id)]
            lags.append((min(starts) - run_at.timestamp()) * 1000)
            wake.append((ts(batchjobs.history(job_id)[0]["started_at"])
                         - run_at.timestamp()) * 1000)
        every = []
        for r in batchjobs.history(every_id):
            starts = [ts(x["started_at"]) for x in batchjobs.attempts(every_id)
                      if x["run"] == r["number"]]
            every.append((min(starts) - ts(r["scheduled_at"])) * 1000)
            wake.append((ts(r["started_at"]) - ts(r["scheduled_at"])) * 1000)
        both = lags + every
        return {"median": statistics.median(both), "p95": percentile(both, 95),
                "max": max(both), "n": len(both), "due_jobs": lags, "every_1s": every,
                "wake_median": statistics.median(wake), "wake_p95": percentile(wake, 95)}

    def wide(self) -> dict[str, Any]:
        """``--wide-servers`` servers x ``--wide-threads`` threads on one job of
        ``--wide-tasks`` tasks (the extra servers started for it, stopped after), with
        PostgreSQL's wait events sampled meanwhile."""
        from batchjobs.launch import ServerProcess, stop_all, wait_until_ready

        a = self.args
        extra = []
        try:
            for k in range(len(self.servers), a.wide_servers):
                extra.append(ServerProcess(
                    f"Bench{k + 1}", groups=["default"], threads=a.wide_threads,
                    env=dict(os.environ), log_path=self.home / f"Bench{k + 1}.log"))
            wait_until_ready(extra, timeout=120)
            self.set_threads(a.wide_threads)
            self.run(independent_job(4 * a.wide_servers * a.wide_threads), timeout=120)
            log(f"batchjobs {a.wide_servers} x {a.wide_threads} on {a.wide_tasks} tasks")
            sampler = WaitSampler(PG_URL) if self.home.name == "redis-pg" else None
            try:
                ids, _, _ = self.submit_all([independent_job(a.wide_tasks)])
            finally:
                waits = sampler.stop() if sampler else {}
            t = self.span(ids)
            return {"tasks_per_s": t["attempts"] / (t["last_end"] - t["first_start"]),
                    "waits": waits}
        finally:
            stop_all(extra)
            self.set_threads(a.concurrency)

    def set_threads(self, threads: int) -> None:
        """The first servers' records at ``threads`` (their controllers apply it)."""
        if threads == self.args.concurrency:
            return
        from batchjobs.servers import set_server

        for server in self.servers:
            set_server(server.name, groups=["default"], threads=threads)
        time.sleep(2)   # a few controller ticks; the warm-up job below runs on it anyway

    def duplicates_dropped(self) -> int:
        return sum(s.log_path.read_text(errors="replace").count("message dropped")
                   for s in self.servers if s.log_path and s.log_path.exists())


def run_batchjobs(args: argparse.Namespace, backend: str, home: Path,
                  res: dict[str, Any]) -> None:
    """Fill ``res`` as the figures come (a failure keeps what was measured)."""
    log(f"{backend}: starting {args.workers} batch server(s)")
    side = BatchjobsSide(args, home)
    try:
        side.warm_up()
        res["hop"] = side.hop()
        res["hop_process"] = side.hop_process()
        log(f"{backend}: batchjobs hop {res['hop']['median']:.2f} ms (attempt rows), "
            f"{res['hop_process']['median']:.2f} ms (process bodies)")
        res["throughput"] = side.throughput()
        log(f"{backend}: batchjobs {res['throughput']['tasks_per_s']:.0f} tasks/s")
        res["run_at"] = side.run_at_lag()
        log(f"{backend}: run-at lag median {res['run_at']['median']:.1f} ms, "
            f"p95 {res['run_at']['p95']:.1f} ms (the housekeeper's start of the run: "
            f"{res['run_at']['wake_median']:.1f}, {res['run_at']['wake_p95']:.1f} ms)")
        res["fanout"] = side.fanout()
        res["many"] = side.many_jobs()
        log(f"{backend}: many jobs {res['many']['many_tasks_per_s']:.0f} vs one job "
            f"{res['many']['one_tasks_per_s']:.0f} tasks/s")
        res["wide"] = side.wide()
        log(f"{backend}: {args.wide_servers} x {args.wide_threads}: "
            f"{res['wide']['tasks_per_s']:.0f} tasks/s")
        if backend == "redis-pg" and not args.no_scale:
            res["scale"] = side.scale()
        res["duplicates_dropped"] = side.duplicates_dropped()
    finally:
        side.stop()


# -- report --------------------------------------------------------------------------------


def figures(backend: str, bj: dict[str, Any], raw: dict[str, Any],
            args: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def get(d: dict[str, Any], *keys: str) -> Any:
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def add(figure: str, unit: str, b: Any, c: Any, *, ratio: Any = "auto",
            target: str | None = None, met: Callable[[float, float | None], bool] | None = None,
            label: str = "", defaults: Any = None) -> None:
        if ratio == "auto":
            ratio = b / c if b is not None and c else None
        ok = None
        if met is not None and b is not None:
            try:
                ok = bool(met(b, ratio))
            except TypeError:
                ok = None
        out.append({"backend": backend, "figure": figure, "unit": unit, "batchjobs": b,
                    "celery": c, "ratio": ratio, "target": target, "met": ok,
                    "label": label or figure, "celery_defaults": defaults,
                    "ratio_defaults": b / defaults if b is not None and defaults else None})

    add("hop_median", "ms", get(bj, "hop", "median"), get(raw, "hop", "median"),
        target="<= 1.1x raw", label="chain hop, median (attempt rows)",
        met=lambda b, r: r is not None and r <= 1.1,
        defaults=get(raw, "hop_defaults", "median"))
    add("hop_median_process", "ms", get(bj, "hop_process", "median"), get(raw, "hop", "median"),
        target="<= 1.5x raw and < 10 ms", met=lambda b, r: r is not None and r <= 1.5 and b < 10,
        label="chain hop, median, process body to process body")
    add("hop_p99", "ms", get(bj, "hop", "p99"), get(raw, "hop", "p99"),
        target="<= 1.5x raw", met=lambda b, r: r is not None and r <= 1.5,
        label="chain hop, p99 (attempt rows)", defaults=get(raw, "hop_defaults", "p99"))
    add("throughput", "tasks/s", get(bj, "throughput", "tasks_per_s"),
        get(raw, "throughput", "tasks_per_s"), target=">= 0.7x raw (no result backend)",
        met=lambda b, r: r is not None and r >= 0.7, label="throughput vs raw, no result backend",
        defaults=get(raw, "throughput_defaults", "tasks_per_s"))
    add("run_at_lag_median", "ms", get(bj, "run_at", "median"), None, ratio=None,
        label="run-at lag, median (first task start - run_at; due jobs and every: 1s)")
    add("run_at_lag_p95", "ms", get(bj, "run_at", "p95"), None, ratio=None,
        target="<= 100 ms", met=lambda b, _r: b <= 100, label="run-at lag, p95")
    add("run_at_wake_p95", "ms", get(bj, "run_at", "wake_p95"), None, ratio=None,
        label="  of which the housekeeper's start of the job (job run start - run_at), p95")
    for size, fan in sorted((get(bj, "fanout") or {}).items(), key=lambda kv: int(kv[0])):
        add(f"fanout_{size}", "tasks/s", fan["tasks_per_s"],
            get(raw, "throughput", "tasks_per_s"), label=f"fan-out {size} tasks, first start "
            "to last end (raw: its throughput run)",
            defaults=get(raw, "throughput_defaults", "tasks_per_s"))
        add(f"fanout_{size}_from_submit", "tasks/s", fan["submit_to_end_per_s"], None,
            ratio=None, label=f"fan-out {size} tasks, submit to last end")
    many = get(bj, "many")
    if many:
        add("many_jobs", "tasks/s", many["many_tasks_per_s"], None,
            ratio=many["many_tasks_per_s"] / many["one_tasks_per_s"],
            target=">= 0.9x one job", met=lambda b, r: r is not None and r >= 0.9,
            label=f"{args.many_jobs} jobs x {args.many_tasks} tasks submitted together "
                  f"(ratio: / one job of {args.many_jobs * args.many_tasks}, "
                  f"{many['one_tasks_per_s']:.0f} tasks/s)")
        add("job1_shape", "ms/job", many["job1_ms_per_job"], None,
            ratio=many["job1_ms_per_job"] / (7 * many["task_ms"]),
            label=f"{args.job1_jobs} jobs of JOB 1's shape, time per job "
                  "(ratio: / 7 tasks of the one job)")
    add("wide_throughput", "tasks/s", get(bj, "wide", "tasks_per_s"),
        get(raw, "wide", "tasks_per_s"),
        label=f"{args.wide_servers} servers x {args.wide_threads} threads, one job of "
              f"{args.wide_tasks} tasks")
    if get(bj, "wide", "waits", "samples"):
        add("wide_lock_waits", "%", 100 * get(bj, "wide", "waits", "lock_share"), None,
            ratio=None, label="  its PostgreSQL backends waiting on a lock (share of "
                              "active-backend samples)")
    add("throughput_result_backend", "tasks/s", get(bj, "throughput", "tasks_per_s"),
        get(raw, "throughput_results", "tasks_per_s"),
        label="throughput vs raw with result backend")
    add("publish_per_task", "ms", get(bj, "throughput", "submit_ms_per_task"),
        get(raw, "throughput", "publish_ms_per_task"),
        label="submit / publish time per task (throughput job)")
    add("worker_cpu_per_task", "ms", get(bj, "throughput", "cpu_ms_per_task"),
        get(raw, "throughput", "cpu_ms_per_task"),
        label="worker CPU per task (throughput run, no result backend)")
    sc = bj.get("scale")
    if sc is None:
        return out
    for shape in ("independent", "layered"):
        small = get(sc, f"{shape}_small", "ms_per_task")
        large = get(sc, f"{shape}_large", "ms_per_task")
        add(f"overhead_small_{shape}", "ms/task", small, None, ratio=None,
            label=f"per-task overhead, {shape}, {get(sc, f'{shape}_small', 'tasks')} tasks")
        add(f"overhead_large_{shape}", "ms/task", large, None,
            ratio=large / small if large is not None and small else None,
            target="<= 1.1x small", met=lambda b, r: r is not None and r <= 1.1,
            label=f"per-task overhead, {shape}, {get(sc, f'{shape}_large', 'tasks')} tasks "
                  "(ratio: large/small)")
    def below(b: float, _ratio: float | None) -> bool:
        return b <= SUBMIT_TARGET_S

    add("submit_large_api", "s", get(sc, "submit", "api_s"), None, ratio=None,
        target=f"<= {SUBMIT_TARGET_S:g} s", met=below,
        label="submit large job, Python API (build + submit, not started)")
    add("submit_large_file", "s", get(sc, "submit", "file_s"), None, ratio=None,
        target=f"<= {SUBMIT_TARGET_S:g} s", met=below,
        label="submit large job, from file (load + submit, not started)")
    add("submit_large_started", "s", get(sc, "independent_large", "submit_s"), None, ratio=None,
        target=f"<= {SUBMIT_TARGET_S:g} s", met=below,
        label="submit large job, started (store + publish every root)")
    add("rss_worker_main", "MB", get(sc, "memory", "main_mb"), get(raw, "memory", "main_mb"),
        label="peak RSS, worker main process (raw: after its throughput run)")
    add("rss_pool_process", "MB", get(sc, "memory", "child_mb"), get(raw, "memory", "child_mb"),
        label="peak RSS, largest pool process (coordination runs here)")
    add("rss_coordinator", "MB", 0.0, 0.0, ratio=None,
        label="coordinator process: none started; coordination runs in the pool processes")
    for shape in ("independent", "layered"):
        add(f"db_rows_per_task_{shape}", "rows", get(sc, f"{shape}_rows_per_task"), None,
            ratio=None, label=f"database rows per task, large {shape} job")
    return out


#: Sizes of the phases: the full run, and --quick.
SIZES_HELP = {
    "chain": "tasks in the hop chain", "tasks": "independent tasks of the throughput job",
    "small": "tasks of the small scale jobs", "large": "tasks of the large scale jobs",
    "layers": "layers of the layered scale jobs",
    "fanout": "comma-separated sizes of the fan-out jobs",
    "many-jobs": "jobs submitted together in the many-jobs figure",
    "many-tasks": "independent tasks of each of them",
    "job1-jobs": "jobs of JOB 1's shape submitted together",
    "runat-jobs": "jobs due shortly in the run-at figure",
    "runat-runs": "runs of its every: 1s recurrence",
    "wide-servers": "batch servers (raw: workers) of the many-processes figure",
    "wide-threads": "threads (raw: prefork processes) of each",
    "wide-tasks": "tasks of its one job"}
FULL: dict[str, Any] = {
    "chain": 200, "tasks": 5000, "small": 1000, "large": 100_000, "layers": 100,
    "fanout": [5000, 50_000], "many-jobs": 500, "many-tasks": 20, "job1-jobs": 100,
    "runat-jobs": 40, "runat-runs": 5, "wide-servers": 4, "wide-threads": 2,
    "wide-tasks": 20_000}
QUICK: dict[str, Any] = {
    "chain": 50, "tasks": 1000, "small": 500, "large": 10_000, "layers": 50,
    "fanout": [1000, 5000], "many-jobs": 50, "many-tasks": 20, "job1-jobs": 20,
    "runat-jobs": 20, "runat-runs": 3, "wide-servers": 4, "wide-threads": 2,
    "wide-tasks": 2000}


def _sizes(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated task counts, not {text!r}") from None


def fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}"
    return str(v)


def print_table(backend: str, args: argparse.Namespace, figs: list[dict[str, Any]]) -> None:
    sizes = f"chain {args.chain}, tasks {args.tasks}"
    if any(f["figure"].startswith("overhead_") for f in figs):
        sizes += f", small {args.small}, large {args.large}, layers {args.layers}"
    print(f"\n{backend}: {args.workers} worker(s) x prefork {args.concurrency}; {sizes}")
    rows = [["figure", "batchjobs", "raw Celery", "ratio", "target", "raw, Celery defaults",
             "ratio"]]
    for f in figs:
        target = f["target"] or ""
        if f["met"] is not None:
            target += " (met)" if f["met"] else " (NOT met)"
        rows.append([f"{f['label']} [{f['unit']}]", fmt(f["batchjobs"]), fmt(f["celery"]),
                     fmt(f["ratio"]), target, fmt(f["celery_defaults"]),
                     fmt(f["ratio_defaults"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["redis-pg", "embedded", "both"], default="both")
    p.add_argument("--workers", type=int, default=1, help="worker processes per side")
    p.add_argument("--concurrency", type=int, default=2, help="prefork pool size of each")
    p.add_argument("--quick", action="store_true", help="smaller sizes for a short run "
                   "(every size not given on the command line)")
    for name, help_ in SIZES_HELP.items():
        p.add_argument(f"--{name}", type=_sizes if name == "fanout" else int, default=None,
                       help=f"{help_} (default {FULL[name]}; --quick: {QUICK[name]})")
    p.add_argument("--no-scale", action="store_true", help="skip scale and memory")
    p.add_argument("--file-format", choices=["json", "yaml"], default="json")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one job may take")
    p.add_argument("--stall", type=float, default=60, help="raw Celery: give up after this "
                   "many seconds without progress")
    p.add_argument("--py-spy", metavar="DIR", help="py-spy record the worker trees during the "
                   "throughput and large runs (collapsed stacks, one file per run, in DIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--json", action="store_true", help="one JSON object per figure per line")
    args = p.parse_args(argv)
    for name in SIZES_HELP:
        key = name.replace("-", "_")
        if getattr(args, key) is None:
            setattr(args, key, (QUICK if args.quick else FULL)[name])
    if args.workers < 1 or args.concurrency < 1 or min(
            args.chain, args.tasks, args.small, args.large, args.layers, *args.fanout,
            args.many_tasks, args.wide_tasks) < 2 or min(
            args.many_jobs, args.job1_jobs, args.runat_jobs, args.runat_runs,
            args.wide_servers, args.wide_threads) < 1:
        p.error("sizes must be >= 2 (counts of jobs, runs, servers, threads >= 1), "
                "workers and concurrency >= 1")

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with "&"
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    root = Path(tempfile.mkdtemp(prefix="batchjobs-bench-"))
    saved = dict(os.environ)
    failed = False
    try:
        for backend in (["redis-pg", "embedded"] if args.backend == "both" else [args.backend]):
            home = root / backend
            home.mkdir()
            bj: dict[str, Any] = {}
            raw: dict[str, Any] = {}
            try:
                activate(prepare(backend, home))
                run_batchjobs(args, backend, home, bj)
                run_raw(args, backend, home, REDIS_URL, raw)
            except Exception as exc:  # noqa: BLE001 - report what was measured, then fail
                failed = True
                log(f"{backend}: FAILED: {type(exc).__name__}: {exc}")
            figs = figures(backend, bj, raw, args)
            if args.json:
                for f in figs:
                    print(json.dumps(f), flush=True)
            else:
                print_table(backend, args, figs)
                if bj.get("scale"):
                    print(f"\nscale details: {json.dumps(bj['scale'], default=str)}")
                for key in ("run_at", "wide", "many"):
                    if bj.get(key):
                        print(f"{key} details: {json.dumps(bj[key], default=str)}")
                print(f"duplicate messages dropped by batch servers: "
                      f"{bj.get('duplicates_dropped')}", flush=True)
    finally:
        from batchjobs import store

        store.reset_engines()
        os.environ.clear()
        os.environ.update(saved)
        if args.backend != "embedded" and not args.keep:
            try:
                drop_pg_schema()
            except Exception as exc:  # noqa: BLE001 - best effort
                log(f"could not drop schema {PG_SCHEMA}: {exc}")
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every process started was stopped")
        sys.exit(130)
