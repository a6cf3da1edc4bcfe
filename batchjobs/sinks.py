"""Alert delivery: send one alert to an e-mail address (SMTP) or a webhook (HTTP POST).

Sinks are best effort. A job's outcome is decided and stored before any alert is sent,
and nothing here can change it: a sink that is down, slow or refusing only delays the
alert. So each function makes exactly **one** attempt and raises
:class:`~batchjobs.errors.DeliveryError` on any failure; it never retries, sleeps or
touches the database. The caller keeps the alert's ``attempts`` and ``next_try_at`` and
tries again after :func:`backoff` seconds.

Sink URLs may carry credentials (``smtp://user:password@host``,
``https://user:token@hooks.example/x``). A password never appears in an error message or
a log line: every URL shown goes through :func:`mask_url` first.

Only the standard library is used, so delivery works wherever batchjobs runs.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from http.client import HTTPException
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from .errors import DeliveryError
from .secrets import MASK, mask_url, port_ok

log = logging.getLogger(__name__)

#: ``User-Agent`` of webhook requests.
USER_AGENT = "batchjobs"
#: Default port of each SMTP URL scheme.
SMTP_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}
#: At most this many bytes of a webhook's answer are read (and then ignored).
_MAX_ANSWER = 64 * 1024


# -- URLs --------------------------------------------------------------------


def _credentials(parts: SplitResult) -> tuple[str | None, str | None]:
    """The URL-decoded user and password of a split URL (``None`` when absent)."""
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return user, password


def _scrub(text: str, password: str | None, raw: str | None) -> str:
    """``text`` with any occurrence of the password (decoded or as written) masked."""
    for secret in (password, raw):
        if secret:
            text = text.replace(secret, MASK)
    return text


# -- backoff -----------------------------------------------------------------


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``,
    at most ``cap``. Deterministic (no jitter): 2, 4, 8, ... 256, 300, 300, ...

    After the n-th failed delivery the caller sets ``next_try_at = now + backoff(n)``.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, not {attempt!r}")
    if base < 0 or cap < 0:
        raise ValueError(f"base and cap must not be negative (base={base!r}, cap={cap!r})")
    try:
        delay = base * 2.0 ** (attempt - 1)
    except OverflowError:
        return float(cap)
    return float(min(delay, cap))


# -- e-mail ------------------------------------------------------------------


def _one_line(value: object) -> str:
    """``value`` as text on one line (header values must not hold line breaks)."""
    return " ".join(str(value).split())


def _subject(alert: Mapping[str, Any]) -> str:
    words = [f"job {alert.get('job_id', '?')}"]
    if alert.get("description"):
        words.append(f"'{alert['description']}'")
    if alert.get("run") is not None:
        words.append(f"run {alert['run']}")
    return _one_line(f"[batchjobs] {' '.join(words)}: {alert.get('status', 'unknown')}")


def _payload(alert: Mapping[str, Any], **dumps: Any) -> str:
    """The alert as JSON; values JSON cannot hold (datetimes) are written as text."""
    return json.dumps(dict(alert), default=str, **dumps)


def _task_lines(task: Mapping[str, Any]) -> list[str]:
    attempts = task.get("attempts")
    tried = "" if attempts is None else f" ({attempts} attempt{'' if attempts == 1 else 's'})"
    error = str(task.get("error") or "no error recorded").rstrip()
    first, *more = error.splitlines() or [""]
    return [f"  - {task.get('name', '?')}{tried}: {first}"] + [f"      {line}" for line in more]


def _body(alert: Mapping[str, Any]) -> str:
    lines: list[str] = []
    if alert.get("message"):
        lines += [str(alert["message"]), ""]
    job = f"{alert.get('job_id', '?')}"
    if alert.get("description"):
        job += f" '{alert['description']}'"
    for label, value in (("Job", job), ("Run", alert.get("run")),
                         ("Status", alert.get("status")), ("User", alert.get("user")),
                         ("Created", alert.get("created_at")), ("Alert", alert.get("id"))):
        if value is not None:
            lines.append(f"{label + ':':9}{value}")
    failed = alert.get("failed_tasks") or []
    if failed:
        lines += ["", f"Failed tasks ({len(failed)}):"]
        for task in failed:
            lines += _task_lines(task)
    lines += ["", "Alert payload (JSON):", _payload(alert, indent=2, sort_keys=True,
                                                      ensure_ascii=False)]
    return "\n".join(lines) + "\n"


def _message_id(alert: Mapping[str, Any], sender: str) -> str:
    """A Message-ID that is the same on every retry of one alert, so a mail client can
    drop a duplicate (a server may take a message and then drop the connection)."""
    domain = _one_line(sender).rpartition("@")[2].strip("<> ") or "batchjobs"
    if alert.get("id") is None:
        return make_msgid(domain=domain)
    return f"<batchjobs.alert.{_one_line(alert['id'])}@{domain}>"


def email_message(alert: Mapping[str, Any], *, sender: str, recipient: str) -> EmailMessage:
    """The e-mail of ``alert``: subject ``[batchjobs] job 12 'JOB 1' run 3: error``, a
    plain-text body (message, status, user, each failed task with its attempts and error)
    ending with the alert as JSON. Raises ``ValueError`` on a malformed address."""
    msg = EmailMessage()
    msg["Subject"] = _subject(alert)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = _message_id(alert, sender)
    if alert.get("id") is not None:
        msg["X-Batchjobs-Alert"] = _one_line(alert["id"])
    if alert.get("job_id") is not None:
        msg["X-Batchjobs-Job"] = _one_line(alert["job_id"])
    msg.set_content(_body(alert))
    return msg


class _SmtpTarget(NamedTuple):
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None


def _smtp_target(smtp_url: str) -> _SmtpTarget:
    """Parse ``smtp_url``; raise ``ValueError`` (without the password) when malformed."""
    parts = urlsplit(smtp_url)
    scheme = parts.scheme.lower()
    if scheme not in SMTP_PORTS:
        raise ValueError(f"scheme must be one of {', '.join(SMTP_PORTS)}")
    if not parts.hostname:
        raise ValueError("no host")
    if not port_ok(parts):
        raise ValueError("the port is not a number from 0 to 65535")
    port = parts.port or SMTP_PORTS[scheme]
    user, password = _credentials(parts)
    return _SmtpTarget(scheme, parts.hostname, port, user, password)


def _smtp_reason(exc: BaseException, timeout: float) -> str:
    """What went wrong, in words, for a DeliveryError message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"recipient {rcpt} refused: {code} {_text(answer)}"
                         for rcpt, (code, answer) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"server answered {exc.smtp_code} {_text(exc.smtp_error)}"
    return _os_reason(exc, timeout)


