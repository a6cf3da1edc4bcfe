"""Prometheus metrics and ``/healthz``, served by a batch server on ``--metrics-port``.

``batchjobs worker --metrics-port 9808`` (or ``BATCHJOBS_METRICS_PORT`` for plain
``celery worker``) makes the server answer, on ``BATCHJOBS_METRICS_ADDRESS``
(default 127.0.0.1; ``0.0.0.0`` for a Kubernetes probe):

- ``GET /metrics``: the Prometheus text format (the ``prometheus_client`` library);
- ``GET /healthz``: 200 and one line while :func:`health.server_health` says healthy
  (heartbeat fresh, broker connection up), else 503 and the reason.

Two kinds of figures. **Installation-wide** ones are read from the database (and the
broker) at each scrape and are the same on every server: jobs and tasks by status,
ready tasks and queued messages per batch group, running tasks, threads now and applied
per server, alert deliveries by status. Aggregate them with ``max``, or scrape one server.
**This server's own** histograms (label ``server``): how long its attempts took, and
the dependency-hop latency of the tasks it started (from the instant a task became
ready, on its parent's completion, to the instant this server started it). They are
accumulated from the ``attempts`` rows this server wrote since it started, read by
primary key at each scrape (rows from the last :data:`LAG` seconds are read again, so a
row committed late is not missed); no task pays anything for them.

The HTTP server is a daemon thread of the worker's main process, started by the
``worker_ready`` signal; a scrape costs a handful of indexed queries.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from celery import signals
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from . import clock, queues, servers, store
from .errors import ConfigError
from .health import server_health
from .models import AlertDelivery, Attempt, BatchGroup, Job, Task
from .runner import server_name
from .status import DeliveryStatus, JobStatus, Outcome, TaskStatus

log = logging.getLogger(__name__)

PORT_VARIABLE = "BATCHJOBS_METRICS_PORT"
ADDRESS_VARIABLE = "BATCHJOBS_METRICS_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1"
#: Attempts that started this recently are read again at the next scrape: a claim
#: committed after a later id was seen is still counted.
LAG = timedelta(seconds=10)
#: Seconds: a no-op takes milliseconds, a month-end posting hours.
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
#: Seconds: a hop is a few milliseconds on Redis + PostgreSQL, seconds when servers are busy.
HOP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
DELIVERY_STATUSES = tuple(s.value for s in DeliveryStatus)


def _counts(rows: Any) -> dict[str, int]:
    """``(word, count)`` rows keyed by the word's text."""
    return {str(word): int(count) for word, count in rows}


class InstallationCollector(Collector):
    """The installation-wide gauges, read from the database and the broker per scrape."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        with store.read_session() as session:
            jobs = _counts(session.execute(select(Job.status, func.count())
                                           .group_by(Job.status)).all())
            tasks = _counts(session.execute(select(Task.status, func.count())
                                            .group_by(Task.status)).all())
            ready = dict(session.execute(
                select(Task.group_name, func.count()).where(Task.status == TaskStatus.READY)
                .group_by(Task.group_name)).all())
            groups = list(session.execute(select(BatchGroup.name)
                                          .order_by(BatchGroup.name)).scalars())
            deliveries = _counts(session.execute(select(AlertDelivery.status, func.count())
                                                 .group_by(AlertDelivery.status)).all())
        yield _by_label("batchjobs_jobs", "Jobs by status.", "status",
                        {s.value: jobs.get(s.value, 0) for s in JobStatus})
        yield _by_label("batchjobs_tasks", "Tasks by status.", "status",
                        {s.value: tasks.get(s.value, 0) for s in TaskStatus})
        yield _by_label("batchjobs_ready_tasks", "Ready tasks per batch group.", "group",
                        {g: ready.get(g, 0) for g in sorted({*groups, *ready})})
        yield _by_label("batchjobs_queue_messages",
                        "Messages waiting on each batch group's broker queue.", "group",
                        self.queue_lengths(groups))
        yield _by_label("batchjobs_alert_deliveries", "Alert deliveries by status "
                        "(failed: given up after every retry).", "status",
                        {s: deliveries.get(s, 0) for s in sorted({*DELIVERY_STATUSES,
                                                                  *deliveries})})
        yield from _server_gauges(servers.list_servers())

    def queue_lengths(self, groups: list[str]) -> dict[str, int]:
        """Messages on each group's queue, over one broker connection."""
        with self.app.connection_for_read() as conn:
            return {group: _queue_length(conn, queues.queue_name(group)) for group in groups}


