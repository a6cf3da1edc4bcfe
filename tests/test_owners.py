"""Owners from the CLI on the embedded default (no server: only held or future jobs):
disable holds with the reason, enable releases nothing, reassign is audited, remove is
refused while the user owns jobs, submitting as a disabled or (enforced) unknown user is
refused with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_validation import home, run, stored_jobs  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("home")

LATER = ("description: {name}\nrun_at: '2099-01-01T00:00:00Z'\n"
         "tasks:\n  - {{name: A, process: batchjobs.examples.noop}}\n")


def submit(tmp_path: Path, name: str, *args: str, user: str = "alice") -> int:
    path = tmp_path / f"{name}.yaml"
    path.write_text(LATER.format(name=name))
    result = run("submit", str(path), "--user", user, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    return int(result.stdout)


def status(job_id: int) -> dict:
    result = run("status", str(job_id), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_disable_holds_waiting_jobs_with_the_reason_and_enable_releases_nothing(tmp_path):
    assert run("user", "add", "alice").exit_code == 0
    waiting = submit(tmp_path, "waiting")
    held_by_hand = submit(tmp_path, "by hand", "--hold")
    others = submit(tmp_path, "others", user="bob")
    disabled = run("user", "disable", "alice")
    assert disabled.exit_code == 0, disabled.output
    assert f"1 waiting job(s) held ({waiting})" in disabled.stdout
    shown = status(waiting)
    assert (shown["status"], shown["hold_reason"]) == ("hold", "owner alice disabled")
    assert status(held_by_hand)["hold_reason"] is None
    assert status(others)["status"] == "waiting"
    assert "held: owner alice disabled" in run("status", str(waiting)).stdout
    listed = {j["id"]: j for j in stored_jobs()}
    assert listed[waiting]["hold_reason"] == "owner alice disabled"
    assert "(held: owner alice disabled)" in run("list").stdout
    history = json.loads(run("history", str(waiting), "--json").stdout)
    assert [r["status"] for r in history] == ["hold"]
    # release refused while alice is disabled, naming her and the job
    refused = run("release", str(waiting))
    assert refused.exit_code == 2 and "'alice'" in refused.stderr and str(waiting) in refused.stderr
    enabled = run("user", "enable", "alice", "--json")
    assert json.loads(enabled.stdout) == {"user": "alice", "held": [waiting]}
    assert status(waiting)["status"] == "hold"      # enabling releases nothing by itself
    assert run("release", str(waiting)).exit_code == 0
    shown = status(waiting)
    assert (shown["status"], shown["hold_reason"]) == ("waiting", None)
    users = json.loads(run("user", "list", "--json").stdout)
    assert [(u["name"], u["disabled"]) for u in users] == [("alice", False)]


def test_a_disabled_user_cannot_submit_and_an_unknown_one_only_when_not_enforced(
        tmp_path, monkeypatch):
    assert run("user", "add", "alice").exit_code == 0
    assert run("user", "disable", "alice").exit_code == 0
    path = tmp_path / "j.yaml"
    path.write_text(LATER.format(name="j"))
    refused = run("submit", str(path), "--user", "alice")
    assert refused.exit_code == 2 and "'alice' is disabled" in refused.stderr
    assert "Traceback" not in refused.output
    assert stored_jobs() == []
    # unknown names submit, as before, unless known users are required
    unknown = submit(tmp_path, "unknown", user="nobody")
    monkeypatch.setenv("BATCHJOBS_REQUIRE_KNOWN_USERS", "1")
    refused = run("submit", str(path), "--user", "stranger")
    assert refused.exit_code == 2 and "'stranger'" in refused.stderr
    assert [j["id"] for j in stored_jobs()] == [unknown]
    assert run("user", "add", "carol").exit_code == 0
    submit(tmp_path, "known", user="carol")
    monkeypatch.setenv("BATCHJOBS_REQUIRE_KNOWN_USERS", "maybe")
    bad = run("list")
    assert bad.exit_code == 2 and "BATCHJOBS_REQUIRE_KNOWN_USERS" in bad.stderr


def test_reassign_one_job_or_all_of_a_user_is_audited_and_shown_by_history(tmp_path,
                                                                            monkeypatch):
    for name in ("alice", "bob", "carol"):
        assert run("user", "add", name).exit_code == 0
    first = submit(tmp_path, "first")
    second = submit(tmp_path, "second")
    monkeypatch.setenv("USER", "operator1")
    monkeypatch.setenv("LOGNAME", "operator1")
    moved = run("job", "reassign", str(first), "--to", "bob")
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.strip() == f"1 job(s) now run as bob: {first}"
    shown = status(first)
    assert shown["created_by"] == "bob"
    [change] = shown["changes"]
    assert (change["by"], change["action"], change["from"], change["to"]) == (
        "operator1", "reassign", "alice", "bob")
    assert change["at"].endswith("Z")
    table = run("history", str(first)).stdout
    assert "changes:" in table and "reassign by operator1: alice -> bob" in table
    everything = json.loads(run("job", "reassign", "--from", "bob", "--to", "carol",
                                "--json").stdout)
    assert everything == {"to": "carol", "jobs": [first]}
    assert [(c["from"], c["to"]) for c in status(first)["changes"]] == [
        ("alice", "bob"), ("bob", "carol")]
    assert status(second)["created_by"] == "alice" and status(second)["changes"] == []
    # bad input: exit 2 naming the culprit, nothing changed
    for args, culprit in ((["999", "--to", "bob"], "999"),
                          ([str(second), "--from", "alice", "--to", "bob"], "--from"),
                          (["--to", "bob"], "JOB_ID")):
        refused = run("job", "reassign", *args)
        assert refused.exit_code == 2 and culprit in refused.stderr, refused.output
    assert run("user", "disable", "bob").exit_code == 0
    refused = run("job", "reassign", str(second), "--to", "bob")
    assert refused.exit_code == 2 and "'bob' is disabled" in refused.stderr
    assert status(second)["created_by"] == "alice"


def test_remove_is_refused_while_the_user_owns_jobs(tmp_path):
    assert run("user", "add", "alice").exit_code == 0
    assert run("user", "add", "bob").exit_code == 0
    submit(tmp_path, "one")
    submit(tmp_path, "two")
    refused = run("user", "remove", "alice")
    assert refused.exit_code == 2
    assert "'alice' owns 2 job(s)" in refused.stderr
    assert [u["name"] for u in json.loads(run("user", "list", "--json").stdout)] == [
        "alice", "bob"]
    assert run("job", "reassign", "--from", "alice", "--to", "bob").exit_code == 0
    removed = run("user", "remove", "alice")
    assert removed.exit_code == 0 and "user alice removed" in removed.stdout
    assert [u["name"] for u in json.loads(run("user", "list", "--json").stdout)] == ["bob"]
    assert run("user", "remove", "alice").exit_code == 2   # unknown now
