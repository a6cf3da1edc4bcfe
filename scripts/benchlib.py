"""Helpers of ``scripts/bench.py``: worker processes and /proc readings, job shapes, hop
statistics, and the raw Celery side (``scripts/rawcelery.py`` run by plain Celery workers)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
NOOP = "batchjobs.examples.noop"


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def loopback_only(url: str) -> str:
    host = urlsplit(url.replace("+psycopg", "")).hostname or ""
    try:
        ok = ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise BenchError(f"refusing {host!r}: the benchmark only talks to 127.0.0.0/8")
    return url


# -- processes -----------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for t in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (t / "children").read_text().split()]
            except OSError:
                pass
    return out


def vm_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        for p in tree(pid):
            try:
                f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
    return total


def memory(pids: Sequence[int]) -> dict[str, float]:
    """Peak RSS (MB) of the worker main processes and of their pool processes."""
    mains = [vm_kb(p, "VmHWM") for p in pids]
    kids = [vm_kb(c, "VmHWM") for p in pids for c in tree(p)[1:]]
    return {"main_mb": max(mains, default=0) / 1024, "child_mb": max(kids, default=0) / 1024,
            "total_mb": (sum(mains) + sum(kids)) / 1024, "children": len(kids)}


class Profiler:
    """``py-spy record --subprocesses`` on worker trees during one phase (``--py-spy DIR``)."""

    def __init__(self, folder: str | None, name: str, pids: Sequence[int]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        if not folder or not shutil.which("py-spy"):
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        for pid in pids:
            self.procs.append(subprocess.Popen(
                ["py-spy", "record", "--subprocesses", "--nonblocking", "--format", "raw",
                 "--rate", "200", "--pid", str(pid), "--output",
                 str(Path(folder) / f"{name}-{pid}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class RawWorkers:
    """``celery -A rawcelery worker`` processes, stopped warm, then their process group killed."""

    def __init__(self, count: int, concurrency: int, env: dict[str, str], logs: Path, *,
                 defaults: bool = False) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = [logs / f"raw{k + 1}.log" for k in range(count)]
        # Celery's defaults: prefetch 4 per process, no task events (early ack: rawcelery)
        flags = [] if defaults else ["--prefetch-multiplier", "1", "--task-events"]
        for k in range(count):
            with open(self.logs[k], "ab") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "rawcelery", "worker", "--pool",
                     "prefork", "--concurrency", str(concurrency), *flags,
                     "-Q", "raw.bench", "--without-mingle", "--without-gossip",
                     "--loglevel", "INFO", "--hostname", f"raw{k + 1}-{os.getpid()}@%h"],
                    env=env, cwd=SCRIPTS, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check(self) -> None:
        for p, log in zip(self.procs, self.logs, strict=False):
            if p.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-15:]
                raise BenchError(f"raw Celery worker exited with code {p.returncode}:\n"
                                 + "\n".join(tail))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()


# -- jobs ----------------------------------------------------------------------------------


def chain_job(n: int, process: str = NOOP, kwargs: dict[str, Any] | None = None) -> Any:
    from batchjobs import JobSpec

    job, prev = JobSpec(f"bench chain {n}"), None
    for k in range(n):
        prev = job.add_task(f"T{k:06d}", process, kwargs=kwargs,
                            depends_on=[prev] if prev else [])
    return job


def independent_job(n: int, run_at: datetime | None = None) -> Any:
    from batchjobs import JobSpec

    job = JobSpec(f"bench independent {n}", run_at=run_at)
    for k in range(n):
        job.add_task(f"T{k:06d}", NOOP)
    return job


def layered_job(n: int, layers: int) -> Any:
    """``layers`` layers of ``n // layers`` tasks; task i of a layer after task i of the last."""
    from batchjobs import JobSpec

    layers = max(1, min(layers, n))
    width = max(1, n // layers)
    job, prev = JobSpec(f"bench layered {n}/{layers}"), []
    for layer in range(layers):
        prev = [job.add_task(f"L{layer:04d}.{i:06d}", NOOP, depends_on=[prev[i]] if prev else [])
                for i in range(width)]
    return job


def ts(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.timestamp()


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * pct // 100)) - 1]


def hops(pairs: dict[int, tuple[float, float | None]]) -> dict[str, float]:
    """``pairs[k] = (start_k, end_of_k-1)``: median and p99 of the hops, in ms."""
    gaps = [(start - prev) * 1000 for k, (start, prev) in sorted(pairs.items())
            if k > 0 and prev is not None]
    if not gaps:
        raise BenchError("no hop measured")
    return {"median": statistics.median(gaps), "p99": percentile(gaps, 99), "n": len(gaps)}


# -- raw Celery ----------------------------------------------------------------------------


def raw_broker(backend: str, home: Path, redis_url: str) -> tuple[str, dict[str, Any], str]:
    """Broker URL, transport options and result backend of the raw side of ``backend``."""
    if backend == "redis-pg":
        return redis_url, {"visibility_timeout": 3600}, redis_url
    from batchjobs.settings import Settings

    settings = Settings(database_url="sqlite://", broker_url="embedded://", home=home / "raw")
    opts = settings.broker_config()["broker_transport_options"]
    (home / "raw" / "results").mkdir(parents=True, exist_ok=True)
    return "embedded://", dict(opts), f"file://{home / 'raw' / 'results'}"  # type: ignore[arg-type]


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_lines(path: Path, n: int, workers: RawWorkers, stall: float) -> list[list[str]]:
    best, since = -1, time.monotonic()
    while True:
        seen = count_lines(path)
        if seen >= n:
            return [line.split() for line in path.read_text().splitlines()]
        if seen > best:
            best, since = seen, time.monotonic()
        workers.check()
        if time.monotonic() - since > stall:
            raise BenchError(f"raw Celery: {seen}/{n} tasks done, no progress for {stall}s")
        time.sleep(0.01)


def run_raw(args: argparse.Namespace, backend: str, home: Path, redis_url: str,
            res: dict[str, Any]) -> None:
    """Hop and throughput of plain Celery workers running ``scripts/rawcelery.py``: one set of
    workers without a result backend, then one with it. Fills ``res`` as the figures come."""
    import rawcelery
    from celery import chain

    url, opts, result_backend = raw_broker(backend, home, redis_url)
    sink = home / "raw-sink"
    sink.mkdir(exist_ok=True)
    client = rawcelery.make_app(url, opts)  # the workers decide whether results are stored
    n = args.tasks

    current = [client]   # the client of the variant running (Celery's defaults: its own)

    def publish(tag: str, count: int) -> None:
        app = current[0]
        with app.producer_or_acquire() as producer:
            for i in range(count):
                app.send_task("raw.noop", args=(tag, i), queue=rawcelery.QUEUE,
                                 producer=producer)

    def throughput(workers: RawWorkers, tag: str, n: int = n) -> dict[str, float]:
        cpu0 = cpu_s(workers.pids)
        spy = Profiler(args.py_spy, f"{backend}-{tag}", workers.pids)
        try:
            t0 = time.time()
            publish(tag, n)
            t1 = time.time()
            lines = wait_lines(sink / f"{tag}.log", n, workers, args.stall)
        finally:
            spy.stop()
        cpu = cpu_s(workers.pids) - cpu0
        first = min(float(s) for _, s, _ in lines)
        last = max(float(e) for _, _, e in lines)
        return {"tasks_per_s": n / (last - first), "cpu_ms_per_task": cpu * 1000 / n,
                "publish_ms_per_task": (t1 - t0) * 1000 / n}

    def hop(workers: RawWorkers, tag: str) -> dict[str, float]:
        m, app = args.chain, current[0]
        chain(app.signature("raw.hop", args=(None, tag, 0), queue=rawcelery.QUEUE),
              *[app.signature("raw.hop", args=(tag, i), queue=rawcelery.QUEUE)
                for i in range(1, m)]).apply_async()
        lines = wait_lines(sink / f"{tag}.log", m, workers, args.stall)
        return hops({int(i): (float(s), None if p == "None" else float(p))
                     for i, s, p in lines})

    # plain: batchjobs' Celery options; results: with a result backend; defaults: Celery's
    # own (early ack, prefetch 4, no events); wide: plain, --wide-servers workers
    # x --wide-threads on --wide-tasks tasks.
    for variant in ("plain", "results", "defaults", "wide"):
        env = dict(os.environ, RAW_BROKER_URL=url, RAW_TRANSPORT_OPTIONS=json.dumps(opts),
                   RAW_SINK=str(sink), RAW_RESULT_BACKEND=result_backend
                   if variant == "results" else "", RAW_DEFAULTS="1" if variant == "defaults"
                   else "", PYTHONPATH=os.pathsep.join([str(SCRIPTS), str(REPO)]))
        count, threads = ((args.wide_servers, args.wide_threads) if variant == "wide"
                          else (args.workers, args.concurrency))
        log(f"{backend}: starting {count} raw Celery worker(s) ({variant})")
        workers = RawWorkers(count, threads, env, home, defaults=variant == "defaults")
        current[0] = rawcelery.make_app(url, opts, defaults=True) \
            if variant == "defaults" else client
        try:
            warm = 4 * count * threads
            publish(f"warm-{variant}", warm)
            wait_lines(sink / f"warm-{variant}.log", warm, workers, max(args.stall, 60))
            if variant == "plain":
                res["hop"] = hop(workers, "hop")
                log(f"{backend}: raw Celery hop {res['hop']['median']:.2f} ms")
                res["throughput"] = done = throughput(workers, "tput")
                res["memory"] = memory(workers.pids)
            elif variant == "results":
                res["throughput_results"] = done = throughput(workers, "tput-results")
            elif variant == "defaults":
                res["hop_defaults"] = hop(workers, "hop-defaults")
                res["throughput_defaults"] = done = throughput(workers, "tput-defaults")
            else:
                res["wide"] = done = throughput(workers, "tput-wide", args.wide_tasks)
            log(f"{backend}: raw Celery ({variant}) {done['tasks_per_s']:.0f} tasks/s")
        finally:
            workers.stop()
    client.close()


class WaitSampler:
    """Samples PostgreSQL's ``pg_stat_activity`` every 20 ms in a thread while a phase runs:
    how many active client backends of the benchmark's database wait, and on what
    (``Lock/transactionid``, ``Lock/tuple``: a row another transaction holds)."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        import threading

        import psycopg

        self.conn = psycopg.connect(loopback_only(url).replace("postgresql+psycopg", "postgresql"),
                                    autocommit=True)
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        query = ("SELECT coalesce(wait_event_type || '/' || wait_event, 'running') FROM "
                 "pg_stat_activity WHERE datname = current_database() AND state = 'active' "
                 "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        while not self.stopping.wait(self.interval):
            rows = self.conn.execute(query).fetchall()
            self.samples += 1
            for (what,) in rows:
                self.counts[what] = self.counts.get(what, 0) + 1

    def stop(self) -> dict[str, Any]:
        """Per wait event, the share of active-backend samples (and the samples taken)."""
        self.stopping.set()
        self.thread.join(10)
        self.conn.close()
        active = sum(self.counts.values()) or 1
        locks = sum(n for what, n in self.counts.items() if what.startswith("Lock/"))
        return {"samples": self.samples, "active_per_sample": active / max(1, self.samples),
                "lock_share": locks / active,
                "events": {k: round(v / active, 4) for k, v in
                           sorted(self.counts.items(), key=lambda kv: -kv[1])}}
