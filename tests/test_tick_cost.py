"""A housekeeper's beat reads the running attempts through ``ix_attempts_running``: with
1,000,000 finished attempts in the table it reads as few pages as with 1,000 (PostgreSQL,
EXPLAIN of the statement as a prepared generic plan, as psycopg runs it once it is
prepared); on SQLite, by its query plan."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from batchjobs import JobSpec, clock, store
from batchjobs.api import submit
from batchjobs.coordinator.sweeps import lost_attempts, lost_attempts_query
from batchjobs.models import Attempt, Task
from batchjobs.servers import set_server
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from tests.conftest import reset_postgres


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Any:
    settings = Settings(database_url=reset_postgres("batchjobs_tick"), broker_url="embedded://",
                        home=tmp_path_factory.mktemp("tick"))
    store.reset_engines()
    yield settings
    store.reset_engines()


def plan(settings: Settings, statement: Any, params: list[Any]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of ``statement`` prepared, on its generic plan."""
    dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
    sql = str(statement.compile(dialect=dialect))
    with store.read_session(settings) as session:
        session.execute(text("SET plan_cache_mode = force_generic_plan"))
        session.execute(text(f"PREPARE lost AS {sql}"))
        try:
            placeholders = ", ".join(f"'{p}'" for p in params)
            rows = session.execute(text(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE lost({placeholders})"))
            explained = rows.scalar_one()
        finally:
            session.execute(text("DEALLOCATE lost"))
    return (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]


def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]


def scans_of_attempts(node: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(n["Node Type"], n.get("Index Name")) for n in nodes(node)
            if n.get("Relation Name") == "attempts"]


def pages(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"] + node["Shared Read Blocks"])


def add_finished_attempts(settings: Settings, task_id: int, first: int, last: int) -> None:
    with store.transaction(settings) as session:
        session.execute(text(
            "INSERT INTO attempts (task_id, number, server, \"user\", started_at, ended_at, "
            "outcome, run) SELECT :task, g, 'Gone', 'u', now(), now(), 'ended', 1 "
            "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g"),
            {"task": task_id, "first": first, "last": last})
        session.execute(text("ANALYZE attempts"))


@pytest.mark.postgres
def test_the_beat_reads_running_attempts_by_index_whatever_the_history(settings):
    job = JobSpec("history", run_at=clock.now() + timedelta(days=30))
    job.add_task("A", "batchjobs.examples.noop")
    job_id = submit(job, settings=settings)
    set_server("Gone", groups=["default"], threads=1, settings=settings)
    with store.read_session(settings) as session:
        task_id = session.execute(select(Task.id).where(Task.job_id == job_id)).scalar_one()
    with store.transaction(settings) as session:   # two running attempts of a dead server
        session.execute(text(
            "INSERT INTO attempts (task_id, number, server, \"user\", started_at, outcome, run) "
            "VALUES (:t, 0, 'Gone', 'u', now(), 'running', 1), "
            "(:t, -1, 'Gone', 'u', now(), 'running', 1)"), {"t": task_id})
        session.execute(text("UPDATE batch_servers SET heartbeat_at = now() - interval '1 hour'"
                             " WHERE name = 'Gone'"))
    dead_before = (clock.now() - timedelta(minutes=1)).isoformat()
    statement = lost_attempts_query(dead_before=clock.now())
    add_finished_attempts(settings, task_id, 1, 1_000)
    small = plan(settings, statement, [dead_before, 100])
    add_finished_attempts(settings, task_id, 1_001, 1_000_000)
    large = plan(settings, statement, [dead_before, 100])

    for explained in (small, large):
        assert scans_of_attempts(explained) and all(
            index == "ix_attempts_running" for _, index in scans_of_attempts(explained)), \
            scans_of_attempts(explained)
        assert explained["Actual Rows"] == 2
    # a few pages either way (the index's and the two rows'), against the table's thousands
    with store.read_session(settings) as session:
        table_pages = session.execute(text(
            "SELECT relpages FROM pg_class WHERE relname = 'attempts' "
            "AND relnamespace = 'batchjobs_tick'::regnamespace")).scalar_one()
    assert table_pages > 5_000
    assert pages(small) <= 10 and pages(large) <= 10, (pages(small), pages(large))
    with store.read_session(settings) as session:
        assert sorted(lost_attempts(session, dead_before=clock.now())) == [
            (task_id, -1, "Gone"), (task_id, 0, "Gone")]

    # The same statement with the word as a parameter reads the whole table on a generic
    # plan: what the literal in RUNNING avoids.
    bound = (select(Attempt.task_id).where(Attempt.outcome == Outcome.RUNNING).limit(100))
    scans = scans_of_attempts(plan(settings, bound, ["running", 100]))
    assert scans and scans[0][1] != "ix_attempts_running", scans


def test_on_sqlite_the_beat_reads_running_attempts_by_the_same_index(tmp_path):
    """SQLite uses a partial index only for a query whose WHERE holds the index's own term
    (``outcome = 'running'``), which a bound parameter is not."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", broker_url="embedded://",
                        home=tmp_path)
    store.reset_engines()
    try:
        with store.read_session(settings, create=True) as session:
            engine = session.get_bind()
        statement = lost_attempts_query(dead_before=clock.now())
        sql = str(statement.compile(dialect=engine.dialect,
                                    compile_kwargs={"literal_binds": True}))
        with store.read_session(settings) as session:
            steps = [row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
        assert any("attempts" in s and "ix_attempts_running" in s for s in steps), steps
    finally:
        store.reset_engines()
