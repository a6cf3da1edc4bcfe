"""Running a claimed task's process, where a batch server or a person runs it.

Any exception of the process is the task's error, never the server's: it is logged
as a warning with the process's traceback and becomes the attempt's outcome.
"""

from __future__ import annotations

import logging
import traceback

from .coordinator import Claim
from .errors import ClientOnly
from .processes import ProcessContext, get_process
from .status import Outcome

log = logging.getLogger(__name__)


def execute(claimed: Claim, server: str, *, client: bool = False) -> tuple[Outcome, str | None]:
    """Run the claimed task's process; any exception is the task's error.

    A client process runs only where ``client`` is true (``batchjobs run-client``)."""
    ctx = ProcessContext(job_id=claimed.job_id, task_id=claimed.task_id, task=claimed.name,
                         attempt=claimed.attempt, company=claimed.company, user=claimed.user,
                         server=server)
    try:
        process = get_process(claimed.process, task=claimed.name)
        if process.client and not client:
            raise ClientOnly(process.name)
        process.run(ctx, claimed.kwargs)
    except Exception as exc:  # noqa: BLE001 - a process's failure is data, not a crash
        # A task failure is the task's, not the server's: a warning with its traceback.
        log.warning("task %r of job %s attempt %s failed: %s", claimed.name, claimed.job_id,
                    claimed.attempt, exc, exc_info=True)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return Outcome.ERROR, detail
    return Outcome.ENDED, None
