"""Starting and stopping batch-server processes on this host (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select

from . import clock, store
from .errors import ServerStartError
from .models import BatchServer
from .settings import Settings


class ServerProcess:
    """A ``batchjobs worker`` child process, stopped with a warm shutdown."""

    def __init__(self, name: str, *, groups: Sequence[str] | None = None,
                 threads: int | None = None, env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, extra: Sequence[str] = ()) -> None:
        """``groups``/``threads`` register a server without a record; otherwise the record
        decides."""
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            self._log = open(log_path, "ab")
        argv = [sys.executable, "-c", "from batchjobs.cli import main; main()", "worker",
                "--server", name, "--loglevel", "INFO", *extra]
        if groups is not None:
            argv += ["--groups", ",".join(groups)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        self.started_at = clock.now()
        self.process = subprocess.Popen(argv, env=dict(env if env is not None else os.environ),
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def terminate(self) -> None:
        """Ask for a warm shutdown (running tasks finish; billiard needs a few seconds)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not isinstance(self._log, int):
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_ready(servers: Sequence[ServerProcess], *, timeout: float = 60.0,
                     settings: Settings | None = None) -> None:
    """Block until every server has registered (heartbeat after its start)."""
    deadline = time.monotonic() + timeout
    names = {s.name: s.started_at for s in servers}
    while True:
        for server in servers:
            if server.process.poll() is not None:
                raise ServerStartError(server.name, f"batch server {server.name} exited with "
                                       f"code {server.process.returncode}\n"
                                       f"{server.log_tail()}")
        if _registered(names, settings) == set(names):
            return
        if time.monotonic() > deadline:
            missing = sorted(set(names) - _registered(names, settings))
            raise ServerStartError(", ".join(missing), f"batch servers not ready after "
                                   f"{timeout}s: {missing}")
        time.sleep(0.1)


def _registered(names: Mapping[str, datetime], settings: Settings | None) -> set[str]:
    with store.read_session(settings) as session:
        rows = session.execute(select(BatchServer.name, BatchServer.heartbeat_at)
                               .where(BatchServer.name.in_(list(names)))).all()
    return {name for name, beat in rows if beat is not None and beat >= names[name]}


def stop_all(servers: Sequence[ServerProcess], timeout: float = 30.0) -> None:
    """Warm-shut-down several servers at once (each takes seconds to exit)."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop(timeout)
