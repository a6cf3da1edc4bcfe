"""The retry policy of a task: when a failed attempt is tried again, and after how long.

Pure rules, no I/O. A task's policy is ``retries`` (how many more attempts a run may
make), ``retry_delay`` (seconds before the first retry), ``retry_backoff`` (the n-th
retry waits ``retry_delay × retry_backoff^(n−1)``), ``retry_max_delay`` (the cap) and
``retry_on`` (the exception classes worth a retry, by name; others fail at once). A
process may decide itself: it raises :class:`Retry` (counts against ``retries``, with
its own delay if it gives one) or :class:`Fail` (no retry, whatever is left).

A delayed retry waits in the database (``tasks.not_before``), never in the broker:
see :mod:`batchjobs.coordinator.delayed`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidValue

#: Longest wait before a retry (30 days): a longer one is refused in a job, and the
#: backoff rule never computes more (``backoff^n`` overflows a float long before n=1000).
MAX_DELAY = 30 * 24 * 3600.0
#: Largest backoff factor a job may give.
MAX_BACKOFF = 100.0
#: Most exception class names in ``retry_on``, and the longest name.
MAX_RETRY_ON = 100
MAX_CLASS_NAME = 300

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*")


class Retry(Exception):
    """Raised by a process: try this task again (it counts against ``retries``), after
    ``delay`` (seconds or ``"5s"``/``"1m"``; None: the task's own retry delay)."""

    def __init__(self, message: str = "retry asked by the process", *,
                 delay: float | str | None = None) -> None:
        super().__init__(message)
        self.delay = None if delay is None else parse_delay(delay, field="Retry.delay")


class Fail(Exception):
    """Raised by a process: the task fails now, without the retries it has left."""


@dataclass(frozen=True)
class Failure:
    """What the attempt's process raised, as the retry policy needs it (no exception
    object crosses into the coordinator)."""

    #: Every class of the exception and its bases, each by qualified and dotted name.
    classes: tuple[str, ...] = ()
    #: True: the process raised :class:`Retry`; False: :class:`Fail`; None: neither.
    verdict: bool | None = None
    #: The delay a :class:`Retry` asked for (None: the task's rule).
    delay: float | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        names: list[str] = []
        for kind in type(exc).__mro__:
            if kind in (object, BaseException):
                continue
            names += [kind.__qualname__, f"{kind.__module__}.{kind.__qualname__}"]
        verdict = True if isinstance(exc, Retry) else False if isinstance(exc, Fail) else None
        return cls(tuple(names), verdict, exc.delay if isinstance(exc, Retry) else None)


@dataclass(frozen=True)
class Policy:
    """A task's retry policy, as stored on its row."""

    retries: int = 0
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    retry_on: tuple[str, ...] | None = None

    def wait_before(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 = the first):
        ``delay × backoff^(retry−1)``, at most ``max_delay`` (and :data:`MAX_DELAY`)."""
        cap = MAX_DELAY if self.max_delay is None else min(self.max_delay, MAX_DELAY)
        if self.delay <= 0:
            return 0.0
        try:
            wait = self.delay * self.backoff ** max(retry - 1, 0)
        except OverflowError:
            return cap
        return min(wait, cap)

    def retries_on(self, failure: Failure | None) -> bool:
        """Whether this failure is worth a retry at all: a :class:`Fail` never is, a
        :class:`Retry` always is; an exception only if ``retry_on`` is unset or names
        one of its classes. A failure without an exception (the server or its pool
        process lost, a time limit) is retried: that is what retries are for."""
        if failure is None or failure.verdict is None:
            if failure is None or not failure.classes or self.retry_on is None:
                return True
            return bool(set(self.retry_on) & set(failure.classes))
        return failure.verdict

    def decide(self, failure: Failure | None, attempts_in_run: int) -> Decision:
        """After the ``attempts_in_run``-th attempt of this run failed: retry or not,
        after how long, and why not."""
        if not self.retries_on(failure):
            why = ("the process raised Fail" if failure is not None and failure.verdict is False
                   else f"not retried: {_first(failure)} is not in retry_on "
                        f"({', '.join(self.retry_on or ())})")
            return Decision(False, 0.0, why)
        if attempts_in_run > self.retries:
            return Decision(False, 0.0, None)
        if failure is not None and failure.delay is not None:
            return Decision(True, min(failure.delay, MAX_DELAY), None)
        return Decision(True, self.wait_before(attempts_in_run), None)


@dataclass(frozen=True)
class Decision:
    """A failed attempt's fate: ``retry`` after ``delay`` seconds, or the task's end
    (``reason`` says why when retries were left)."""

    retry: bool
    delay: float
    reason: str | None


def _first(failure: Failure | None) -> str:
    return failure.classes[0] if failure is not None and failure.classes else "the error"


# -- what a job gives -----------------------------------------------------------------


def parse_delay(value: Any, *, field: str, task: str | None = None) -> float:
    """Seconds from a number or ``"500ms"``, ``"5s"``, ``"1m"``, ``"2h"``, ``"1d"``;
    :class:`InvalidValue` naming ``field`` otherwise (negative, not finite, over
    :data:`MAX_DELAY`)."""
    seconds: float
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _UNITS[match[2]]
    else:
        raise InvalidValue(f"{field} {value!r} must be seconds or a duration such as 5s, "
                           "1m, 2h",
                           task=task, field=field, value=value)
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidValue(f"{field} {value!r} must be a number of seconds >= 0", task=task,
                           field=field, value=value)
    if seconds > MAX_DELAY:
        raise InvalidValue(f"{field} {value!r} must be at most {MAX_DELAY:g} seconds "
                           "(30 days)",
                           task=task, field=field, value=value)
    return seconds


def parse_backoff(value: Any, *, task: str | None = None) -> float:
    """A backoff factor: a number from 1 (every retry waits ``retry_delay``) to
    :data:`MAX_BACKOFF`. Below 1 each wait would be shorter than the one before."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 1 <= value <= MAX_BACKOFF):
        raise InvalidValue(f"retry_backoff {value!r} must be a number from 1 to "
                           f"{MAX_BACKOFF:g}",
                           task=task, field="retry_backoff", value=value)
    return float(value)


def parse_retry_on(value: Any, *, task: str | None = None) -> tuple[str, ...]:
    """Exception class names, bare (``KeyError``) or dotted (``myapp.errors.Busy``):
    names only, nothing is imported."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise InvalidValue(f"retry_on {value!r} must be a non-empty list of exception class "
                           "names",
                           task=task, field="retry_on", value=value)
    if len(value) > MAX_RETRY_ON:
        raise InvalidValue(f"retry_on names at most {MAX_RETRY_ON} classes", task=task,
                           field="retry_on", value=len(value))
    for name in value:
        if (not isinstance(name, str) or len(name) > MAX_CLASS_NAME
                or not all(part.isidentifier() for part in name.split("."))):
            raise InvalidValue(f"retry_on item {name!r} must be a class name such as KeyError "
                               "or myapp.errors.Busy", task=task, field="retry_on", value=name)
    return tuple(value)


def policy_of(*, retries: int, delay: Any, backoff: Any, max_delay: Any,
              retry_on: Iterable[str] | None, task: str | None = None) -> Policy:
    """The policy these (task or job default) values give, checked; None values are
    the defaults (no delay, factor 1, no cap, every exception)."""
    seconds = 0.0 if delay is None else parse_delay(delay, field="retry_delay", task=task)
    cap = None if max_delay is None else parse_delay(max_delay, field="retry_max_delay",
                                                     task=task)
    if cap is not None and cap < seconds:
        raise InvalidValue(f"retry_max_delay ({cap:g}s) is shorter than retry_delay "
                           f"({seconds:g}s)", task=task, field="retry_max_delay",
                           value=max_delay)
    return Policy(retries=retries, delay=seconds,
                  backoff=1.0 if backoff is None else parse_backoff(backoff, task=task),
                  max_delay=cap,
                  retry_on=None if retry_on is None else parse_retry_on(retry_on, task=task))
