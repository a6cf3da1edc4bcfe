"""A batchable process for ``scripts/bench.py``: a no-op that stamps its own body.

``benchprocs.stamp(sink)`` appends ``task start end`` to the file ``sink`` (one ``os.write``
on an ``O_APPEND`` descriptor), so the bench can measure a batchjobs hop from the end of one
process body to the start of the next, exactly as it does for raw Celery. The batch servers
import this module by its name on first use (``scripts/`` is on their ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import time

from batchjobs import ProcessContext, batchable

_fds: dict[str, int] = {}


@batchable
def stamp(ctx: ProcessContext, sink: str) -> None:
    start = time.time()
    end = time.time()
    fd = _fds.get(sink)
    if fd is None:
        fd = _fds[sink] = os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{ctx.task} {start!r} {end!r}\n".encode())
