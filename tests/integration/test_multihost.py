"""Batch servers on three hosts across a real network: Linux network namespaces.

The test makes three "hosts" (``ip netns add``, a veth pair each, addresses from the
benchmarking range 198.18.0.0/15, the host side in the root namespace), starts a
PostgreSQL (a throwaway cluster, ``initdb`` as the ``postgres`` user) and a Redis of its
own listening on the host-side addresses, and one batch server per namespace. It runs the
AX walkthrough "Batch processing with batch groups" (AOS1, AOS2, AOS3; BG1 on AOS2 and
AOS3), then cuts the link of the host running a task: the task is retried on the other
BG1 host after ``BATCHJOBS_SERVER_TIMEOUT``; once the link is healed, the cut-off server's
late outcome must change nothing. Everything made is torn down at the end, also on failure.
Where namespaces cannot be made (not root, no ``ip``) the test is skipped and says why.
"""

from __future__ import annotations

import glob
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

import batchjobs
from batchjobs import JobSpec, clock, store
from batchjobs.app import configure
from batchjobs.groups import add_group
from batchjobs.launch import wait_until_ready
from batchjobs.servers import set_server, show_server
from batchjobs.settings import HEARTBEAT_INTERVAL
from tests.helpers import by_name, wait_for, when

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
HOSTS = ("AOS1", "AOS2", "AOS3")
SERVER_TIMEOUT = 5.0
PROCESS_MODULE = "tests.processes.hosts"


def tool(name: str) -> str | None:
    """A system command, found on PATH or in the sbin folders (root's tools)."""
    return shutil.which(name, path=os.pathsep.join(
        filter(None, [os.environ.get("PATH"), "/usr/sbin", "/sbin"])))


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(argv[0]) or argv[0], *argv[1:]], capture_output=True, text=True,
                          timeout=60, check=check)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Host:
    """One namespace: its name, the veth end in the root namespace, both addresses."""

    server: str
    namespace: str
    veth: str
    gateway: str      # the root namespace's address on this link (where the services listen)
    address: str      # the namespace's own address

    def cut(self) -> None:
        run("ip", "link", "set", self.veth, "down")

    def heal(self) -> None:
        run("ip", "link", "set", self.veth, "up")


def _free_subnets(count: int) -> list[int]:
    """Third octets of 198.18.N.0/24 subnets that no interface here uses yet."""
    used = run("ip", "-4", "-o", "addr").stdout
    candidates = [n for n in range(100, 250) if f"198.18.{n}." not in used]
    start = random.randrange(0, len(candidates) - count)
    return candidates[start:start + count]