def _queue_length(conn: Any, queue: str) -> int:
    try:
        return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
    except Exception:  # noqa: BLE001 - a queue never declared holds nothing
        return 0


def _by_label(name: str, documentation: str, label: str, values: dict[str, int],
              ) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _server_gauges(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    families = {
        "live": GaugeMetricFamily("batchjobs_server_live",
                                  "1 while the server's heartbeat is fresh.", labels=["server"]),
        "running": GaugeMetricFamily("batchjobs_server_running_tasks",
                                     "Tasks executing on the server.", labels=["server"]),
        "threads_now": GaugeMetricFamily(
            "batchjobs_server_threads_now",
            "Threads the server's record (and schedule) asks for now.", labels=["server"]),
        "applied": GaugeMetricFamily("batchjobs_server_threads_applied",
                                     "Threads the live server applies.", labels=["server"]),
    }
    for row in rows:
        families["live"].add_metric([row["name"]], int(row["live"]))
        families["running"].add_metric([row["name"]], row["running"])
        families["threads_now"].add_metric([row["name"]], row["threads_now"])
        if row["applied"] is not None and row["applied"]["threads"] is not None:
            families["applied"].add_metric([row["name"]], row["applied"]["threads"])
    yield from families.values()


class AttemptFigures:
    """This server's attempt durations and dependency hops, as Prometheus histograms.

    Rows are found by primary key: those above ``watermark`` (attempts begun since the
    last scrape, of every server, filtered to this one) and those of this server still
    running at the last scrape. Each attempt's hop is observed once when first seen,
    its duration once when seen ended."""

    def __init__(self, server: str, registry: CollectorRegistry) -> None:
        self.server = server
        self.duration = Histogram(
            "batchjobs_attempt_duration_seconds",
            "Attempts this server ran, by outcome: from start to recorded end.",
            ["server", "outcome"], buckets=DURATION_BUCKETS, registry=registry)
        self.hop = Histogram(
            "batchjobs_dependency_hop_seconds",
            "Tasks with conditions this server started: from ready (the parent's "
            "completion) to start.", ["server"], buckets=HOP_BUCKETS, registry=registry)
        self.lock = threading.Lock()
        self.seen: set[int] = set()
        self.running: set[int] = set()
        #: Attempts up to this id are counted (or began before this server started).
        self.watermark: int | None = None
        try:
            self.watermark = self._newest()
        except Exception as exc:  # noqa: BLE001 - the database may answer later
            log.warning("metrics of %s start counting at the first scrape (%s)", server,
                        type(exc).__name__)

    @staticmethod
    def _newest() -> int:
        with store.read_session() as session:
            return int(session.execute(select(func.max(Attempt.id))).scalar() or 0)

    def refresh(self) -> None:
        """Observe what happened since the last scrape (scrapes may overlap: one at a time)."""
        with self.lock:
            if self.watermark is None:
                self.watermark = self._newest()
            self._refresh(self.watermark)

    def _refresh(self, watermark: int) -> None:
        with store.read_session() as session:
            fresh = session.execute(
                select(Attempt.id, Attempt.started_at, Attempt.ended_at, Attempt.outcome,
                       Attempt.number, Task.ready_at, Task.n_conditions, Task.attempt_base)
                .join(Task, Task.id == Attempt.task_id)
                .where(Attempt.id > watermark, Attempt.server == self.server)).all()
            for row in fresh:
                if row.id not in self.seen:
                    self.seen.add(row.id)
                    self._begun(row)
            fresh_ids = {row.id for row in fresh}
            still = [i for i in self.running if i not in fresh_ids]
            ended = session.execute(select(Attempt.id, Attempt.started_at, Attempt.ended_at,
                                           Attempt.outcome)
                                    .where(Attempt.id.in_(still))).all() if still else []
            looked_at: list[Any] = [*fresh, *ended]
            for seen in looked_at:
                if seen.id in self.running and seen.ended_at is not None:
                    self.running.discard(seen.id)
                    self._ended(seen.outcome, seen.started_at, seen.ended_at)
            settled = session.execute(select(func.max(Attempt.id)).where(
                Attempt.id > watermark, Attempt.started_at < clock.now() - LAG)).scalar()
        if settled is not None:
            self.watermark = settled
            self.seen = {i for i in self.seen if i > settled}

    def _begun(self, row: Any) -> None:
        if (row.n_conditions and row.ready_at is not None
                and row.number == row.attempt_base + 1 and row.started_at >= row.ready_at):
            self.hop.labels(self.server).observe(_seconds(row.ready_at, row.started_at))
        if row.ended_at is None:
            self.running.add(row.id)
        else:
            self._ended(row.outcome, row.started_at, row.ended_at)

    def _ended(self, outcome: str, started: datetime, ended: datetime) -> None:
        if outcome != Outcome.RUNNING:
            self.duration.labels(self.server, outcome).observe(_seconds(started, ended))


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


def installation_registry(app: Any) -> CollectorRegistry:
    """A registry of the installation-wide figures alone, for a process that is no batch
    server (the web console can serve it with ``prometheus_client.make_wsgi_app``)."""
    registry = CollectorRegistry()
    registry.register(InstallationCollector(app))
    return registry


class MetricsServer:
    """``/metrics`` and ``/healthz`` of one batch server, in a daemon thread."""

    def __init__(self, server: str, consumer: Any, *, address: str, port: int) -> None:
        self.server = server
        self.consumer = consumer
        self.registry = CollectorRegistry()
        self.registry.register(InstallationCollector(consumer.app))
        ProcessCollector(registry=self.registry)
        self.attempts = AttemptFigures(server, self.registry)
        self.httpd = ThreadingHTTPServer((address, port), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name=f"batchjobs-metrics-{server}")

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def metrics(self) -> bytes:
        self.attempts.refresh()
        return generate_latest(self.registry)

    def health(self) -> tuple[bool, str]:
        verdict = server_health(self.server, consumer=self.consumer)
        return verdict.healthy, verdict.line()


def _handler(owner: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._answer(200, owner.metrics(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    healthy, line = owner.health()
                    self._answer(200 if healthy else 503, f"{line}\n".encode())
                else:
                    self._answer(404, b"not found: /metrics and /healthz are served here\n")
            except Exception as exc:  # noqa: BLE001 - a failed scrape must not end the thread
                log.warning("metrics: %s failed: %s", path, type(exc).__name__)
                self._answer(503, f"{owner.server} unhealthy: {type(exc).__name__} while "
                                  f"reading the database or the broker\n".encode())

        def _answer(self, code: int, body: bytes,
                    content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    return Handler


def configured_port(environ: dict[str, str] | None = None) -> int | None:
    """``BATCHJOBS_METRICS_PORT``, or None when metrics are off."""
    raw = (os.environ if environ is None else environ).get(PORT_VARIABLE, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{PORT_VARIABLE} must be a TCP port (1-65535), not {raw!r}",
                          name=PORT_VARIABLE)
    return int(raw)


_served: list[MetricsServer] = []


@signals.worker_ready.connect
def _serve_metrics(sender: Any = None, **_: Any) -> None:
    """Start ``/metrics`` and ``/healthz`` once the server is registered (this handler
    connects after :mod:`batchjobs.worker`'s, which registers it)."""
    port = configured_port()
    if port is None:
        return
    address = os.environ.get(ADDRESS_VARIABLE, "").strip() or DEFAULT_ADDRESS
    name = server_name(sender.hostname)
    try:
        served = MetricsServer(name, sender, address=address, port=port)
    except OSError as exc:     # the port is taken, the address is not this host's
        log.error("batch server %s cannot serve metrics on %s:%d: %s", name, address, port,
                  exc.strerror or exc)
        return
    served.start()
    _served.append(served)
    log.info("batch server %s serves /metrics and /healthz on %s:%d", name, address, port)


@signals.worker_shutdown.connect
def _stop_metrics(**_: Any) -> None:
    for served in _served:
        served.stop()