def _os_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    return str(exc) or type(exc).__name__


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _smtp_connect(target: _SmtpTarget, timeout: float) -> smtplib.SMTP:
    """A client connected to ``target`` and greeted (TLS first for ``smtps``). smtplib
    closes the socket itself when the connection or the greeting fails."""
    if target.scheme == "smtps":
        return smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                context=ssl.create_default_context())
    return smtplib.SMTP(target.host, target.port, timeout=timeout)


def _smtp_send(smtp: smtplib.SMTP, target: _SmtpTarget, msg: EmailMessage, sender: str,
               recipient: str) -> None:
    """STARTTLS and login as ``target`` wants, then hand ``msg`` over."""
    if target.scheme == "smtp+starttls":
        smtp.starttls(context=ssl.create_default_context())
    if target.user is not None:
        smtp.login(target.user, target.password or "")
    smtp.send_message(msg, from_addr=sender, to_addrs=[recipient])


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """End the session; the message is already taken, so a failing QUIT does not matter."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def send_email(alert: Mapping[str, Any], *, smtp_url: str, sender: str, recipient: str,
               timeout: float = 10.0) -> None:
    """Send ``alert`` by e-mail to ``recipient`` through the server of ``smtp_url``; one try.

    ``smtp_url`` is ``smtp://[user[:password]@]host[:port]`` (plain, port 25),
    ``smtps://...`` (implicit TLS, 465) or ``smtp+starttls://...`` (STARTTLS, 587); with a
    user (URL-decoded, as is the password) the client logs in. TLS certificates are
    verified. ``timeout`` bounds each network operation, not the whole exchange.

    Raises :class:`DeliveryError` (sink ``email``) when there is no recipient, the URL is
    malformed, or the server is down, slow, or refuses the login, sender or recipient.
    """
    if not recipient or not recipient.strip():
        raise DeliveryError("email", f"user {alert.get('user')} has no email address")
    shown = mask_url(smtp_url)
    try:
        target = _smtp_target(smtp_url)
    except ValueError as exc:
        raise DeliveryError("email", f"bad SMTP URL {shown}: {exc}") from None
    try:
        msg = email_message(alert, sender=sender, recipient=recipient)
    except ValueError as exc:
        raise DeliveryError("email", f"cannot write the message: {exc}") from None

    raw_password = urlsplit(smtp_url).password
    try:
        smtp = _smtp_connect(target, timeout)
        try:
            _smtp_send(smtp, target, msg, sender, recipient)
        except BaseException:
            smtp.close()
            raise
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        reason = _scrub(_smtp_reason(exc, timeout), target.password, raw_password)
        raise DeliveryError("email", f"cannot send to {recipient} via {shown}: {reason}") from exc
    _quit_quietly(smtp)
    log.info("alert %s sent by email to %s via %s", alert.get("id"), recipient, shown)


# -- webhook -----------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a POST must not turn into a GET elsewhere, nor carry its
    credentials to another host. A 3xx answer is then a failure like any non-2xx."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


def _webhook_request(alert: Mapping[str, Any], url: str) -> urllib.request.Request:
    """The POST of ``alert`` to ``url``; credentials in the URL become Basic auth.
    Raises ``ValueError`` (without the password) when the URL is not http(s)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("scheme must be http or https")
    if not parts.hostname:
        raise ValueError("no host")
    if not port_ok(parts):
        raise ValueError("the port is not a number from 0 to 65535")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    user, password = _credentials(parts)
    if user is not None or password is not None:
        token = f"{user or ''}:{password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    body = _payload(alert).encode("utf-8")
    return urllib.request.Request(bare, data=body, headers=headers, method="POST")


