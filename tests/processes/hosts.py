"""Processes for the multi-host test: each run is written down, and waits for its gate."""

from __future__ import annotations

import time
from pathlib import Path

from batchjobs import ProcessContext, batchable


@batchable
def gated(ctx: ProcessContext, folder: str, timeout: float = 600.0) -> None:
    """Append ``attempt server`` to ``folder/runs``, then wait until ``folder/open-N`` exists
    (N = this attempt) and succeed: the test decides when each attempt ends."""
    base = Path(folder)
    with open(base / "runs", "a") as runs:
        runs.write(f"{ctx.attempt} {ctx.server}\n")
    deadline = time.monotonic() + timeout
    while not (base / f"open-{ctx.attempt}").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate open-{ctx.attempt} never opened")
        time.sleep(0.05)
