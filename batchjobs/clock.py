"""The one seam for the current time: everything reads ``now()``; tests replace it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _system_now() -> datetime:
    return datetime.now(UTC)


_now: Callable[[], datetime] = _system_now


def now() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return _now()


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the system clock)."""
    global _now
    _now = fn or _system_now


def shift(seconds: float) -> None:
    """Run this process on a clock ``seconds`` off the system's (a host whose clock is
    wrong: ``BATCHJOBS_CLOCK_OFFSET``, for tests)."""
    offset = timedelta(seconds=seconds)
    set_clock(lambda: _system_now() + offset)


def iso(value: datetime | None) -> str | None:
    """An aware instant as ISO-8601 UTC with ``Z`` (what every JSON view prints)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
