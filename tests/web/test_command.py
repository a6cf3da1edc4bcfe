"""``batchjobs web`` as a process: it listens on 127.0.0.1 and asks for authentication."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import pytest

from tests.helpers import wait_for
from tests.test_cli_validation import UNSET

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_batchjobs_web_serves_the_openapi_document_and_401s_without_a_token(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["BATCHJOBS_HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from batchjobs.cli import main; main()", "web", "--port",
         str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/api/openapi.json") or proc.poll() is not None,
                 timeout=60, message="batchjobs web answers")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert httpx.get(f"{base}/api/jobs").status_code == 401
        assert httpx.get(f"{base}/login").status_code == 200
        assert httpx.get(f"{base}/static/console.js").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
