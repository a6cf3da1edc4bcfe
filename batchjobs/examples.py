"""Example processes to smoke-test an installation (all batchable)."""

from __future__ import annotations

import time

from .processes import ProcessContext, batchable


class ProcessFailed(Exception):
    """Raised by the example processes that fail on purpose."""


@batchable
def noop() -> None:
    """Do nothing, successfully."""


@batchable
def sleep(seconds: float = 0.0) -> None:
    """Sleep for ``seconds`` seconds, then succeed."""
    time.sleep(float(seconds))


@batchable
def fail(message: str = "failed on purpose") -> None:
    """Always fail with ``message``."""
    raise ProcessFailed(message)


@batchable
def flaky(ctx: ProcessContext, failures: int = 1) -> None:
    """Fail on the first ``failures`` attempts of the task, then succeed."""
    if ctx.attempt <= failures:
        raise ProcessFailed(f"attempt {ctx.attempt} of {ctx.task} fails on purpose")
