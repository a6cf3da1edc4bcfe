"""A batch task's message as the server's main process handles it: what happens when the
pool process running it ends without reporting an outcome.

The pool process records every outcome it sees (:mod:`batchjobs.runner`). It cannot
when it dies: killed (``kill -9``, the out-of-memory killer), stopped at its task's time
limit, or cancelled at a cold shutdown. Celery's main process learns of it
(:meth:`Request.on_failure` with ``WorkerLostError``, :meth:`Request.on_timeout`) and
requeues or acknowledges the message; the attempt stays ``running`` and the task
``executing``, so the redelivered message finds nothing to claim. Here the main process
ends that attempt ``error`` itself (retries apply), guarded like every outcome by
``attempts.outcome = 'running'``: a pool process that recorded its outcome before it
died keeps it.

The database work runs on one thread of the main process, in the order Celery reported
the events (a time limit before the loss of the process it killed), so Celery's
consumer never waits for the database; :func:`drain` waits for it at shutdown.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.exceptions import Terminated
from celery.worker.request import Request

from .coordinator.sweeps import fail_attempt_of_message
from .settings import get_settings

log = logging.getLogger(__name__)

#: Exceptions that mean the pool process died before it could report (``SystemExit``:
#: billiard reports a child's exit before it is reaped).
LOST = (WorkerLostError, SystemExit, KeyboardInterrupt, Terminated)
#: What kills a pool process when batchjobs means it: the process ignores SIGTERM, which
#: systemd sends to every process of a server being stopped (:mod:`batchjobs.worker`).
KILL_SIGNAL = "SIGKILL"

_executor: ThreadPoolExecutor | None = None
_pending: list[Future[Any]] = []


class BatchRequest(Request):
    """Celery's request, which also ends the attempt of a pool process lost mid-task."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        cancelled = bool(getattr(self, "_already_cancelled", False))
        revoked = bool(getattr(self, "_already_revoked", False))
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        if cancelled:
            self._fail("stopped while the task was executing")
        elif isinstance(exc, LOST) and not revoked:
            self._fail(f"process lost while the task was executing ({exc})")

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            self._fail(f"timed out after {timeout:g} s")

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> None:
        super().cancel(pool, signal=KILL_SIGNAL, emit_retry=emit_retry)

    def terminate(self, pool: Any, signal: Any = None) -> None:
        super().terminate(pool, signal=KILL_SIGNAL)

    def _fail(self, what: str) -> None:
        if not self.args:      # not a batch task's message
            return
        server = (self.hostname or "unknown").split("@", 1)[0]
        submit(fail_attempt_of_message, self.id, server, what)


def submit(function: Any, *args: Any) -> None:
    """Run ``function(*args, settings)`` on the main process's recording thread."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchjobs-lost")
    _pending[:] = [f for f in _pending if not f.done()]
    try:
        _pending.append(_executor.submit(_run, function, *args))
    except RuntimeError:    # the interpreter is exiting: record it now
        _run(function, *args)


def _run(function: Any, *args: Any) -> None:
    try:
        function(*args, get_settings())
    except Exception:   # left to recovery (the server's restart, the sweeps)
        log.exception("could not record the end of a lost task (%s)", args)


def drain(timeout: float | None = None) -> None:
    """Wait for what the recording thread still has to do (at the server's shutdown)."""
    wait(list(_pending), timeout)
