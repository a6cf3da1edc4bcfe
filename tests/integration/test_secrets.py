"""Passwords on both URLs, read from files: none appears in a log, an output, a traceback or
a process title.

The test makes its own PostgreSQL role with a password (and a schema it owns) and starts
its own Redis with ``requirepass`` on a free port of 127.0.0.1; every batchjobs process
(a batch server, the CLI) gets the URLs only through ``BATCHJOBS_*_URL_FILE``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from batchjobs.launch import ServerProcess
from tests.conftest import PG_URL
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from batchjobs.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A Redis of this test's own on 127.0.0.1 that wants a password."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed (Debian package redis-server)")
    password, port = f"rds-{secrets.token_hex(8)}", free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--requirepass", password, "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, password=password)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
    try:
        wait_for(answers, timeout=60, message="the private Redis answers")
        yield port, password
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def secret_role() -> Iterator[tuple[str, str, str]]:
    """A PostgreSQL role with a password, owning a schema of its own."""
    role, password = f"bj_secret_{secrets.token_hex(4)}", f"pg-{secrets.token_hex(8)}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        conn.execute(text(f"CREATE SCHEMA {role} AUTHORIZATION {role}"))
    try:
        yield role, password, role
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {role} CASCADE"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def url_with_credentials(role: str, password: str, schema: str) -> str:
    base = PG_URL.split("://", 1)[1].split("@", 1)[1]          # host:port/database
    return (f"postgresql+psycopg://{role}:{password}@{base}"
            f"?options=-csearch_path%3D{schema}")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def titles(pid: int) -> list[str]:
    """The command lines (process titles) of ``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            found.append(Path(f"/proc/{current}/cmdline").read_bytes().replace(b"\0", b" ")
                         .decode(errors="replace"))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def test_passwords_on_both_urls_never_show(tmp_path, private_redis, secret_role):
    redis_port, redis_password = private_redis
    role, pg_password, schema = secret_role
    files = {"BATCHJOBS_DATABASE_URL_FILE": url_with_credentials(role, pg_password, schema),
             "BATCHJOBS_BROKER_URL_FILE": f"redis://:{redis_password}@127.0.0.1:{redis_port}/0"}
    env = {k: v for k, v in os.environ.items()
           if k not in ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL")}
    env.update(BATCHJOBS_HOME=str(tmp_path), BATCHJOBS_SERVER_TIMEOUT="3")
    for variable, url in files.items():
        path = tmp_path / variable.lower()
        path.write_text(url + "\n")
        path.chmod(0o600)
        env[variable] = str(path)
    passwords = (pg_password, redis_password)
    seen: dict[str, str] = {}

    port = free_port()
    server = ServerProcess("Secretive", groups=["default"], threads=1,
                           env={**env, "BATCHJOBS_METRICS_PORT": str(port)},
                           log_path=tmp_path / "Secretive.log")
    try:
        job_file = tmp_path / "job.json"
        job_file.write_text(json.dumps({"description": "secrets", "tasks": [
            {"name": "ok", "process": "batchjobs.examples.noop"},
            {"name": "boom", "process": "batchjobs.examples.fail",
             "kwargs": {"message": "a traceback"}, "depends_on": [{"task": "ok"}]}]}))
        submitted = run(env, "submit", str(job_file))
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        waited = run(env, "wait", job_id, "--timeout", "90")
        assert waited.returncode == 1, waited          # the job ended error, as meant
        for args in (("status", job_id), ("status", job_id, "--json"), ("list",),
                     ("server", "list", "--json"), ("server", "show", "Secretive"),
                     ("server", "health", "Secretive"), ("history", job_id)):
            answer = run(env, *args)
            assert answer.returncode == 0, (args, answer.stderr)
            seen[" ".join(args)] = answer.stdout + answer.stderr
        assert '"error"' in seen[f"status {job_id} --json"] and "a traceback" in seen[
            f"status {job_id}"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            seen["/metrics"] = page.read().decode()
        seen["process titles"] = "\n".join(titles(server.process.pid))
        assert len(titles(server.process.pid)) >= 3        # main, pool process, housekeeper
    finally:
        server.stop()
    seen["server log"] = (tmp_path / "Secretive.log").read_text(errors="replace")
    assert "Traceback" in seen["server log"] and "a traceback" in seen["server log"]
    assert "redis://:**@127.0.0.1" in seen["server log"]          # Celery's banner, masked

    # Errors with the URLs in hand: a database that refuses, a broker that is not there.
    down = tmp_path / "down"
    down.write_text(files["BATCHJOBS_DATABASE_URL_FILE"].replace(
        PG_URL.split("@", 1)[1].split("/", 1)[0], "127.0.0.1:1"))
    refused = run({**env, "BATCHJOBS_DATABASE_URL_FILE": str(down)}, "status", job_id)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "127.0.0.1:1" in refused.stderr and "***" in refused.stderr
    seen["database refused"] = refused.stdout + refused.stderr
    closed = tmp_path / "closed"
    closed.write_text(f"redis://:{redis_password}@127.0.0.1:{free_port()}/0")
    undelivered = run({**env, "BATCHJOBS_BROKER_URL_FILE": str(closed)}, "submit",
                      str(job_file))            # whatever it prints (a traceback today)
    seen["broker refused"] = undelivered.stdout + undelivered.stderr
    assert seen["broker refused"].strip()
    both = run({**env, "BATCHJOBS_BROKER_URL": "redis://127.0.0.1:1/0"}, "list")
    assert both.returncode == 2 and "BATCHJOBS_BROKER_URL_FILE" in both.stderr
    seen["both set"] = both.stdout + both.stderr

    leaks = {where: password for where, shown in seen.items() for password in passwords
             if password in shown}
    assert leaks == {}, leaks
