"""Sample processes for the unit tests of the batchable registry."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from batchjobs import ProcessContext, batchable


@batchable
def add(a: int, b: int = 0) -> int:
    """Return ``a + b``."""
    return a + b


@batchable
def whoami(ctx: ProcessContext, greeting: str = "hello") -> dict[str, Any]:
    """Return the context it received and ``greeting``."""
    return {"ctx": ctx, "greeting": greeting}


@batchable
class Report:
    """A class process: built with the kwargs, then ``run()``."""

    def __init__(self, title: str, pages: int = 1) -> None:
        self.title = title
        self.pages = pages

    def run(self) -> str:
        return f"{self.title} ({self.pages} pages)"


@batchable
class ContextReport:
    """A class process whose ``run`` takes the context."""

    def __init__(self, title: str) -> None:
        self.title = title

    def run(self, ctx: ProcessContext) -> str:
        return f"{self.title} for task {ctx.task} attempt {ctx.attempt}"


@batchable(name="samples.custom-name", client=True)
def renamed() -> str:
    """Registered under an explicit name, as a client-only process."""
    return "renamed"


def not_marked() -> str:
    """Importable, but NOT marked @batchable: no task may run it."""
    return "should never run"


@batchable
def wait_for_file(path: str, timeout: float = 300.0) -> None:
    """Runs until ``path`` exists (a test creates it to let the task end): a task that stays
    busy for exactly as long as a test needs, however slow the machine."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.02)


@batchable
def chatty_failure(lines: int = 3) -> None:
    """Logs, prints, then fails in a helper: its log and traceback are the attempt's."""
    logger = logging.getLogger("tests.processes.chatty")
    for i in range(lines):
        logger.info("step %d of %d done", i + 1, lines)
    print("about to look up the key")
    print("on stderr too", file=sys.stderr)
    _look_up({}, "missing_key")


def _look_up(table: dict[str, int], key: str) -> int:
    return table[key]


class Busy(ConnectionError):
    """A failure worth a retry (its bases: ConnectionError, OSError)."""


@batchable
def raise_error(ctx: ProcessContext, kind: str = "KeyError", until: int = 0) -> None:
    """Raise ``kind`` (``KeyError`` or ``Busy``) on every attempt (or up to attempt
    ``until``, then succeed)."""
    if until and ctx.attempt > until:
        return
    raise {"KeyError": KeyError, "Busy": Busy}[kind](f"attempt {ctx.attempt}")


@batchable
def ask_retry(ctx: ProcessContext, delay: float | None = None, times: int = 1) -> None:
    """Raise ``batchjobs.Retry(delay=…)`` on the first ``times`` attempts, then succeed."""
    from batchjobs import Retry

    if ctx.attempt <= times:
        raise Retry(f"not yet (attempt {ctx.attempt})", delay=delay)


@batchable
def give_up(ctx: ProcessContext) -> None:
    """Raise ``batchjobs.Fail``: no retry, whatever is left."""
    from batchjobs import Fail

    raise Fail(f"nothing to retry (attempt {ctx.attempt})")
