"""``batchjobs status`` reads through the database driver alone (no SQLAlchemy, no Celery)
and shows exactly what the store's view shows; a database that refuses is one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from batchjobs import api, owners
from batchjobs.definition import load_job_file
from batchjobs.examples import job1

pytestmark = pytest.mark.integration

#: Runs the command line, then says on its last stderr line which heavy packages it loaded.
SCRIPT = """
import json, sys
from batchjobs.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
heavy = ("sqlalchemy", "celery", "kombu", "yaml", "croniter")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def status_cli(*args: str, env: dict[str, str] | None = None,
               ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, "status", *args],
                            capture_output=True, text=True, timeout=120,
                            env=env or dict(os.environ))
    *before, loaded = result.stderr.strip().splitlines()
    result.stderr = "\n".join(before)
    return result, json.loads(loaded)


def store_view(job_id: int) -> dict:
    """What the store's pool connection shows, as the JSON the command prints."""
    return json.loads(json.dumps(api.status(job_id), default=str))


def job_file(tmp_path: Path, name: str, text: str) -> int:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return api.submit(load_job_file(path), hold=True)


def test_status_loads_no_sqlalchemy_and_shows_what_the_store_shows(servers, tmp_path):
    ran = api.submit(job1(fail="TASK 2", seconds=0.05))
    assert api.wait(ran, timeout=120) is not None
    owners.reassign(to_user="reads-bob", job_id=ran, by="reads-admin")
    later = job_file(tmp_path, "later.yaml", (
        "description: after it\nrecurrence: {every: 1h, timezone: Europe/Oslo}\n"
        "retry_on: [KeyError]\nretry_delay: 2s\npriority: high\nmax_concurrency: 3\n"
        "tasks:\n  - {name: A, process: batchjobs.examples.noop, retries: 2}\n"))
    conditioned = job_file(tmp_path, "conditioned.yaml", (
        "description: on another job\ntasks:\n"
        f"  - name: A\n    process: batchjobs.examples.noop\n"
        f"    depends_on: [{{job: {ran}, status: error}}]\n"))
    for job_id in (ran, later, conditioned):
        result, loaded = status_cli(str(job_id), "--json")
        assert result.returncode == 0, result.stderr
        assert loaded == []
        assert json.loads(result.stdout) == store_view(job_id)
    shown = store_view(ran)
    assert shown["changes"][0]["to"] == "reads-bob" and shown["changes"][0]["at"].endswith("Z")
    failed = {t["name"]: t for t in shown["tasks"]}["TASK 2"]
    assert failed["status"] == "error" and failed["error"] and failed["server"]
    assert store_view(later)["recurrence"]["every"] == "1h"
    assert store_view(later)["tasks"][0]["retry_on"] == ["KeyError"]
    assert store_view(conditioned)["tasks"][0]["after_jobs"] == [{"job": ran, "status": "error"}]
    text, loaded = status_cli(str(ran))
    assert text.returncode == 0 and loaded == []
    assert any(line.split()[:3] == ["TASK", "2", "error"] for line in text.stdout.splitlines())


def test_status_of_no_such_job_exits_2_without_sqlalchemy(backend):
    result, loaded = status_cli("987654")
    assert result.returncode == 2 and "987654" in result.stderr
    assert "Traceback" not in result.stderr and loaded == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_postgres_is_one_line_with_the_password_masked(tmp_path):
    url = f"postgresql+psycopg://alice:s3cret@127.0.0.1:{_free_port()}/nothing"
    env = {**os.environ, "BATCHJOBS_DATABASE_URL": url, "BATCHJOBS_HOME": str(tmp_path)}
    result, loaded = status_cli("1", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 0 and result.stderr.startswith("error: database ")
    assert "alice:***@127.0.0.1" in result.stderr and "refused" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    assert loaded == []


def test_a_table_the_driver_cannot_read_is_read_through_the_store(tmp_path):
    """A statement the database refuses (here a table an old version left in another
    shape) is read again through the store, whose error is one line too."""
    env = {**os.environ, "BATCHJOBS_HOME": str(tmp_path)}
    env.pop("BATCHJOBS_DATABASE_URL", None)
    env.pop("BATCHJOBS_BROKER_URL", None)
    subprocess.run([sys.executable, "-c", "from batchjobs import api, examples; "
                    "api.submit(examples.job1(), hold=True)"], check=True, env=env, timeout=120)
    import sqlite3

    with sqlite3.connect(tmp_path / "batchjobs.db") as db:
        db.execute("DROP TABLE job_audit")
        db.execute("CREATE TABLE job_audit (id INTEGER PRIMARY KEY)")
    result, loaded = status_cli("1", env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 0 and "refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert "sqlalchemy" in loaded          # the second read was the store's
