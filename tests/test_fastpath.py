"""The PostgreSQL fast path for one-statement steps: what the hot statements run on."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from batchjobs import JobSpec, TaskSpec, clock, fastpath, store
from batchjobs.api import submit
from batchjobs.models import Job, UTCDateTime
from batchjobs.settings import Settings
from tests.conftest import reset_postgres


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
    with store.begin(settings, one_statement=True) as conn:
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
    with store.begin(settings, one_statement=True) as conn:
        with pytest.raises(ValueError, match="naive datetime"):
            conn.execute(select(bindparam("p_x", type_=UTCDateTime())),
                         {"p_x": datetime(2026, 1, 1, 12)})


def test_a_statement_is_committed_at_once_and_rows_read_by_name(settings):
    stored_job(settings, "fast")
    statement = (update(Job.__table__).where(Job.__table__.c.description == bindparam("p_d"))
                 .values(description="faster").returning(Job.__table__.c.id,
                                                         Job.__table__.c.description))
    with store.begin(settings, one_statement=True) as conn:
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
