"""Running a claimed task's process, where a batch server or a person runs it.

Any exception of the process is the task's error, never the server's: it is logged as a
warning with the process's traceback and becomes the attempt's outcome. What the process
logs (Python ``logging`` records of its thread) and prints (stdout, stderr) while it runs
is kept with the attempt, bounded in size, as is its traceback with batchjobs' own frames
left out: an attempt's history says what happened, as AX's batch job history does.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from .coordinator import Claim
from .definition import TaskSpec
from .errors import ClientOnly
from .processes import ProcessContext, get_process
from .retry import Failure
from .runtime import RuntimeTasks
from .settings import Settings
from .status import Outcome

log = logging.getLogger(__name__)

#: Files of batchjobs whose frames stand between the server and the process: left out of
#: a process's traceback.
_OWN_FRAMES = {str(Path(__file__).with_name(name)) for name in ("execution.py", "processes.py")}
#: The logger Celery's workers send redirected stdout/stderr to: already captured as text.
_REDIRECTED = "celery.redirected"
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


@dataclass(frozen=True)
class Result:
    """How an attempt's process ended and what it left behind."""

    outcome: Outcome
    #: One line: the exception, as ``type: message``.
    error: str | None = None
    traceback: str | None = None
    log: str | None = None
    #: The exception itself (not stored): the server chains it for Celery's events.
    exception: BaseException | None = None
    #: What the retry policy needs of it: its classes, a :class:`~batchjobs.Retry` or
    #: :class:`~batchjobs.Fail` (:mod:`batchjobs.retry`).
    failure: Failure | None = None
    #: The tasks a successful process added to its job (``ctx.add_task``), to be stored
    #: with its success.
    added: tuple[TaskSpec, ...] = ()


def execute(claimed: Claim, server: str, *, client: bool = False,
            log_limit: int = 1 << 20, settings: Settings | None = None) -> Result:
    """Run the claimed task's process; any exception is the task's error.

    A client process runs only where ``client`` is true (``batchjobs run-client``).
    ``log_limit``: bytes of log kept for the attempt at most. ``settings``: where the
    tasks the process adds are validated against (the job's names, the groups)."""
    runtime = RuntimeTasks(job_id=claimed.job_id, task_id=claimed.task_id, task=claimed.name,
                           company=claimed.company, settings=settings)
    ctx = ProcessContext(job_id=claimed.job_id, task_id=claimed.task_id, task=claimed.name,
                         attempt=claimed.attempt, company=claimed.company, user=claimed.user,
                         server=server).with_runtime(runtime)
    capture = Capture(log_limit)
    try:
        process = get_process(claimed.process, task=claimed.name)
        if process.client and not client:
            raise ClientOnly(process.name)
        with capture:
            process.run(ctx, claimed.kwargs)
    except Exception as exc:  # noqa: BLE001 - a process's failure is data, not a crash
        # A task failure is the task's, not the server's: a warning with its traceback.
        log.warning("task %r of job %s attempt %s failed: %s", claimed.name, claimed.job_id,
                    claimed.attempt, exc, exc_info=True)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Result(Outcome.ERROR, detail, process_traceback(exc), capture.text(), exc,
                      Failure.of(exc))
    return Result(Outcome.ENDED, log=capture.text(), added=runtime.added)


def process_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without the frames of batchjobs that called the process."""
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if frame.filename not in _OWN_FRAMES])
    return "".join(summary.format())


class Capture(logging.Handler):
    """Collects what the running process logs (this thread's records) and writes to
    stdout/stderr, keeping the first three quarters of ``limit`` bytes and the last
    quarter, with the cut marked ``[… N bytes truncated …]``."""

    def __init__(self, limit: int) -> None:
        super().__init__(logging.DEBUG)
        self.limit = limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0
        self.thread = threading.get_ident()
        self._saved: tuple[TextIO, TextIO, int | None] | None = None

    def __enter__(self) -> Capture:
        root = logging.getLogger()
        lowered = None
        if root.getEffectiveLevel() > logging.INFO:
            # A process's INFO records are its history. Only where the root logger says
            # otherwise (a batch server logs at INFO): setting a level clears every
            # logger's cache, 50 µs a time in a worker.
            lowered = root.level
            root.setLevel(logging.INFO)
        self._saved = (sys.stdout, sys.stderr, lowered)
        root.addHandler(self)
        sys.stdout = _Tee(sys.stdout, self)
        sys.stderr = _Tee(sys.stderr, self)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._saved is not None
        sys.stdout, sys.stderr, lowered = self._saved
        root = logging.getLogger()
        root.removeHandler(self)
        if lowered is not None:
            root.setLevel(lowered)

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and record.name != _REDIRECTED:
            self.write(_FORMAT.format(record) + "\n")

    def write(self, text: str) -> None:
        size = len(text.encode("utf-8", "replace"))
        if self.head_size + size <= self.limit * 3 // 4 and not self.tail:
            self.head.append(text)
            self.head_size += size
            return
        self.tail.append(text)
        self.tail_size += size
        while self.tail and self.tail_size > self.limit // 4:
            gone = self.tail.popleft()
            gone_size = len(gone.encode("utf-8", "replace"))
            self.tail_size -= gone_size
            self.dropped += gone_size

    def text(self) -> str | None:
        if not self.head and not self.tail:
            return None
        cut = [f"[… {self.dropped} bytes truncated …]\n"] if self.dropped else []
        return "".join([*self.head, *cut, *self.tail])


class _Tee:
    """A stream that also hands what is written to a :class:`Capture`."""

    def __init__(self, stream: TextIO, capture: Capture) -> None:
        self.stream = stream
        self.capture = capture

    def write(self, text: str) -> int:
        self.capture.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
