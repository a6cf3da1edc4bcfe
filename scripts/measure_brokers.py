#!/usr/bin/env python
"""Measure candidate Celery brokers for the embedded (serverless) default.

Raw Celery only: the Celery app below is written into a temporary directory,
one real worker is started per candidate (prefork, concurrency 2, prefetch
multiplier 1, ``-O fair``, late acks, JSON, no results), and for each
candidate the script measures

a. throughput: N no-op tasks published from this process; each task writes a
   small file (named by its index, holding its completion time) into a
   results folder.  tasks/s runs from the first publish to the last
   completion; publish/s is the publish loop alone;
b. hop latency: a chain of M tasks, each publishing the next one itself from
   inside the worker; a hop is (start of task k+1) - (end of task k), where
   "end" is taken just before the task publishes its successor;
c. stability: whether the worker is still alive at the end and how many
   messages were lost (tasks that never completed before the deadline or a
   stall).

Candidates: kombu ``filesystem://`` (polling 0.005 s and 0.01 s), our
``embedded://`` transport (batchjobs.broker, polling 0.005 s), kombu's
SQLAlchemy transport on SQLite (polling 0.005 s), and as references ``redis://127.0.0.1``
db 13 and RabbitMQ (``BATCHJOBS_BENCH_AMQP``, default the local broker's default vhost).
Only ``batchjobs.broker`` is imported from batchjobs.

kombu's SQLAlchemy transport passes every ``broker_transport_options`` key to
``sqlalchemy.create_engine()``, so ``{"polling_interval": 0.005}`` there fails
with a TypeError; the app therefore sets
``kombu.transport.sqlalchemy.Transport.polling_interval`` instead (the default
would be 1 s, which makes every full-prefetch pause last a second).

Usage::

    python scripts/measure_brokers.py [--tasks 2000] [--hops 100] [--json]
                                      [--only filesystem-0.005,redis]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = os.environ.get("BATCHJOBS_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
APP_MODULE = "bench_app"

#: The Celery app the workers run; configured from BENCH_* environment variables.
APP_SOURCE = '''\
"""Benchmark Celery app written by scripts/measure_brokers.py (raw Celery)."""
import json
import os
import time

import batchjobs.broker

batchjobs.broker.register()  # only to make embedded:// resolvable

from celery import Celery

if os.environ.get("BENCH_SQLA_POLLING"):
    # kombu's SQLAlchemy transport hands every broker_transport_option to
    # create_engine(), so polling_interval cannot go there: set the class default.
    from kombu.transport import sqlalchemy as _sqla

    _sqla.Transport.polling_interval = float(os.environ["BENCH_SQLA_POLLING"])

RESULTS = os.environ["BENCH_RESULTS"]
TMP = os.path.join(RESULTS, "_tmp")

app = Celery("bench_app")
app.conf.update(
    broker_url=os.environ["BENCH_BROKER_URL"],
    broker_transport_options=json.loads(os.environ.get("BENCH_TRANSPORT_OPTIONS") or "{}"),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="bench",
)


def _write(run, name, text):
    """Write RESULTS/run/name atomically, so a reader never sees half a file."""
    tmp = os.path.join(TMP, f"{run}.{name}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(RESULTS, run, name))


@app.task(name="bench.probe")
def probe(run, name):
    _write(run, name, repr(time.time()))


@app.task(name="bench.noop")
def noop(run, i):
    _write(run, str(i), repr(time.time()))


@app.task(name="bench.hop")
def hop(run, k, m):
    start = time.time()
    end = time.time()  # a no-op task: its work ends here, then it publishes the next hop
    if k + 1 < m:
        hop.apply_async((run, k + 1, m))
    _write(run, str(k), f"{start!r} {end!r}")
'''


@dataclass
class Candidate:
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    #: polling interval set on kombu's sqlalchemy Transport class (see APP_SOURCE)
    sqla_polling: float | None = None


@dataclass
class Result:
    transport: str
    url: str
    ready_s: float | None = None
    tasks: int = 0
    completed: int = 0
    tasks_per_s: float | None = None
    publish_per_s: float | None = None
    hops: int = 0
    hops_completed: int = 0
    hop_median_ms: float | None = None
    hop_p90_ms: float | None = None
    hop_max_ms: float | None = None
    #: published tasks (throughput + hop chain) that never completed; None if nothing ran
    lost: int | None = None
    #: message files still in the queue folder at the end (file transports only)
    queue_left: int | None = None
    worker_alive: bool = False
    worker_exit_code: int | None = None
    worker_cpu_s: float | None = None
    worker_errors: list[str] = field(default_factory=list)
    error: str | None = None


class Bench:
    """Owns the temporary directory and the worker processes; cleans both up."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="measure_brokers-"))
        (self.root / "app").mkdir()
        (self.root / "app" / f"{APP_MODULE}.py").write_text(APP_SOURCE)
        self.workers: list[subprocess.Popen] = []

    # -- candidates -------------------------------------------------------

    def candidates(self) -> list[Candidate]:
        def fs_options(tag: str, interval: float, tmp: bool = False) -> dict[str, Any]:
            base = self.root / "brokers" / tag
            folders = {"data_folder_in": base / "queue", "data_folder_out": base / "queue",
                       "control_folder": base / "control", "processed_folder": base / "processed"}
            if tmp:
                folders["tmp_folder"] = base / "tmp"
            for folder in folders.values():
                folder.mkdir(parents=True, exist_ok=True)
            opts: dict[str, Any] = {k: str(v) for k, v in folders.items()}
            opts.update(store_processed=False, polling_interval=interval)
            return opts

        sqla_dir = self.root / "brokers" / "sqla"
        sqla_dir.mkdir(parents=True, exist_ok=True)
        all_candidates = [
            Candidate("filesystem-0.005", "filesystem://", fs_options("fs005", 0.005)),
            Candidate("filesystem-0.01", "filesystem://", fs_options("fs010", 0.01)),
            Candidate("embedded-0.005", "embedded://", fs_options("embedded", 0.005, tmp=True)),
            # broker_transport_options={"polling_interval": ...} makes kombu's sqla
            # transport fail (TypeError from create_engine), hence sqla_polling.
            Candidate("sqla-sqlite-0.005", f"sqla+sqlite:///{sqla_dir / 'broker.db'}", {},
                      sqla_polling=0.005),
            Candidate("redis", REDIS_URL, {}),
            Candidate("rabbitmq", AMQP_URL, {}),
        ]
        if self.args.only:
            wanted = {w.strip() for w in self.args.only.split(",") if w.strip()}
            all_candidates = [c for c in all_candidates
                              if c.name in wanted or c.name.split("-")[0] in wanted]
        return all_candidates

    # -- processes --------------------------------------------------------

    def env_for(self, cand: Candidate, results: Path) -> dict[str, str]:
        env = dict(os.environ)
        app_dir = str(self.root / "app")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [app_dir, env.get("PYTHONPATH")]))
        env["BENCH_BROKER_URL"] = cand.url
        env["BENCH_TRANSPORT_OPTIONS"] = json.dumps(cand.options)
        env["BENCH_RESULTS"] = str(results)
        env.pop("BENCH_SQLA_POLLING", None)
        if cand.sqla_polling is not None:
            env["BENCH_SQLA_POLLING"] = str(cand.sqla_polling)
        return env

    def start_worker(self, cand: Candidate, results: Path, log: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", APP_MODULE, "worker",
               "--pool", "prefork", "--concurrency", "2", "--prefetch-multiplier", "1",
               "-O", "fair", "--without-mingle", "--without-gossip", "-l", "WARNING",
               "-n", f"bench-{cand.name}-{uuid.uuid4().hex[:6]}@%h"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=self.env_for(cand, results), cwd=self.root / "app",
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)
        return proc

    def stop_worker(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL the worker's own process group."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:  # the pool children live in the worker's session/process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if proc in self.workers:
            self.workers.remove(proc)

    def cleanup(self) -> None:
        for proc in list(self.workers):
            self.stop_worker(proc, grace=3.0)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- measuring --------------------------------------------------------

    def measure(self, cand: Candidate) -> Result:
        from celery import Celery

        res = Result(transport=cand.name, url=cand.url, tasks=self.args.tasks, hops=self.args.hops)
        results = self.root / "results" / cand.name
        (results / "_tmp").mkdir(parents=True)
        for run in ("probe", "warmup", "tput", "hops"):
            (results / run).mkdir()
        if cand.url.startswith("redis://"):
            import redis

            redis.Redis(host="127.0.0.1", port=6379, db=13).flushdb()
        if cand.url.startswith("amqp://"):
            _purge_amqp(cand.url)

        app = Celery("bench_client")
        app.conf.update(broker_url=cand.url, broker_transport_options=cand.options,
                        broker_connection_retry_on_startup=True, task_serializer="json",
                        accept_content=["json"], task_acks_late=True, task_ignore_result=True,
                        task_default_queue="bench")
        log = self.root / f"worker-{cand.name}.log"
        proc = self.start_worker(cand, results, log)
        try:
            self._run(cand, app, proc, res, results)
        except Exception as exc:  # noqa: BLE001 - reported in the table; the others go on
            res.error = f"{type(exc).__name__}: {exc}"
        finally:
            res.worker_exit_code = proc.poll()
            res.worker_alive = res.worker_exit_code is None
            res.worker_cpu_s = _cpu_seconds(proc.pid) if res.worker_alive else None
            self.stop_worker(proc)
            app.close()
            res.worker_errors = _error_lines(log)
            if "data_folder_in" in cand.options:
                res.queue_left = sum(1 for f in os.listdir(cand.options["data_folder_in"])
                                     if f.endswith(".bench.msg"))
            if cand.url.startswith("redis://"):
                import redis

                redis.Redis(host="127.0.0.1", port=6379, db=13).flushdb()
            if cand.url.startswith("amqp://"):
                _purge_amqp(cand.url)
        return res

    def _run(self, cand: Candidate, app: Any, proc: subprocess.Popen, res: Result,
             results: Path) -> None:
        t0 = time.time()
        # 1. readiness: a ping where the transport broadcasts, then always a probe task
        with app.connection_for_write() as conn:
            fanout = conn.supports_exchange_type("fanout")
        deadline = time.monotonic() + self.args.ready_timeout
        if fanout:
            while not app.control.ping(timeout=0.5):
                if proc.poll() is not None:
                    raise RuntimeError("worker exited before answering ping")
                if time.monotonic() > deadline:
                    raise RuntimeError("worker never answered ping")
        app.send_task("bench.probe", args=("probe", "ready"))
        if _wait_files(results / "probe", 1, proc, deadline, self.args.stall) < 1:
            raise RuntimeError("worker never ran the probe task")
        res.ready_s = time.time() - t0
        # warm-up chain: forks/imports done, each child has published once
        app.send_task("bench.hop", args=("warmup", 0, 6))
        if _wait_files(results / "warmup", 6, proc, time.monotonic() + 20, self.args.stall) < 6:
            raise RuntimeError("warm-up chain did not complete"
                               + (" (worker exited)" if proc.poll() is not None else ""))

        # a. throughput
        n = self.args.tasks
        with app.producer_or_acquire() as producer:
            t_first = time.time()
            for i in range(n):
                app.send_task("bench.noop", args=("tput", i), producer=producer)
            t_pub = time.time()
        res.publish_per_s = n / (t_pub - t_first)
        res.completed = _wait_files(results / "tput", n, proc,
                                    time.monotonic() + self.args.deadline, self.args.stall)
        stamps = _read_stamps(results / "tput")
        if res.completed == n and stamps:
            res.tasks_per_s = n / (max(s[0] for s in stamps.values()) - t_first)
        res.lost = n - res.completed

        # b. hop latency
        m = self.args.hops
        if proc.poll() is None:  # else the chain is not started (and not counted as lost)
            app.send_task("bench.hop", args=("hops", 0, m))
            res.hops_completed = _wait_files(results / "hops", m, proc,
                                             time.monotonic() + self.args.deadline, self.args.stall)
            hops = _read_stamps(results / "hops")
            gaps = [(hops[k + 1][0] - hops[k][1]) * 1000.0
                    for k in range(m - 1) if k in hops and k + 1 in hops]
            if gaps:
                res.hop_median_ms = statistics.median(gaps)
                res.hop_p90_ms = _percentile(gaps, 90)
                res.hop_max_ms = max(gaps)
            res.lost += m - res.hops_completed


def _wait_files(folder: Path, count: int, proc: subprocess.Popen, deadline: float,
                stall: float) -> int:
    """Wait until ``count`` files exist in ``folder``; give up at the deadline,
    after ``stall`` seconds without progress, or shortly after the worker died."""
    best, last_progress, died_at = -1, time.monotonic(), None
    while True:
        seen = len(os.listdir(folder))
        now = time.monotonic()
        if seen >= count:
            return seen
        if seen > best:
            best, last_progress = seen, now
        if proc.poll() is not None:
            died_at = died_at or now
            if now - died_at > 1.0:
                return seen
        if now > deadline or now - last_progress > stall:
            return seen
        time.sleep(0.01)


def _read_stamps(folder: Path) -> dict[int, tuple[float, ...]]:
    stamps = {}
    for name in os.listdir(folder):
        text = (folder / name).read_text().split()
        stamps[int(name)] = tuple(float(x) for x in text)
    return stamps


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # nearest-rank
    return ordered[int(rank) - 1]


def _purge_amqp(url: str) -> None:
    """Delete the benchmark's queue on RabbitMQ (a run left messages in it, or none)."""
    from kombu import Connection

    with Connection(url, connect_timeout=10) as conn:
        conn.default_channel.queue_delete("bench")


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of one process (the worker's main process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _error_lines(log: Path, limit: int = 5) -> list[str]:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keys = ("ERROR", "CRITICAL", "Traceback", "Error:", "Unrecoverable")
    return [line.strip()[:200] for line in lines if any(k in line for k in keys)][:limit]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[Result]) -> None:
    head = ["transport", "tasks/s", "publish/s", "hop median ms", "hop p90 ms", "lost",
            "worker alive"]
    rows = [[r.transport, _fmt(r.tasks_per_s, ".0f"), _fmt(r.publish_per_s, ".0f"),
             _fmt(r.hop_median_ms, ".2f"), _fmt(r.hop_p90_ms, ".2f"),
             "-" if r.lost is None else str(r.lost),
             "yes" if r.worker_alive else f"NO (exit {r.worker_exit_code})"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=False))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))
    for r in results:
        if r.error or r.worker_errors or r.lost:
            print(f"\n{r.transport}: {r.error or ''}")
            if r.lost:
                print(f"    completed {r.completed}/{r.tasks} throughput tasks, "
                      f"{r.hops_completed}/{r.hops} hops; {r.queue_left} messages left in queue")
            for err in r.worker_errors:
                print(f"    worker log: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks for throughput (N)")
    parser.add_argument("--hops", type=int, default=100, help="length of the hop chain (M)")
    parser.add_argument("--json", action="store_true", help="one JSON object per transport")
    parser.add_argument("--only", default="", help="comma-separated candidate names or prefixes")
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="seconds a phase may take at most")
    parser.add_argument("--stall", type=float, default=8.0,
                        help="give up a phase after this many seconds without progress")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)

    import batchjobs.broker

    batchjobs.broker.register()  # embedded:// for this (publishing) process too
    bench = Bench(args)

    def _terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    results = []
    try:
        for cand in bench.candidates():
            t = time.monotonic()
            res = bench.measure(cand)
            results.append(res)
            if args.json:
                print(json.dumps(res.__dict__), flush=True)
            else:
                print(f"# {cand.name}: done in {time.monotonic() - t:.1f}s", file=sys.stderr,
                      flush=True)
    finally:
        bench.cleanup()
    if not args.json:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
