"""On a batch server, a process comes only from the operator's modules: a task naming a
module the server has not imported does not make it import that module, and the attempt
says why the process is unknown; a listed module that cannot load stops the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

import batchjobs
from batchjobs import JobSpec, store
from batchjobs.models import Task

pytestmark = pytest.mark.integration


def test_a_server_does_not_import_the_module_a_task_names(start_server, backend, tmp_path):
    (tmp_path / "planted_jobs.py").write_text(
        "open(__file__ + '.imported', 'w').close()\n"
        "from batchjobs import batchable\n@batchable\ndef run(): pass\n")
    path = os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]])
    start_server("Src1", groups=["default"], env={"PYTHONPATH": path})
    job = JobSpec("forged")
    job.add_task("A", "batchjobs.examples.noop")
    job_id = batchjobs.submit(job, hold=True)
    # What a forged message or a later API could carry: a name validation never saw.
    with store.transaction() as session:
        session.execute(update(Task).where(Task.job_id == job_id)
                        .values(process="planted_jobs.run"))
    batchjobs.release(job_id)
    assert batchjobs.wait(job_id, timeout=90) is not None
    task = batchjobs.status(job_id)["tasks"][0]
    assert task["status"] == "error"
    assert "no configured module defines 'planted_jobs.run'" in task["error"]
    assert "BATCHJOBS_IMPORTS" in task["error"]
    assert not (tmp_path / "planted_jobs.py.imported").exists()


def test_a_server_whose_listed_module_raises_refuses_to_start_in_one_line(tmp_path):
    (tmp_path / "broken_jobs.py").write_text("x = 1\nraise RuntimeError('no config')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL")}
    env.update(BATCHJOBS_HOME=str(tmp_path), BATCHJOBS_IMPORTS="broken_jobs,missing_jobs",
               PYTHONPATH=os.pathsep.join([str(tmp_path),
                                           str(Path(__file__).resolve().parents[2])]))
    result = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                             "worker", "--server", "Src2"], capture_output=True, check=False,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert "module 'broken_jobs' raised while importing: RuntimeError: no config" \
        in result.stderr and "broken_jobs.py:2" in result.stderr
    assert "module 'missing_jobs' is not found" in result.stderr
