"""Alert sinks against real local servers (127.0.0.1 only): an aiosmtpd SMTP server, an
HTTP server in a thread, and "down" sinks (a port nothing listens on, or a socket that
accepts connections but never answers)."""

from __future__ import annotations

import base64
import email
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from batchjobs.errors import DeliveryError
from batchjobs.sinks import backoff, email_message, mask_url, post_webhook, send_email
from tests.helpers import wait_for

HOST = "127.0.0.1"
SENDER = "batchjobs@example.test"
SHORT = 1.0  # timeout of calls that must fail fast

ALERT: dict[str, Any] = {
    "id": 7, "job_id": 12, "run": 3, "description": "JOB 1", "status": "error",
    "user": "alice", "email": "alice@example.test", "created_at": "2026-11-23T10:00:00Z",
    "failed_tasks": [{"name": "TASK 2", "error": "ValueError: failed on purpose",
                      "attempts": 2}],
    "message": "Job 12 'JOB 1' run 3 ended with status error: 1 task failed (TASK 2)",
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 must go there, not to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_port() -> int:
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(8)
        yield sock.getsockname()[1]


# -- SMTP server -------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping every message it takes."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


USERS = {"al@ice": "p@ss/w:rd"}


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    login, password = auth_data.login.decode(), auth_data.password.decode()
    ok = USERS.get(login) == password
    if ok:
        server.event_handler.logins.append(login)
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int

    def url(self, scheme: str = "smtp", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}{HOST}:{self.port}"


def _start_smtp(**smtp_options: Any) -> tuple[Controller, SmtpServer]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname=HOST, port=free_port(),
                            server_hostname="localhost", ready_timeout=10, **smtp_options)
    controller.start()
    return controller, SmtpServer(mailbox, controller.port)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    controller, server = _start_smtp()
    yield server
    controller.stop()


#: aiosmtpd warns (rightly) about AUTH without TLS; the test server allows it on purpose.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def smtp_auth() -> Iterator[SmtpServer]:
    """An SMTP server that wants a login (allowed without TLS, for the test only)."""
    controller, server = _start_smtp(authenticator=authenticate, auth_required=True,
                                     auth_require_tls=False)
    yield server
    controller.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1, made by the openssl tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def trust(tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ssl.create_default_context() trust the test certificate (and only it)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _server_context(tls_cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, tls_cert))
    return context


