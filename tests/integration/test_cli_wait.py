"""`batchjobs wait` on a real terminal (a pseudo-terminal) draws a live bar with done/total,
running, failed and elapsed, and warns once about a group no live server serves; through a
pipe or with --quiet it draws nothing."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

import batchjobs
from batchjobs import JobSpec

pytestmark = pytest.mark.integration

CLI = ["-c", "from batchjobs.cli import main; main()"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn_wait(job_id: int, env: dict[str, str], *extra: str) -> pexpect.spawn:
    """``batchjobs wait`` on a pseudo-terminal of 200 columns; all it writes is kept."""
    child = pexpect.spawn(sys.executable, [*CLI, "wait", str(job_id), *extra], env=env,
                          dimensions=(24, 200), encoding="utf-8", timeout=90)
    child.logfile_read = io.StringIO()
    return child


def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait for the end; its exit status and everything it wrote, without ANSI codes."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, ANSI.sub("", child.logfile_read.getvalue())


@pytest.fixture
def home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh embedded default, with no server at all."""
    for name in ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHJOBS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return dict(os.environ)


def three_noops() -> JobSpec:
    job = JobSpec("three")
    for name in ("A", "B", "C"):
        job.add_task(name, "batchjobs.examples.noop")
    return job


def test_wait_on_a_terminal_shows_the_bar_and_warns_once_about_an_unserved_group(home_env):
    job_id = batchjobs.submit(three_noops())
    child = spawn_wait(job_id, home_env)
    child.expect(r"0/3 done · 0 running · 0 failed")
    child.expect(r"batch group 'default', which no live server serves")
    child.expect(r"0:00:0\d")           # elapsed, drawn while it waits
    batchjobs.cancel(job_id)
    status, text = finish(child)
    assert status == 1
    assert "3/3 done · 0 running · 0 failed" in text and text.rstrip().endswith("canceled")
    assert text.count("no live server serves") == 1      # warned once only


def test_wait_through_a_pipe_or_with_quiet_draws_no_bar(home_env):
    job_id = batchjobs.submit(three_noops())
    piped = subprocess.Popen([sys.executable, *CLI, "wait", str(job_id)], env=home_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    quiet = spawn_wait(job_id, home_env, "--quiet")
    quiet.expect("no live server serves")    # the warning still comes, without a bar
    assert piped.stderr is not None
    first = piped.stderr.readline()          # both are waiting now: each has warned
    batchjobs.cancel(job_id)
    out, err = piped.communicate(timeout=90)
    err = first + err
    assert piped.returncode == 1 and out == "canceled\n"
    assert err.count("no live server serves") == 1 and "done ·" not in err and "\r" not in err
    status, text = finish(quiet)
    assert status == 1 and "done ·" not in text and text.count("no live server serves") == 1


def test_wait_shows_the_bar_reaching_the_total_as_a_server_runs_the_job(start_server):
    start_server("Wait1", groups=["default"], threads=2)
    job = JobSpec("progress")
    for name in ("A", "B", "C"):
        job.add_task(name, "batchjobs.examples.sleep", kwargs={"seconds": 0.5})
    job.add_task("D", "batchjobs.examples.fail", depends_on=["A"])
    job.add_task("E", "batchjobs.examples.noop", ignore_failure=True, depends_on=["D"])
    job_id = batchjobs.submit(job)
    child = spawn_wait(job_id, dict(os.environ))
    status, text = finish(child)
    assert status == 1, text                     # D failed: the job ends error
    assert "5/5 done · 0 running · 1 failed" in text
    assert "no live server serves" not in text
    assert batchjobs.status(job_id)["status"] == "error"


def test_wait_names_only_the_group_no_live_server_serves(start_server):
    from batchjobs.groups import add_group

    start_server("Wait2", groups=["default"], threads=1)
    add_group("BG7")
    job = JobSpec("stranded")
    job.add_task("served", "batchjobs.examples.noop")
    job.add_task("stranded", "batchjobs.examples.noop", group="BG7")
    job_id = batchjobs.submit(job)
    child = spawn_wait(job_id, dict(os.environ))
    child.expect(r"batch group 'BG7', which no live server serves")
    child.expect(r"1/2 done")          # the served task ran (the bar is redrawn after a warning)
    batchjobs.cancel(job_id)
    status, text = finish(child)
    assert status == 1
    assert text.count("no live server serves") == 1 and "'default', which" not in text
