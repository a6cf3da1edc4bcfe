"""Owners with real batch servers: disabling a user holds their waiting and recurring jobs
(executing tasks finish), a reassigned job runs as its new user and says so in its
history, and a due job whose owner is disabled is held by the housekeepers, not started."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

import batchjobs
from batchjobs import JobSpec, clock, lifecycle, owners, store
from batchjobs.cli import cli
from batchjobs.errors import UserDisabled
from batchjobs.models import Job, User
from batchjobs.recurrence import Recurrence
from batchjobs.users import add_user
from tests.helpers import statuses, wait_for

pytestmark = pytest.mark.integration


def a_user() -> str:
    name = f"u{uuid.uuid4().hex[:8]}"
    add_user(name)
    return name


def gated(description: str, gate: str, **kwargs) -> JobSpec:
    job = JobSpec(description, **kwargs)
    job.add_task("G", "tests.processes.samples.wait_for_file", kwargs={"path": gate})
    return job


def test_disabling_a_user_holds_waiting_and_recurring_jobs_while_executing_ones_finish(
        servers, tmp_path):
    alice = a_user()
    gate = tmp_path / "gate"
    executing = batchjobs.submit(gated("executing", str(gate)), user=alice)
    recurring = batchjobs.submit(gated("recurring", str(gate), recurrence=Recurrence(
        cron=None, every=timedelta(days=1))), user=alice)
    later = JobSpec("later", run_at=clock.now() + timedelta(hours=1))
    later.add_task("A", "batchjobs.examples.noop")
    waiting = batchjobs.submit(later, user=alice)
    wait_for(lambda: all(statuses(batchjobs.status(j))["G"] == "executing"
                         for j in (executing, recurring)), timeout=60,
             message="both gated tasks executing")

    done = owners.disable_user(alice)
    assert done == {"user": alice, "held": [waiting], "executing": [executing, recurring]}
    shown = batchjobs.status(waiting)
    assert (shown["status"], shown["hold_reason"]) == ("hold", f"owner {alice} disabled")
    assert batchjobs.status(executing)["status"] == "executing"

    gate.write_text("open")       # the executing tasks finish, and so do their runs
    assert batchjobs.wait(executing, timeout=60) is not None
    ended = batchjobs.status(executing)
    assert ended["status"] == "ended" and statuses(ended) == {"G": "ended"}
    assert [a["outcome"] for a in batchjobs.attempts(executing)] == ["ended"]
    # the recurring job's next run is held, not waiting, once run 1 has ended
    wait_for(lambda: batchjobs.status(recurring)["status"] == "hold", timeout=60,
             message="the recurring job held after its run")
    shown = batchjobs.status(recurring)
    assert (shown["run"], shown["hold_reason"]) == (2, f"owner {alice} disabled")
    assert [(r["number"], r["status"]) for r in batchjobs.history(recurring)] == [
        (1, "ended"), (2, "hold")]
    assert [a["outcome"] for a in batchjobs.attempts(recurring)] == ["ended"]

    listed = {j["id"]: j for j in batchjobs.list_jobs()}
    assert listed[waiting]["hold_reason"] == f"owner {alice} disabled"
    with pytest.raises(UserDisabled, match=alice):
        lifecycle.release(waiting)
    owners.enable_user(alice)
    assert {batchjobs.status(j)["status"] for j in (waiting, recurring)} == {"hold"}
    lifecycle.release(waiting)
    assert batchjobs.status(waiting)["status"] == "waiting"


def test_a_reassigned_job_runs_as_its_new_user_and_its_history_says_who_changed_it(servers):
    alice, bob = a_user(), a_user()
    job = JobSpec("reassigned")
    job.add_task("W", "tests.processes.samples.whoami")
    job_id = batchjobs.submit(job, user=alice, hold=True)
    assert owners.reassign(job_id=job_id, to_user=bob, by="operator7") == [job_id]
    lifecycle.release(job_id)
    assert batchjobs.wait(job_id, timeout=60) is not None
    assert batchjobs.status(job_id)["status"] == "ended"
    assert [a["user"] for a in batchjobs.attempts(job_id)] == [bob]
    table = CliRunner().invoke(cli, ["history", str(job_id)]).stdout
    assert f"reassign by operator7: {alice} -> {bob}" in table


def test_a_due_job_whose_owner_is_disabled_is_held_by_the_housekeepers_not_started(servers):
    """A run that ended while its owner was being disabled may leave its job waiting: the
    housekeepers hold it when it falls due."""
    carol = a_user()
    later = JobSpec("race", run_at=clock.now() + timedelta(hours=1))
    later.add_task("A", "batchjobs.examples.noop")
    job_id = batchjobs.submit(later, user=carol)
    with store.transaction() as session:    # disabled without holding: the race's outcome
        session.execute(update(User).where(User.name == carol).values(
            disabled_at=clock.now()))
        session.execute(update(Job).where(Job.id == job_id).values(run_at=clock.now()))
    wait_for(lambda: batchjobs.status(job_id)["status"] == "hold", timeout=60,
             message="the due job held")
    assert batchjobs.status(job_id)["hold_reason"] == f"owner {carol} disabled"
    assert batchjobs.attempts(job_id) == []
    assert [r["status"] for r in batchjobs.history(job_id)] == ["hold"]
