"""Private PostgreSQL and Redis servers for the fault tests, on ports of their own, so that
stopping and restarting them never touches the shared services (127.0.0.1 only)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from batchjobs import store
from batchjobs.app import configure
from tests.helpers import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else name


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, run as the ``postgres`` user (trust
    authentication, no fsync: it is thrown away, and only its processes ever crash)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="batchjobs-pg-"))
        self.data = self.folder / "data"
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   "-c fsync=off")   # a crash of the server (not of the machine) keeps commits
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-l",
                          str(self.folder / "log"), "-w", "-t", "120", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` (connections dropped) or ``immediate`` (as if it crashed)."""
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass        # not running
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """A Redis server that persists nothing: a restart empties it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_for(lambda: self._pings(client), timeout=60, message="private Redis answers")

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        """Gone at once, with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.kill()


def environment_of(*, database_url: str, broker_url: str) -> dict[str, str]:
    """The variables that point this process and the servers it starts at them."""
    return {"BATCHJOBS_DATABASE_URL": database_url, "BATCHJOBS_BROKER_URL": broker_url,
            "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "5")}


class CuttableProxy:
    """A TCP proxy from a free port of 127.0.0.1 to ``target``: a network path a test can
    cut (every connection dropped, new ones refused) and heal, between one server and a
    shared service."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = True
        self.muted = False
        self.lock = threading.Lock()
        self.upstreams: set[socket.socket] = set()
        self.sockets: set[socket.socket] = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, upstream))
                self.upstreams.add(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not (self.muted and source in self.upstreams):
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)
            self.upstreams.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        self.open = False
        with self.lock:
            doomed = list(self.sockets)
        for sock in doomed:
            self._drop(sock)

    def heal(self) -> None:
        self.open = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


@contextmanager
def pointed_at(**variables: str) -> Iterator[None]:
    """This process (and the servers it starts) on other services for one test."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    store.reset_engines()
    configure()
    store.get_engine()        # the schema, before any server races for it
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        store.reset_engines()
        configure()
