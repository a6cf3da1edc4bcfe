"""`history` shows a cron skip count that reached its cap as "≥ N", and an exact one as is."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from batchjobs import runs, store
from batchjobs.models import Job, JobRun
from batchjobs.recurrence import MAX_COUNTED_SKIPS
from tests.test_cli_validation import home, run  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("home")


def _late_next_run(job_id: int, late: timedelta) -> None:
    """End run 1 ``late`` after it was due, as the coordinator would, and schedule run 2."""
    with store.transaction() as session:
        job = session.execute(select(Job).where(Job.id == job_id)).scalar_one()
        due = session.execute(select(JobRun.scheduled_at).where(
            JobRun.job_id == job_id, JobRun.number == 1)).scalar_one()
        runs.schedule_next(session, job, due + late)


def _submit(tmp_path: Path, recurrence: str) -> int:
    path = tmp_path / "job.yaml"
    path.write_text(f"description: J\nrecurrence: {recurrence}\n"
                    "tasks:\n  - {name: A, process: batchjobs.examples.noop}\n")
    submitted = run("submit", str(path), "--hold")
    assert submitted.exit_code == 0, submitted.output
    return int(submitted.stdout)


def test_a_capped_cron_count_shows_as_at_least(tmp_path):
    job_id = _submit(tmp_path, "{cron: '* * * * *'}")
    _late_next_run(job_id, timedelta(days=80))
    rows = json.loads(run("history", str(job_id), "--json").stdout)
    assert (rows[1]["skipped"], rows[1]["skipped_at_least"]) == (MAX_COUNTED_SKIPS, True)
    table = run("history", str(job_id)).stdout.splitlines()
    assert table[2].endswith(f"≥ {MAX_COUNTED_SKIPS}")


def test_an_every_count_is_exact_however_large(tmp_path):
    job_id = _submit(tmp_path, "{every: 1m}")
    _late_next_run(job_id, timedelta(days=80, seconds=30))
    rows = json.loads(run("history", str(job_id), "--json").stdout)
    assert (rows[1]["skipped"], rows[1]["skipped_at_least"]) == (80 * 24 * 60, False)
    assert run("history", str(job_id)).stdout.splitlines()[2].endswith(" 115200")