@pytest.fixture
def smtp_starttls(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """An SMTP server that offers STARTTLS and wants it before AUTH."""
    controller, server = _start_smtp(tls_context=_server_context(tls_cert), require_starttls=True,
                                     authenticator=authenticate)
    yield server
    controller.stop()


@pytest.fixture
def smtps(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """An SMTP server speaking TLS from the first byte (aiosmtpd does not count implicit
    TLS as TLS for AUTH, hence auth_require_tls=False)."""
    controller, server = _start_smtp(ssl_context=_server_context(tls_cert),
                                     authenticator=authenticate, auth_require_tls=False)
    yield server
    controller.stop()


# -- HTTP server -------------------------------------------------------------


@dataclass
class Hook:
    """A webhook receiver: records each POST; answers ``status`` (and ``location``)."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 204
    location: str | None = None

    def url(self, path: str = "/hook", userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}{HOST}:{self.port}{path}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append({"method": "POST", "path": self.path,
                                   "headers": dict(self.headers), "body": body})
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            state.requests.append({"method": "GET", "path": self.path,
                                   "headers": dict(self.headers), "body": b""})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="test-hook", daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def fails_fast(call: Any, *args: Any, **kwargs: Any) -> DeliveryError:
    """Run ``call``; return the DeliveryError it must raise well within a few seconds."""
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        call(*args, **kwargs)
    assert time.monotonic() - started < 5 * SHORT
    return caught.value


# -- mask_url / backoff ------------------------------------------------------


@pytest.mark.parametrize(("url", "masked"), [
    ("smtp://bob:s3cret@mail.example:25", "smtp://bob:***@mail.example:25"),
    ("https://u:tok%2Fen@hooks.example/x?y=1", "https://u:***@hooks.example/x?y=1"),
    ("smtp://bob@mail.example", "smtp://bob@mail.example"),
    ("smtp://mail.example:2525", "smtp://mail.example:2525"),
    ("https://hooks.example/@team", "https://hooks.example/@team"),
    ("smtp://u:p@ss@mail.example", "smtp://u:***@mail.example"),
    ("smtp://u:pa/ss#x@mail.example", "smtp://u:***@mail.example"),
    ("smtp://u:secret@", "smtp://u:***@"),
    ("not a url", "not a url"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff(1, base=0.5, cap=10) == 0.5
    assert backoff(5, base=0.5, cap=10) == 8
    assert backoff(6, base=0.5, cap=10) == 10
    assert backoff(10_000) == 300.0
    assert backoff(3) == backoff(3)
    with pytest.raises(ValueError):
        backoff(0)


# -- e-mail ------------------------------------------------------------------


def test_email_message_has_subject_body_and_payload() -> None:
    msg = email_message(ALERT, sender=SENDER, recipient="alice@example.test")
    assert msg["Subject"] == "[batchjobs] job 12 'JOB 1' run 3: error"
    assert msg["From"] == SENDER
    assert msg["To"] == "alice@example.test"
    assert msg["Message-ID"] == "<batchjobs.alert.7@example.test>"
    body = msg.get_content()
    assert ALERT["message"] in body
    assert "Status:  error" in body
    assert "User:    alice" in body
    assert "  - TASK 2 (2 attempts): ValueError: failed on purpose" in body
    payload = body.split("Alert payload (JSON):\n", 1)[1]
    assert json.loads(payload) == ALERT


def test_email_subject_stays_on_one_line() -> None:
    alert = dict(ALERT, description="two\nlines", failed_tasks=[
        {"name": "T", "error": "Traceback:\n  boom\nKeyError: 'x'", "attempts": 1}])
    msg = email_message(alert, sender=SENDER, recipient="alice@example.test")
    assert msg["Subject"] == "[batchjobs] job 12 'two lines' run 3: error"
    body = msg.get_content()
    assert "  - T (1 attempt): Traceback:\n        boom\n      KeyError: 'x'" in body


def test_send_email_delivers(smtp: SmtpServer) -> None:
    send_email(ALERT, smtp_url=smtp.url(), sender=SENDER, recipient="alice@example.test",
               timeout=5)
    mail_from, rcpt_tos, message = wait_for(lambda: smtp.mailbox.messages, timeout=10,
                                            message="message received")[0]
    assert mail_from == SENDER
    assert rcpt_tos == ["alice@example.test"]
    assert message["Subject"] == "[batchjobs] job 12 'JOB 1' run 3: error"
    assert message["To"] == "alice@example.test"
    body = message.get_content()
    assert "TASK 2" in body
    assert "ValueError: failed on purpose" in body


def test_send_email_carries_non_ascii_text(smtp: SmtpServer) -> None:
    alert = dict(ALERT, description="Clôture", failed_tasks=[
        {"name": "TÂCHE 2", "error": "ValueError: échec voulu", "attempts": 1}])
    send_email(alert, smtp_url=smtp.url(), sender=SENDER, recipient="alice@example.test",
               timeout=5)
    message = smtp.mailbox.messages[0][2]
    assert message["Subject"] == "[batchjobs] job 12 'Clôture' run 3: error"
    assert "  - TÂCHE 2 (1 attempt): ValueError: échec voulu" in message.get_content()


@AUTH_WITHOUT_TLS
def test_send_email_logs_in_with_decoded_credentials(smtp_auth: SmtpServer) -> None:
    url = smtp_auth.url(userinfo="al%40ice:p%40ss%2Fw%3Ard")
    send_email(ALERT, smtp_url=url, sender=SENDER, recipient="alice@example.test", timeout=5)
    assert smtp_auth.mailbox.logins == ["al@ice"]
    assert len(smtp_auth.mailbox.messages) == 1


@AUTH_WITHOUT_TLS
def test_send_email_refused_login_does_not_show_the_password(smtp_auth: SmtpServer) -> None:
    url = smtp_auth.url(userinfo="al%40ice:wrong-secret")
    error = fails_fast(send_email, ALERT, smtp_url=url, sender=SENDER,
                       recipient="alice@example.test", timeout=SHORT)
    assert error.sink == "email"
    assert "login refused: 535" in str(error)
    assert "wrong-secret" not in str(error)
    assert "al%40ice:***@" in str(error)
    assert smtp_auth.mailbox.messages == []


def test_send_email_refused_recipient(smtp: SmtpServer) -> None:
    smtp.mailbox.refuse.add("nobody@example.test")
    error = fails_fast(send_email, ALERT, smtp_url=smtp.url(), sender=SENDER,
                       recipient="nobody@example.test", timeout=SHORT)
    assert "recipient nobody@example.test refused: 550" in str(error)


def test_send_email_to_a_down_server(dead_port: int) -> None:
    url = f"smtp://mailer:secret@{HOST}:{dead_port}"
    error = fails_fast(send_email, ALERT, smtp_url=url, sender=SENDER,
                       recipient="alice@example.test", timeout=SHORT)
    assert error.sink == "email"
    assert "connection refused" in str(error)
    assert "secret" not in str(error)
    assert f"smtp://mailer:***@{HOST}:{dead_port}" in str(error)


def test_send_email_to_a_silent_server_times_out(silent_port: int) -> None:
    error = fails_fast(send_email, ALERT, smtp_url=f"smtp://{HOST}:{silent_port}",
                       sender=SENDER, recipient="alice@example.test", timeout=0.3)
    assert "timed out after 0.3s" in str(error)


@pytest.mark.parametrize("scheme", ["smtps", "smtp+starttls"])
def test_send_email_tls_schemes_insist_on_tls(smtp: SmtpServer, scheme: str) -> None:
    """The test server has no TLS: implicit TLS fails its handshake, STARTTLS is not
    offered; neither falls back to plain text."""
    error = fails_fast(send_email, ALERT, smtp_url=smtp.url(scheme), sender=SENDER,
                       recipient="alice@example.test", timeout=SHORT)
    assert error.sink == "email"
    assert ("TLS failed" if scheme == "smtps" else "STARTTLS extension not supported") \
        in str(error)
    assert smtp.mailbox.messages == []


@pytest.mark.usefixtures("trust")
def test_send_email_over_starttls_with_login(smtp_starttls: SmtpServer) -> None:
    url = smtp_starttls.url("smtp+starttls", userinfo="al%40ice:p%40ss%2Fw%3Ard")
    send_email(ALERT, smtp_url=url, sender=SENDER, recipient="alice@example.test", timeout=5)
    assert smtp_starttls.mailbox.logins == ["al@ice"]
    assert smtp_starttls.mailbox.messages[0][2]["Subject"].startswith("[batchjobs] job 12")


@pytest.mark.usefixtures("trust")
def test_send_email_over_implicit_tls_with_login(smtps: SmtpServer) -> None:
    url = smtps.url("smtps", userinfo="al%40ice:p%40ss%2Fw%3Ard")
    send_email(ALERT, smtp_url=url, sender=SENDER, recipient="alice@example.test", timeout=5)
    assert smtps.mailbox.logins == ["al@ice"]
    assert smtps.mailbox.messages[0][1] == ["alice@example.test"]


def test_send_email_checks_the_certificate(smtps: SmtpServer,
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    empty = tmp_path / "no-ca.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    error = fails_fast(send_email, ALERT, smtp_url=smtps.url("smtps"), sender=SENDER,
                       recipient="alice@example.test", timeout=SHORT)
    assert "TLS failed" in str(error) and "certificate verify failed" in str(error)
    assert smtps.mailbox.messages == []


def test_send_email_without_recipient(dead_port: int) -> None:
    for recipient in ("", "  "):
        error = fails_fast(send_email, ALERT, smtp_url=f"smtp://{HOST}:{dead_port}",
                           sender=SENDER, recipient=recipient)
        assert error.sink == "email"
        assert str(error) == "email: user alice has no email address"


@pytest.mark.parametrize("url", [
    "smtp://u:secret@", "http://u:secret@127.0.0.1/", "smtp://u:secret@127.0.0.1:port",
    "smtp://u:sec/ret@127.0.0.1",
])
def test_send_email_bad_url(url: str) -> None:
    error = fails_fast(send_email, ALERT, smtp_url=url, sender=SENDER,
                       recipient="alice@example.test", timeout=SHORT)
    assert "bad SMTP URL" in str(error)
    assert "u:***@" in str(error)
    assert "secret" not in str(error) and "sec/ret" not in str(error)


# -- webhook -----------------------------------------------------------------


def test_post_webhook_delivers_json(hook: Hook) -> None:
    post_webhook(ALERT, url=hook.url(), timeout=5)
    request = wait_for(lambda: hook.requests, timeout=10, message="POST received")[0]
    assert request["method"] == "POST"
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == "batchjobs"
    assert "Authorization" not in request["headers"]
    assert json.loads(request["body"]) == ALERT
    assert request["body"] == json.dumps(ALERT).encode()


def test_post_webhook_sends_url_credentials_as_basic_auth(hook: Hook) -> None:
    post_webhook(ALERT, url=hook.url(userinfo="svc:t%40ken"), timeout=5)
    request = hook.requests[0]
    assert request["path"] == "/hook"
    expected = base64.b64encode(b"svc:t@ken").decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"


def test_post_webhook_answering_500(hook: Hook) -> None:
    hook.status = 500
    url = hook.url(userinfo="svc:secret")
    error = fails_fast(post_webhook, ALERT, url=url, timeout=SHORT)
    assert error.sink == "webhook"
    assert "500" in str(error)
    assert f"http://svc:***@{HOST}:{hook.port}/hook" in str(error)
    assert "secret" not in str(error)
    assert len(hook.requests) == 1


def test_post_webhook_does_not_follow_redirects(hook: Hook) -> None:
    hook.status = 302
    hook.location = hook.url("/elsewhere")
    error = fails_fast(post_webhook, ALERT, url=hook.url(), timeout=SHORT)
    assert "302" in str(error)
    assert [r["path"] for r in hook.requests] == ["/hook"]


def test_post_webhook_to_a_down_server(dead_port: int) -> None:
    url = f"http://svc:secret@{HOST}:{dead_port}/hook"
    error = fails_fast(post_webhook, ALERT, url=url, timeout=SHORT)
    assert error.sink == "webhook"
    assert "connection refused" in str(error)
    assert f"http://svc:***@{HOST}:{dead_port}/hook" in str(error)
    assert "secret" not in str(error)


def test_post_webhook_to_a_silent_server_times_out(silent_port: int) -> None:
    error = fails_fast(post_webhook, ALERT, url=f"http://{HOST}:{silent_port}/", timeout=0.3)
    assert "timed out after 0.3s" in str(error)


@pytest.mark.parametrize("url", [
    "ftp://u:secret@127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:8080/hook",
    "http://u:secret@127.0.0.1:port/", "http:///nohost",
])
def test_post_webhook_bad_url(url: str) -> None:
    error = fails_fast(post_webhook, ALERT, url=url, timeout=SHORT)
    assert error.sink == "webhook"
    assert "bad webhook URL" in str(error)
    assert "secret" not in str(error)
