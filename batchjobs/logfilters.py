"""Celery log lines that say nothing true about batchjobs, kept out of the servers' logs.

batchjobs keeps every outcome in its own database and configures no Celery result
backend. ``cancel`` broadcasts a revoke (with terminate) to every server; each server
that does not run the task then tries to mark it revoked in the result backend and
logs "Failed to mark task … as revoked in backend: No result backend is configured"
— on every cancel, on every server but one. Nothing failed: the attempt is recorded
``canceled`` in the database. The filter drops that one line and nothing else.
"""

from __future__ import annotations

import logging

#: The logger of Celery's remote-control commands (``revoke`` among them).
CONTROL_LOGGER = "celery.worker.control"
#: What Celery's disabled backend says when asked to store anything.
NO_BACKEND = "No result backend is configured"


class NoResultBackendFilter(logging.Filter):
    """Drop the revoke's "No result backend is configured" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Failed to mark task") and NO_BACKEND in message)


def install() -> None:
    """Put the filter on Celery's control logger (once per process)."""
    logger = logging.getLogger(CONTROL_LOGGER)
    if not any(isinstance(f, NoResultBackendFilter) for f in logger.filters):
        logger.addFilter(NoResultBackendFilter())


install()
