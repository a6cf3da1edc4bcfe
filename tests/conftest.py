"""Real-service fixtures: each backend is a real database and a real broker.

``backend`` is parametrized over Redis + PostgreSQL (127.0.0.1 only, a
dedicated PostgreSQL schema and Redis db, cleared at the start) and the
embedded default (SQLite + the filesystem broker in a temporary folder);
tests marked ``rabbitmq`` also run on RabbitMQ + PostgreSQL (their own schema;
the ``batch.*`` queues of the previous run deleted at the start).
``servers`` starts two real batch servers, Batch1 and Batch2, one thread
each, once per backend. A missing service fails the run; nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from batchjobs import store
from batchjobs.app import configure
from batchjobs.groups import add_group
from batchjobs.launch import ServerProcess, stop_all, wait_until_ready
from batchjobs.servers import set_server, show_server
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BATCHJOBS_TEST_PG",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "batchjobs_test"
REDIS_URL = os.environ.get("BATCHJOBS_TEST_REDIS", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("BATCHJOBS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
AMQP_SCHEMA = "batchjobs_test_amqp"
#: Every test runs on these; a test marked ``rabbitmq`` on RabbitMQ + PostgreSQL too.
BACKENDS = ("redis-pg", "embedded")
BACKEND_VARS = ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL", "BATCHJOBS_HOME",
                "BATCHJOBS_REPUBLISH_AFTER", "BATCHJOBS_SERVER_TIMEOUT", "BATCHJOBS_IMPORTS",
                "BATCHJOBS_DATABASE_URL_FILE", "BATCHJOBS_BROKER_URL_FILE")
#: The test processes every batch server of the tests knows (as an operator lists theirs).
TEST_PROCESSES = ("tests.processes.samples,tests.processes.context,tests.processes.faults,"
                  "tests.processes.spawning")
# The sample processes come from where an operator would say: BATCHJOBS_IMPORTS, read by
# this process and inherited by every server the tests start.
os.environ.setdefault("BATCHJOBS_IMPORTS", TEST_PROCESSES)


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    home: Path


def reset_postgres(schema: str = PG_SCHEMA) -> str:
    """Drop and create ``schema``; return a database URL that works in it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def _reset_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def _reset_rabbitmq(schema: str = AMQP_SCHEMA) -> None:
    """Delete the queues of the batch groups the previous run's schema knew: a message
    left from that run names a task id that the recreated schema gives another task."""
    from kombu import Connection
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.connect() as conn:
        known = conn.execute(text("SELECT 1 FROM information_schema.tables WHERE "
                                  "table_schema = :s AND table_name = 'batch_groups'"),
                             {"s": schema}).first()
        groups = {"default"} | (set(conn.execute(text(f"SELECT name FROM {schema}.batch_groups"))
                                    .scalars()) if known else set())
    engine.dispose()
    with Connection(AMQP_URL, connect_timeout=10) as broker:
        channel = broker.default_channel
        for group in sorted(groups):
            channel.queue_delete(f"batch.{group}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``backend``: RabbitMQ only for the tests marked ``rabbitmq``."""
    chosen = any("backend" in str(mark.args[0]) for mark in
                 metafunc.definition.iter_markers("parametrize"))
    if "backend" in metafunc.fixturenames and not chosen:   # a test may pick its backends
        params = list(BACKENDS)
        if metafunc.definition.get_closest_marker("rabbitmq") is not None:
            params.append("rabbitmq-pg")
        metafunc.parametrize("backend", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[Backend]:
    """Point this process (API, app) and the servers it starts at one backend."""
    home = tmp_path_factory.mktemp(request.param)
    # Short recovery delays so the crash tests finish quickly.
    env = {"BATCHJOBS_HOME": str(home), "BATCHJOBS_REPUBLISH_AFTER": "1",
           "BATCHJOBS_SERVER_TIMEOUT": "3", "BATCHJOBS_IMPORTS": TEST_PROCESSES}
    if request.param == "redis-pg":
        env["BATCHJOBS_DATABASE_URL"] = reset_postgres()
        env["BATCHJOBS_BROKER_URL"] = REDIS_URL
        _reset_redis()
    elif request.param == "rabbitmq-pg":
        _reset_rabbitmq()
        env["BATCHJOBS_DATABASE_URL"] = reset_postgres(AMQP_SCHEMA)
        env["BATCHJOBS_BROKER_URL"] = AMQP_URL
    saved = {k: os.environ.get(k) for k in BACKEND_VARS}
    for key in BACKEND_VARS:
        os.environ.pop(key, None)
    os.environ.update(env)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                             os.environ.get("PYTHONPATH")]))
    configure()
    store.reset_engines()
    store.get_engine()
    try:
        yield Backend(request.param, env, home)
    finally:
        store.reset_engines()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        configure()


@pytest.fixture
def start_server(backend: Backend) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: give a server a record, start it, wait until it applies its record.

    ``offset`` shifts the clock its schedule is read with (seconds); ``env`` adds
    environment variables (e.g. alert sinks). Every server
    started is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(name: str, *, groups: Sequence[str] = ("default",), threads: int = 1,
              schedule: str | None = None, timezone: str | None = None,
              offset: float | None = None, env: dict[str, str] | None = None) -> ServerProcess:
        for group in groups:
            add_group(group)
        set_server(name, groups=list(groups), threads=threads, schedule=schedule,
                   timezone=timezone)
        environ = {**os.environ, **(env or {})}
        if offset is not None:
            environ["BATCHJOBS_SCHEDULE_OFFSET"] = str(offset)
        proc = ServerProcess(name, env=environ, log_path=backend.home / f"{name}.log")
        started.append(proc)
        wait_until_ready([proc])
        if offset is None:
            wait_for(lambda: _applies_record(name), timeout=15,
                     message=f"{name} applies its record")
        return proc

    try:
        yield start
    finally:
        stop_all(started)


def _applies_record(name: str) -> bool:
    row = show_server(name)
    return row["applied"] == {"groups": row["groups"], "threads": row["threads_now"]}


@pytest.fixture(scope="session")
def servers(backend: Backend) -> Iterator[dict[str, ServerProcess]]:
    """Batch1 and Batch2, one thread each, serving the default group."""
    for name in ("Batch1", "Batch2"):
        set_server(name, groups=["default"], threads=1, schedule="")
    procs = [ServerProcess(name, log_path=backend.home / f"{name}.log")
             for name in ("Batch1", "Batch2")]
    try:
        wait_until_ready(procs)
        yield {p.name: p for p in procs}
    finally:
        stop_all(procs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches PostgreSQL ``postgres``, so that ``-m "not postgres and
    not integration"`` runs the pure tests on a machine without services."""
    for item in items:
        if item.nodeid.startswith("tests/integration/"):
            item.add_marker(pytest.mark.integration)
        params = getattr(item, "callspec", None)
        values = {str(v) for v in params.params.values()} if params is not None else set()
        fixtures = set(getattr(item, "fixturenames", ()))
        if ({"redis-pg", "rabbitmq-pg", "postgresql"} & values
                or "postgres_url" in fixtures or item.get_closest_marker("integration")):
            item.add_marker(pytest.mark.postgres)
