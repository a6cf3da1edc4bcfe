"""Processes for the fault tests: each says where it runs, then runs until told to end."""

from __future__ import annotations

import os
import time
from pathlib import Path

from batchjobs import ProcessContext, batchable


@batchable
def hold(ctx: ProcessContext, folder: str, release: str = "", timeout: float = 300.0) -> int:
    """Write ``<folder>/<task>-<attempt>.pid`` (this pool process's pid), then run until the
    file ``release`` exists (never, if it is empty): a test kills or stops the process
    that runs a given attempt, or lets it end, whenever it needs to."""
    marker = Path(folder) / f"{ctx.task}-{ctx.attempt}.pid"
    marker.with_suffix(".tmp").write_text(str(os.getpid()))
    marker.with_suffix(".tmp").rename(marker)
    deadline = time.monotonic() + timeout
    while not (release and os.path.exists(release)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {timeout}s")
        time.sleep(0.02)
    return os.getpid()


@batchable
def count(folder: str) -> None:
    """Append one line to ``<folder>/count``: how many times it ran."""
    with open(Path(folder) / "count", "a") as out:
        out.write(f"{os.getpid()}\n")
