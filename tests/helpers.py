"""Test helpers: wait on a condition with a deadline (never sleep to synchronise)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02,
             message: str = "condition") -> T:
    """Return the first truthy value of ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tasks of a ``status()`` result, keyed by task name."""
    return {t["name"]: t for t in status["tasks"]}


def statuses(status: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["status"] for t in status["tasks"]}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda item: (item[0], item[1]))
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best
