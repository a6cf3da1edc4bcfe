"""``batchjobs housekeeper`` (alias ``coordinator``): the timers, without running any task."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from .common import reports_errors


@click.command()
@reports_errors
def housekeeper() -> None:
    """Run the timers here: jobs whose start time (or next recurrence) has come, alert
    deliveries and their retries, tasks of dead servers, lost messages.

    Every batch server already runs them, so this is only needed where jobs must start
    or alerts go out while no server runs. Safe to run on several hosts at once.
    (``batchjobs coordinator`` is the same command, by its former name.)
    """
    from .. import store
    from ..app import app
    from ..housekeeper import Housekeeper
    from ..settings import get_settings

    settings = get_settings()
    store.get_engine(settings)
    keeper = Housekeeper(None, app, None, settings=settings)
    stop = threading.Event()

    def on_signal(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    keeper.start()
    click.echo("batchjobs housekeeper running (Ctrl-C stops it)", err=True)
    stop.wait()
    keeper.stopping.set()
    keeper.join(timeout=5)