def _make_hosts(stack: ExitStack) -> list[Host]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add); multi-host test not run")
    if tool("ip") is None:
        pytest.skip("the ip command (iproute2) is missing; multi-host test not run")
    token = f"{os.getpid() % 10000:04d}"
    hosts = []
    for index, (server, octet) in enumerate(zip(HOSTS, _free_subnets(len(HOSTS)), strict=True)):
        namespace, veth, peer = f"bjh{token}{index}", f"bjh{token}{index}h", f"bjh{token}{index}n"
        run("ip", "netns", "del", namespace, check=False)     # left by a killed run
        run("ip", "link", "del", veth, check=False)
        made = run("ip", "netns", "add", namespace, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
        stack.callback(run, "ip", "netns", "del", namespace, check=False)
        stack.callback(run, "ip", "link", "del", veth, check=False)
        host = Host(server, namespace, veth, f"198.18.{octet}.1", f"198.18.{octet}.2")
        inside = ("ip", "netns", "exec", namespace)
        for argv in (("ip", "link", "add", veth, "type", "veth", "peer", "name", peer),
                     ("ip", "link", "set", peer, "netns", namespace),
                     ("ip", "addr", "add", f"{host.gateway}/24", "dev", veth),
                     ("ip", "link", "set", veth, "up"),
                     (*inside, "ip", "addr", "add", f"{host.address}/24", "dev", peer),
                     (*inside, "ip", "link", "set", peer, "up"),
                     (*inside, "ip", "link", "set", "lo", "up")):
            run(*argv)
        hosts.append(host)
    return hosts


def _postgres(stack: ExitStack, listen: list[str]) -> int:
    """A throwaway PostgreSQL cluster, run as ``postgres``, on ``listen`` and 127.0.0.1."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    runuser = tool("runuser")
    if not binaries or runuser is None:
        pytest.fail("PostgreSQL server binaries (initdb) and runuser are needed")
    bin_dir = Path(binaries[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="bj-multihost-pg-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    as_postgres = (runuser, "-u", "postgres", "--")
    made = subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U",
                           "postgres", "--auth=trust", "--no-sync"], capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 198.18.0.0/15 trust\n")
    port = free_port()
    options = (f"-p {port} -c listen_addresses='{','.join(['127.0.0.1', *listen])}' "
               f"-c unix_socket_directories='{folder}' -c fsync=off -c max_connections=200")
    started = subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                              str(folder / "log"), "-o", options, "-w", "-t", "120", "start"],
                             capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr + (
        (folder / "log").read_text() if (folder / "log").exists() else "")
    stack.callback(subprocess.run, [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data),
                                    "-m", "immediate", "-w", "stop"], capture_output=True,
                   timeout=120)
    return port


def _redis(stack: ExitStack, listen: list[str], folder: Path) -> int:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", *listen, "--port", str(port),
                             "--protected-mode", "no", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(proc.wait, 30)
    stack.callback(proc.terminate)
    return port


class NamespacedServer:
    """``batchjobs worker --server NAME`` run inside a namespace (``ip netns exec``); shaped
    like :class:`batchjobs.launch.ServerProcess` for :func:`wait_until_ready`."""

    def __init__(self, host: Host, env: dict[str, str], log_path: Path) -> None:
        self.name = host.server
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.started_at = clock.now()
        self.process = subprocess.Popen(
            [tool("ip") or "ip", "netns", "exec", host.namespace, sys.executable, "-c",
             "from batchjobs.cli import main; main()", "worker", "--server", host.server,
             "--loglevel", "INFO"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Installation:
    hosts: dict[str, Host]
    servers: dict[str, NamespacedServer]
    folder: Path


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    folder = tmp_path_factory.mktemp("multihost")
    saved = dict(os.environ)
    with ExitStack() as stack:
        hosts = _make_hosts(stack)
        gateways = [h.gateway for h in hosts]
        pg_port = _postgres(stack, gateways)
        redis_port = _redis(stack, gateways, folder)
        common = {"BATCHJOBS_SERVER_TIMEOUT": str(SERVER_TIMEOUT),
                  "BATCHJOBS_REPUBLISH_AFTER": "2", "BATCHJOBS_IMPORTS": PROCESS_MODULE,
                  "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                              os.environ.get("PYTHONPATH")]))}
        # This process (the submitter) reaches both services over loopback.
        os.environ.update(common, BATCHJOBS_HOME=str(folder),
                          BATCHJOBS_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:"
                                                 f"{pg_port}/postgres",
                          BATCHJOBS_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0")
        stack.callback(_restore_environment, saved)
        configure()
        store.reset_engines()
        store.get_engine()
        __import__(PROCESS_MODULE)
        wait_for(lambda: _redis_answers(redis_port), timeout=60, message="private Redis")
        add_group("BG1")
        set_server("AOS1", groups=["default"], threads=2)
        set_server("AOS2", groups=["BG1"], threads=2)
        set_server("AOS3", groups=["BG1"], threads=2)
        servers: dict[str, NamespacedServer] = {}
        stack.callback(lambda: [s.stop() for s in servers.values()])
        for host in hosts:
            env = {**os.environ, "BATCHJOBS_HOME": str(folder / host.server),
                   "BATCHJOBS_DATABASE_URL": f"postgresql+psycopg://postgres@{host.gateway}:"
                                             f"{pg_port}/postgres",
                   "BATCHJOBS_BROKER_URL": f"redis://{host.gateway}:{redis_port}/0"}
            (folder / host.server).mkdir()
            servers[host.server] = NamespacedServer(host, env, folder / f"{host.server}.log")
        wait_until_ready(list(servers.values()), timeout=120)
        for name in servers:
            wait_for(lambda n=name: _applies(n), timeout=60, message=f"{name} applies its record")
        yield Installation({h.server: h for h in hosts}, servers, folder)


def _restore_environment(saved: dict[str, str]) -> None:
    store.reset_engines()
    os.environ.clear()
    os.environ.update(saved)
    configure()


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port).ping())
    except redis.RedisError:
        return False


def _applies(name: str) -> bool:
    row = show_server(name)
    return bool(row["live"]) and row["applied"] == {"groups": row["groups"],
                                                     "threads": row["threads_now"]}


def test_servers_in_three_namespaces_reach_the_services_only_over_their_links(installation):
    for host in installation.hosts.values():
        assert show_server(host.server)["live"]
        # The namespace has no route to loopback services of the root namespace.
        blocked = run("ip", "netns", "exec", host.namespace, "python3", "-c",
                      "import socket,sys; s=socket.socket(); s.settimeout(2);"
                      f"sys.exit(s.connect_ex(('127.0.0.1', {6379})) == 0)", check=False)
        assert blocked.returncode == 0, "a namespace reached the root namespace's loopback"


def finished_lines(server: NamespacedServer) -> list[str]:
    """Celery's log lines of the server's finished batch tasks (success or failure)."""
    text = server.log_path.read_text(errors="replace")
    # A batch task's Celery name is its process, its id starts with "<job>:<task>:".
    return re.findall(r"Task [\w.]+\[\d+:[^\]]+\] (?:succeeded|raised)[^\n]*", text)


def run_mixed(bg1: str = "BG1") -> dict:
    job = JobSpec("mixed")
    for i in range(6):
        job.add_task(f"bg1 {i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.4}, group=bg1)
        job.add_task(f"default {i}", "batchjobs.examples.sleep", kwargs={"seconds": 0.4})
    job_id = batchjobs.submit(job)
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    return by_name(batchjobs.status(job_id))


def test_batch_groups_walkthrough_across_three_hosts(installation):
    """AX walkthrough 2: BG1 runs on AOS2 and AOS3 only, default on AOS1 only, until the
    default group is added to AOS2."""
    tasks = run_mixed()
    assert {tasks[f"bg1 {i}"]["server"] for i in range(6)} == {"AOS2", "AOS3"}
    assert {tasks[f"default {i}"]["server"] for i in range(6)} == {"AOS1"}

    set_server("AOS2", groups=["BG1", "default"])
    wait_for(lambda: _applies("AOS2") and sorted(show_server("AOS2")["applied"]["groups"])
             == ["BG1", "default"], timeout=60, message="AOS2 serves BG1 and default")
    try:
        tasks = run_mixed()
        assert {tasks[f"bg1 {i}"]["server"] for i in range(6)} <= {"AOS2", "AOS3"}
        assert {tasks[f"default {i}"]["server"] for i in range(6)} <= {"AOS1", "AOS2"}
        assert "AOS3" not in {tasks[f"default {i}"]["server"] for i in range(6)}
    finally:
        set_server("AOS2", groups=["BG1"])
        wait_for(lambda: _applies("AOS2") and show_server("AOS2")["applied"]["groups"]
                 == ["BG1"], timeout=60, message="AOS2 serves BG1 only again")


def test_a_cut_host_task_is_retried_elsewhere_and_its_late_outcome_changes_nothing(
        installation):
    gates = installation.folder / "gates"
    gates.mkdir()
    job = JobSpec("cut")
    job.add_task("T", f"{PROCESS_MODULE}.gated", kwargs={"folder": str(gates)}, group="BG1",
                 retries=1)
    job_id = batchjobs.submit(job)
    first = wait_for(lambda: (t := by_name(batchjobs.status(job_id))["T"])["status"]
                     == "executing" and t, timeout=60, message="T executing")
    cut_off = first["server"]
    assert cut_off in {"AOS2", "AOS3"}
    other = ({"AOS2", "AOS3"} - {cut_off}).pop()
    host = installation.hosts[cut_off]
    cut_at = time.monotonic()
    host.cut()
    try:
        def retried() -> list[dict] | None:
            rows = batchjobs.attempts(job_id)
            return rows if len(rows) == 2 and rows[1]["outcome"] == "running" else None
        rows = wait_for(retried, timeout=180, message="T retried on the other BG1 host")
        # Failed once its server had been silent for BATCHJOBS_SERVER_TIMEOUT: its last
        # heartbeat (it cannot beat while cut off) came before the cut, at most one
        # heartbeat interval before.
        assert time.monotonic() - cut_at >= SERVER_TIMEOUT - HEARTBEAT_INTERVAL
        last_beat = when(show_server(cut_off)["heartbeat_at"])
        assert (when(rows[0]["ended_at"]) - last_beat).total_seconds() >= SERVER_TIMEOUT
        assert rows[0]["server"] == cut_off and rows[0]["outcome"] == "error"
        assert f"no heartbeat for {SERVER_TIMEOUT:g}s" in rows[0]["error"]
        assert rows[1]["server"] == other
    finally:
        host.heal()
    wait_for(lambda: show_server(cut_off)["live"], timeout=120,
             message=f"{cut_off} beats again after the heal")

    # The cut-off server's attempt ends now, while the retry still runs elsewhere.
    server = installation.servers[cut_off]
    done_before = len(finished_lines(server))
    (gates / "open-1").touch()
    wait_for(lambda: len(finished_lines(server)) > done_before, timeout=120,
             message=f"{cut_off} finished its cut-off attempt and reported it")
    # It reached the database with its outcome (a recording that failed would have raised).
    assert " succeeded " in finished_lines(server)[done_before], finished_lines(server)
    during = batchjobs.attempts(job_id)
    assert [(a["number"], a["server"], a["outcome"]) for a in during] == [
        (1, cut_off, "error"), (2, other, "running")]
    assert by_name(batchjobs.status(job_id))["T"]["status"] == "executing"

    (gates / "open-2").touch()
    assert batchjobs.wait(job_id, timeout=120) is batchjobs.JobStatus.ENDED
    final = batchjobs.attempts(job_id)
    assert [(a["number"], a["server"], a["outcome"]) for a in final] == [
        (1, cut_off, "error"), (2, other, "ended")]
    # Ran once where it was cut off, once by the retry (retries=1): never a third time.
    assert (gates / "runs").read_text().split("\n")[:-1] == [f"1 {cut_off}", f"2 {other}"]
