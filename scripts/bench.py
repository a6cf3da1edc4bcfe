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
    BenchError,
    Profiler,
    chain_job,
    cpu_s,
    hops,
    independent_job,
    layered_job,
    log,
    loopback_only,
    memory,
    run_raw,
    ts,
)

REDIS_URL = os.environ.get("BATCHJOBS_BENCH_REDIS", "redis://127.0.0.1:6379/13")
PG_URL = os.environ.get("BATCHJOBS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "batchjobs_bench"
SUBMIT_TARGET_S = 5.0

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
        if backend == "redis-pg" and not args.no_scale:
            res["scale"] = side.scale()
        res["duplicates_dropped"] = side.duplicates_dropped()
    finally:
        side.stop()


# -- report --------------------------------------------------------------------------------


def figures(backend: str, bj: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def get(d: dict[str, Any], *keys: str) -> Any:
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def add(figure: str, unit: str, b: Any, c: Any, *, ratio: Any = "auto",
            target: str | None = None, met: Callable[[float, float | None], bool] | None = None,
            label: str = "") -> None:
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
                    "label": label or figure})

    add("hop_median", "ms", get(bj, "hop", "median"), get(raw, "hop", "median"),
        target="<= 1.5x raw and < 10 ms", label="chain hop, median (attempt rows)",
        met=lambda b, r: r is not None and r <= 1.5 and b < 10)
    add("hop_median_process", "ms", get(bj, "hop_process", "median"), get(raw, "hop", "median"),
        target="<= 1.5x raw and < 10 ms", met=lambda b, r: r is not None and r <= 1.5 and b < 10,
        label="chain hop, median, process body to process body")
    add("hop_p99", "ms", get(bj, "hop", "p99"), get(raw, "hop", "p99"),
        label="chain hop, p99 (attempt rows)")
    add("throughput", "tasks/s", get(bj, "throughput", "tasks_per_s"),
        get(raw, "throughput", "tasks_per_s"), target=">= 0.7x raw (no result backend)",
        met=lambda b, r: r is not None and r >= 0.7, label="throughput vs raw, no result backend")
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
            target="<= 1.2x small", met=lambda b, r: r is not None and r <= 1.2,
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
    rows = [["figure", "batchjobs", "raw Celery", "ratio", "target"]]
    for f in figs:
        target = f["target"] or ""
        if f["met"] is not None:
            target += " (met)" if f["met"] else " (NOT met)"
        rows.append([f"{f['label']} [{f['unit']}]", fmt(f["batchjobs"]), fmt(f["celery"]),
                     fmt(f["ratio"]), target])
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["redis-pg", "embedded", "both"], default="both")
    p.add_argument("--workers", type=int, default=1, help="worker processes per side")
    p.add_argument("--concurrency", type=int, default=2, help="prefork pool size of each")
    p.add_argument("--chain", type=int, default=200)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--small", type=int, default=1000)
    p.add_argument("--large", type=int, default=100_000)
    p.add_argument("--layers", type=int, default=100)
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
    if args.workers < 1 or args.concurrency < 1 or min(args.chain, args.tasks, args.small,
                                                       args.large, args.layers) < 2:
        p.error("sizes must be >= 2, workers and concurrency >= 1")

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
            figs = figures(backend, bj, raw)
            if args.json:
                for f in figs:
                    print(json.dumps(f), flush=True)
            else:
                print_table(backend, args, figs)
                if bj.get("scale"):
                    print(f"\nscale details: {json.dumps(bj['scale'], default=str)}")
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
