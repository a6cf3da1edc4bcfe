"""Schema management: Alembic head, upgrade on first use, the models and the migrations agree."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from batchjobs import store
from batchjobs.models import Base
from batchjobs.settings import Settings
from batchjobs.store.schema import alembic_config


def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", broker_url="embedded://",
                    home=tmp_path)


def test_schema_revision_constant_is_the_alembic_head(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    assert store.head_revision(engine) == store.SCHEMA_REVISION


def test_first_use_of_an_empty_database_applies_the_schema_and_the_default_group(tmp_path):
    settings = sqlite_settings(tmp_path)
    engine = store.get_engine(settings)
    assert store.current_revision(engine) == store.SCHEMA_REVISION
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    with store.read_session(settings) as session:
        from batchjobs.models import BatchGroup

        assert session.get(BatchGroup, "default") is not None


def test_a_home_not_made_yet_is_made_by_the_first_submit_and_status_reads_it(tmp_path):
    from batchjobs import api
    from batchjobs.definition import JobSpec

    home = tmp_path / "not" / "made"
    settings = Settings(database_url=f"sqlite:///{home / 'batchjobs.db'}",
                        broker_url="embedded://", home=home)
    job = JobSpec("x")
    job.add_task("a", "batchjobs.examples.noop")
    job_id = api.submit(job, user="alice", hold=True, settings=settings)
    assert api.status(job_id, settings=settings)["status"] == "hold"


def test_upgrade_twice_changes_nothing(tmp_path):
    settings = sqlite_settings(tmp_path)
    engine = store.get_engine(settings)
    assert store.upgrade(engine) == store.SCHEMA_REVISION
    assert store.current_revision(engine) == store.SCHEMA_REVISION


def test_migrations_create_exactly_what_the_models_declare(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = store.get_engine(sqlite_settings(tmp_path))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_database_at_0001_with_jobs_upgrades_and_each_job_gets_its_first_run(tmp_path):
    from alembic import command
    from sqlalchemy import text

    settings = sqlite_settings(tmp_path)
    engine = store.create_engine(settings)
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text(
            "INSERT INTO jobs (id, description, status, alert, created_by, created_at, "
            "task_count, remaining, failed) VALUES (7, 'old', 'ended', 'error', 'ann', "
            "'2026-11-01 10:00:00', 1, 0, 0)"))
        conn.commit()
    assert store.upgrade(engine) == store.SCHEMA_REVISION
    with engine.connect() as conn:
        assert conn.execute(text("SELECT job_id, number, status FROM job_runs")).all() == [
            (7, 1, "ended")]
        assert conn.execute(text("SELECT run_number FROM jobs")).scalar() == 1


def test_one_run_number_per_job_is_enforced_by_the_database(tmp_path):
    import pytest
    from sqlalchemy.exc import IntegrityError

    from batchjobs import JobSpec, runs, submit
    from batchjobs.status import JobStatus

    settings = sqlite_settings(tmp_path)
    job = JobSpec("once")
    job.add_task("A", "batchjobs.examples.noop")
    job_id = submit(job, hold=True, settings=settings)
    with pytest.raises(IntegrityError):
        with store.transaction(settings) as session:
            runs.new_run(session, job_id, 1, status=JobStatus.WAITING, scheduled_at=None)