def post_webhook(alert: Mapping[str, Any], *, url: str, timeout: float = 10.0) -> None:
    """POST ``alert`` as JSON to ``url`` (http or https); one try.

    Body ``json.dumps(alert)``, ``Content-Type: application/json``, ``User-Agent:
    batchjobs``; ``https://user:token@host/path`` is sent as Basic auth. Redirects are
    not followed. Environment proxies (``https_proxy``, ``no_proxy``) apply.

    Raises :class:`DeliveryError` (sink ``webhook``) on a non-http(s) or malformed URL, any
    answer other than 2xx (the message names the status), a connection error or timeout.
    """
    shown = mask_url(url)
    try:
        request = _webhook_request(alert, url)
    except ValueError as exc:
        raise DeliveryError("webhook", f"bad webhook URL {shown}: {exc}") from None

    password = _credentials(urlsplit(url))[1]
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as answer:
            status = answer.status
            answer.read(_MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryError("webhook", f"POST {shown} answered {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, BaseException) else OSError(exc.reason)
        why = _scrub(_os_reason(reason, timeout), password, urlsplit(url).password)
        raise DeliveryError("webhook", f"POST {shown} failed: {why}") from exc
    except (OSError, HTTPException, ValueError) as exc:
        why = _scrub(_os_reason(exc, timeout), password, urlsplit(url).password)
        raise DeliveryError("webhook", f"POST {shown} failed: {why}") from exc
    if not 200 <= status < 300:
        raise DeliveryError("webhook", f"POST {shown} answered {status}")
    log.info("alert %s posted to %s (%s)", alert.get("id"), shown, status)
