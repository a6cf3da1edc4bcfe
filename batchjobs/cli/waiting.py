"""``batchjobs wait`` as a person sees it: a live progress bar on a terminal, and one
warning per batch group whose ready tasks no live server will take.

The bar is drawn with ``rich`` on stderr, so stdout still carries only the final status
(``status=$(batchjobs wait 7)`` works) and a pipe or a log file never receives redraws:
it is drawn only when stderr is a terminal and ``--quiet`` is not given. ``rich`` rather
than ``tqdm``: its columns are ours to choose (done/total, running, failed, elapsed in one
line), and it prints a warning above a live bar without tearing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..api import job_status
from ..progress import JobProgress, job_progress, unserved_groups
from ..status import JOB_FINAL, JobStatus

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

#: Seconds between two looks at the job's status (cheap: one row).
STATUS_INTERVAL = 0.05
#: Seconds between two counts of its tasks (one grouped read) for the bar.
PROGRESS_INTERVAL = 0.25
#: Seconds between two looks for ready tasks in groups no live server serves (it reads
#: every server and counts their running attempts).
UNSERVED_INTERVAL = 2.0

Show = Callable[[JobProgress], None]
Warn = Callable[[str], None]


def wait_with_progress(job_id: int, *, timeout: float | None, bar: bool,
                       warn: Warn) -> JobStatus | None:
    """Wait until the job is final and return its status (None on timeout), drawing the
    bar if ``bar`` and warning once per group whose ready tasks no live server serves."""
    deadline = None if timeout is None else time.monotonic() + timeout
    warned: set[str] = set()
    with _display(job_id, enabled=bar, warn=warn) as (show, say):
        next_count = next_unserved = 0.0
        while True:
            now = time.monotonic()
            if now >= next_count:
                progress = job_progress(job_id)
                show(progress)
                if now >= next_unserved:
                    _warn_unserved(progress, warned, say)
                    next_unserved = now + UNSERVED_INTERVAL
                next_count = now + PROGRESS_INTERVAL
                current = progress.status
            else:
                current = job_status(job_id)
            if current in JOB_FINAL:
                show(job_progress(job_id))
                return current
            if deadline is not None and now >= deadline:
                return None
            time.sleep(STATUS_INTERVAL)


def _warn_unserved(progress: JobProgress, warned: set[str], say: Warn) -> None:
    for group in unserved_groups(progress.ready_groups - warned):
        warned.add(group)
        say(f"warning: job {progress.job_id} has ready tasks in batch group {group!r}, which "
            f"no live server serves (start one: batchjobs worker --server NAME --groups "
            f"{group})")


@contextmanager
def _display(job_id: int, *, enabled: bool, warn: Warn) -> Iterator[tuple[Show, Warn]]:
    """``(show, say)``: draw a progress and print a line; without a bar, show is a no-op
    and say is ``warn``."""
    if not enabled:
        yield (lambda progress: None), warn
        return
    # Imported here: 50 ms that every other command (and a non-terminal wait) need not pay.
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn(f"job {job_id} {{task.fields[status]:<9}}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} done · {task.fields[running]} "
                   "running · {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console, refresh_per_second=4)
    tasks: list[TaskID] = []   # the bar's one row, added at the first count (no "0/0")

    def show(progress: JobProgress) -> None:
        if not tasks:
            tasks.append(bar.add_task("wait", total=progress.total, status="", running=0,
                                      failed=0))
        _update(bar, tasks[0], progress)

    with bar:
        yield show, (lambda line: console.print(line, markup=False, highlight=False))
        bar.refresh()


def _update(bar: Progress, task: TaskID, progress: JobProgress) -> None:
    bar.update(task, total=progress.total, completed=progress.done,
               status=progress.status.value, running=progress.running,
               failed=progress.failed)
