"""The PostgreSQL fast path for one-statement steps: what the hot statements run on."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from batchjobs import JobSpec, TaskSpec, clock, store
from batchjobs.api import submit
from batchjobs.models import Job, UTCDateTime
from batchjobs.settings import Settings
from batchjobs.status import Outcome
from batchjobs.store import fastpath
from tests.conftest import reset_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(database_url=reset_postgres("batchjobs_fastpath"), broker_url="embedded://",
                    home=tmp_path_factory.mktemp("fastpath"))


def stored_job(settings: Settings, description: str) -> int:
    """A job stored for next month (nothing published)."""
    return submit(JobSpec(description=description, run_at=clock.now() + timedelta(days=30),
                          tasks=[TaskSpec(name="A", process="batchjobs.examples.noop")]),
                  settings=settings)


def test_one_statement_runs_on_a_prepared_generic_plan_in_autocommit(settings):
    with store.atomic(settings) as (_, conn):
        assert isinstance(conn, fastpath.Connection)
        mode = conn.execute(select(text("current_setting('plan_cache_mode')"))).fetchone()
        assert mode[0] == "force_generic_plan"
        for _ in range(3):
            conn.execute(select(bindparam("p_x", type_=UTCDateTime())),
                         {"p_x": datetime(2026, 1, 1, 12)
                          .astimezone()}).fetchall()
    # The same statement object is prepared once on the server.
    driver = fastpath.connection(store.get_engine(settings))._driver()
    prepared = driver.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    assert prepared >= 1


def test_bind_conversions_of_typed_parameters_apply(settings):
    """``UTCDateTime`` refuses naive datetimes on the fast path as everywhere else."""
    with store.atomic(settings) as (_, conn):
        with pytest.raises(ValueError, match="naive datetime"):
            conn.execute(select(bindparam("p_x", type_=UTCDateTime())),
                         {"p_x": datetime(2026, 1, 1, 12)})


def test_a_statement_is_committed_at_once_and_rows_read_by_name(settings):
    stored_job(settings, "fast")
    statement = (update(Job.__table__).where(Job.__table__.c.description == bindparam("p_d"))
                 .values(description="faster").returning(Job.__table__.c.id,
                                                         Job.__table__.c.description))
    with store.atomic(settings) as (_, conn):
        rows = conn.execute(statement, {"p_d": "fast"}).fetchall()
    assert [row.description for row in rows] == ["faster"]
    with store.read_session(settings) as session:   # another connection sees it: committed
        assert session.get(Job, rows[0].id).description == "faster"


def test_database_errors_are_sqlalchemy_errors_and_the_next_call_reconnects(settings):
    engine = store.get_engine(settings)
    conn = fastpath.connection(engine)
    bad = update(Job.__table__).where(Job.__table__.c.id == bindparam("p_id")).values(
        description=None)   # NOT NULL
    job_id = stored_job(settings, "x")
    with pytest.raises(IntegrityError):
        conn.execute(bad, {"p_id": job_id})
    # A connection killed under it fails one call, as OperationalError; the next works.
    pid = conn._driver().info.backend_pid
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    with pytest.raises(OperationalError):
        conn.execute(select(text("1")))
    assert conn.execute(select(text("1"))).fetchone()[0] == 1
    assert conn._driver().info.backend_pid != pid


def test_a_forked_process_gets_its_own_connection(settings):
    engine = store.get_engine(settings)
    parent = fastpath.connection(engine)
    parent._driver()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:   # pragma: no cover - runs in the child
        os.close(read)
        ok = fastpath.connection(engine) is not parent
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(child, 0)
    os.close(read)


def _seq_scans_of_tasks(settings: Settings) -> int:
    with store.read_session(settings) as session:
        return int(session.execute(text(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = 'batchjobs_plans' "
            "AND relname = 'tasks'")).scalar_one())


def test_plans_made_on_empty_tables_still_find_rows_by_key_once_they_are_full(tmp_path):
    """The hot statements are prepared (generic plans) while ``tasks`` holds one row; after
    a 3,000-task job is stored they must still find their rows by primary key, never by
    reading the table whole."""
    from batchjobs.coordinator import claim, record, start_job
    from batchjobs.models import Task

    settings = Settings(database_url=reset_postgres("batchjobs_plans"),
                        broker_url="embedded://", home=tmp_path)

    def ready(job_id: int, limit: int) -> list[int]:
        with store.transaction(settings) as session:
            start_job(session, job_id, limit)
            ids = list(session.execute(select(Task.id).where(Task.job_id == job_id,
                                                             Task.queued)).scalars())
            # Whatever this session read is counted now, not during the measurement.
            session.execute(text("SELECT pg_stat_force_next_flush()"))
        return ids

    def run_all(job_id: int, ids: list[int]) -> None:
        for task_id in ids:
            claimed = claim(task_id, job_id, "S", settings=settings)
            assert claimed is not None
            record(task_id, claimed.attempt, Outcome.ENDED, children=(), settings=settings)

    small = JobSpec("small", run_at=clock.now() + timedelta(days=1))
    small.add_task("only", "batchjobs.examples.noop")
    for _ in range(6):      # beyond psycopg's prepare threshold: plans made, on one row
        job_id = submit(small, settings=settings)
        run_all(job_id, ready(job_id, 1))
    wide = JobSpec("wide", run_at=clock.now() + timedelta(days=1))
    for i in range(3000):
        wide.add_task(f"t{i}", "batchjobs.examples.noop")
    wide_id = submit(wide, settings=settings)
    ids = ready(wide_id, 20)
    fast = fastpath.connection(store.get_engine(settings))
    fast.execute(select(text("pg_stat_force_next_flush()"))).fetchall()
    before = _seq_scans_of_tasks(settings)
    run_all(wide_id, ids)
    fast.execute(select(text("pg_stat_force_next_flush()"))).fetchall()
    fast.execute(select(text("1"))).fetchall()      # the flush happens as that one ends
    assert _seq_scans_of_tasks(settings) == before
