"""Pure rules for a batch server's thread schedule: how many threads it runs at an instant.

A schedule is a set of windows of *wall-clock* time in the server's time zone, each with a
thread count, e.g. ``"08:00-18:00=2,18:00-07:30=20"``. Outside every window the server runs
0 threads; a server with no windows runs its default thread count all day.

Every function here is pure: no I/O and no clock reads. The instant is always an argument
(STYLE habit 9, "Time is an argument"), so the controller passes ``clock.now()`` and the
tests pass fixed datetimes across DST changes.

Wall time versus real time. A window occurrence on local date ``D`` is the real interval
``[resolve(D, start), resolve(D', end))`` where ``D' = D`` for a normal window and ``D + 1``
for one that crosses midnight. ``resolve`` turns a wall time into an instant:

* a wall time that does not exist that day (spring-forward gap) resolves to the first
  instant after the gap (Europe/Oslo 2027-03-28 02:30 -> 03:00 local = 01:00 UTC), so the
  window simply starts (or ends) when the clocks have jumped;
* a wall time that exists twice (fall-back) resolves to its first occurrence (``fold=0``),
  so a repeated hour is not counted twice: 02:00-02:30 on Europe/Oslo 2027-10-31 is active
  for 30 real minutes, once.

Python compares and subtracts aware datetimes that share a ``tzinfo`` by wall time, which
is wrong across a DST change; hence every comparison here is made in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from batchjobs.errors import InvalidSchedule

__all__ = [
    "Window",
    "next_change",
    "occurrence",
    "parse_schedule",
    "parse_timezone",
    "resolve",
    "threads_at",
    "timezone_problem",
    "windows_from_json",
    "windows_to_json",
]

_DAY_SECONDS = 24 * 3600
# How many local days after the day of ``after`` next_change looks at. The pattern repeats
# daily, so a change (if any) shows within one day; the extra days cover a window that a
# spring-forward gap swallowed for one day.
_LOOKAHEAD_DAYS = 3

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_ITEM_RE = re.compile(r"^(?P<start>[^-=\s]+)\s*-\s*(?P<end>[^-=\s]+)\s*=\s*(?P<threads>.*?)$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_EMPTY_TEXTS = ("", '""', "''")
#: Most threads a server may run at once (each is a process): the cap of ``--threads`` and
#: of every window, so a schedule cannot ask the pool for 100,000 processes.
MAX_THREADS = 256
#: Names the zone database holds that are not IANA region zones: this host's own setting,
#: the file POSIX-style TZ strings borrow rules from, the "no zone" placeholder.
_NOT_REGION_NAMES = frozenset({"localtime", "posixrules", "Factory"})
#: Copies of the database: ``right/`` counts leap seconds (wall clocks drift 27 s from
#: every other host's), ``posix/`` repeats the region zones under another name.
_NOT_REGION_PREFIXES = ("right/", "posix/", "right", "posix")


# -- the window ---------------------------------------------------------------------


def _format_time(value: time) -> str:
    """HH:MM, or HH:MM:SS when the seconds matter, so the text parses back to the same time."""
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


@dataclass(frozen=True)
class Window:
    """A daily span of wall-clock time in the server's zone during which it runs ``threads``.

    ``end <= start`` means the window ends on the next day (it crosses midnight);
    ``start == end`` is refused because it would be ambiguous between "never" and "all day"
    (a server that runs all day needs no window: it runs its default).
    """

    start: time
    end: time
    threads: int

    def __post_init__(self) -> None:
        # Validate here too, so a Window built by hand obeys the same rules as a parsed one.
        problem = _window_problem(self.start, self.end, self.threads)
        if problem is not None:
            message, culprit = problem
            raise InvalidSchedule(message, value=culprit)

    @property
    def crosses_midnight(self) -> bool:
        """True when the window ends on the day after it starts (``end <= start``)."""
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{_format_time(self.start)}-{_format_time(self.end)}={self.threads}"

    def _wall_spans(self) -> list[tuple[int, int]]:
        """The window as half-open spans of seconds of the wall-clock day, for overlap checks."""
        start = _seconds(self.start)
        end = _seconds(self.end)
        if not self.crosses_midnight:
            return [(start, end)]
        return [(start, _DAY_SECONDS), (0, end)]


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


# -- parsing ------------------------------------------------------------------------


def _parse_time(text: str, culprit: object) -> time:
    """Read HH:MM or HH:MM:SS; ``culprit`` is what the error names (the window it came from)."""
    match = _TIME_RE.match(text.strip())
    if match is None:
        raise InvalidSchedule(f"time {text!r} is not HH:MM or HH:MM:SS", value=culprit)
    hour, minute = int(match.group(1)), int(match.group(2))
    second = int(match.group(3)) if match.group(3) is not None else 0
    if hour > 23:
        raise InvalidSchedule(f"time {text!r}: hour {hour} is not 0-23", value=culprit)
    if minute > 59:
        raise InvalidSchedule(f"time {text!r}: minute {minute} is not 0-59", value=culprit)
    if second > 59:
        raise InvalidSchedule(f"time {text!r}: second {second} is not 0-59", value=culprit)
    return time(hour, minute, second)


def _parse_threads(text: str, culprit: object) -> int:
    text = text.strip()
    if not _INT_RE.match(text):
        raise InvalidSchedule(f"threads {text!r} is not a whole number", value=culprit)
    threads = int(text)
    if threads < 0:
        raise InvalidSchedule(f"threads {threads} is negative; use 0 or more", value=culprit)
    if threads > MAX_THREADS:
        raise InvalidSchedule(f"threads {threads} is more than a server may run "
                              f"({MAX_THREADS}, the cap of --threads)", value=culprit)
    return threads


def _window_problem(start: object, end: object, threads: object,
                    ) -> tuple[str, object] | None:
    """What is wrong with these window fields (message and culprit), or None.

    One place for the rules, so Window(...) and the parsers refuse the same things.
    """
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, time):
            return f"window {name} must be a time, got {value!r}", value
        if value.tzinfo is not None:
            return (f"window {name} must be a wall time without a zone "
                    "(the server's zone applies)", str(value))
        if value.microsecond:
            return (f"window {name} has fractions of a second; use whole seconds",
                    str(value))
    if isinstance(threads, bool) or not isinstance(threads, int):
        return f"threads {threads!r} is not a whole number", threads
    assert isinstance(start, time) and isinstance(end, time)
    text = f"{_format_time(start)}-{_format_time(end)}={threads}"
    if threads < 0:
        return f"threads {threads} is negative; use 0 or more", text
    if threads > MAX_THREADS:
        return (f"threads {threads} is more than a server may run ({MAX_THREADS}, the "
                f"cap of --threads)"), text
    if start == end:
        return ("a window cannot start and end at the same time "
                "(leave the schedule empty to run the default all day)", text)
    return None


def _make_window(start: time, end: time, threads: int, culprit: object) -> Window:
    """Build a Window, naming the caller's culprit (the window as written) in any error."""
    problem = _window_problem(start, end, threads)
    if problem is not None:
        raise InvalidSchedule(problem[0], value=culprit)
    return Window(start, end, threads)


def _check_no_overlap(windows: Sequence[tuple[Window, object]]) -> None:
    """Refuse two windows that share any wall time, midnight crossing included.

    Overlapping windows would make the thread count at an instant depend on their order.
    Touching windows (one ends when the next starts) are fine: spans are half-open.
    """
    for i, (later, later_culprit) in enumerate(windows):
        for earlier, _ in windows[:i]:
            for a_start, a_end in earlier._wall_spans():
                for b_start, b_end in later._wall_spans():
                    lo, hi = max(a_start, b_start), min(a_end, b_end)
                    if lo < hi:
                        shared = f"{_clock_text(lo)}-{_clock_text(hi)}"
                        raise InvalidSchedule(
                            f"window {later} overlaps window {earlier} ({shared})",
                            value=later_culprit)


def _clock_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours == 24:
        return "24:00"
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def parse_schedule(text: str) -> tuple[Window, ...]:
    """Read a schedule such as ``"08:00-18:00=2,18:00-07:30=20"`` into windows.

    This is how an operator writes a schedule (setting, CLI option), so it is strict: every
    mistake raises :class:`InvalidSchedule` naming the window as written, rather than
    leaving a server idle at an unexpected hour. An empty text (or ``""``) means no windows:
    the server runs its default all day.
    """
    if not isinstance(text, str):
        raise InvalidSchedule("a schedule must be text", value=text)
    stripped = text.strip()
    if stripped in _EMPTY_TEXTS:
        return ()
    parsed: list[tuple[Window, object]] = []
    for raw in stripped.split(","):
        item = raw.strip()
        if not item:
            raise InvalidSchedule("empty window (two commas, or a comma at an end)",
                                  value=text)
        match = _ITEM_RE.match(item)
        if match is None:
            raise InvalidSchedule("window is not START-END=THREADS, e.g. 08:00-18:00=2",
                                  value=item)
        start = _parse_time(match["start"], item)
        end = _parse_time(match["end"], item)
        threads = _parse_threads(match["threads"], item)
        parsed.append((_make_window(start, end, threads, item), item))
    _check_no_overlap(parsed)
    return tuple(window for window, _ in parsed)


def windows_to_json(windows: Iterable[Window]) -> list[dict[str, Any]]:
    """The windows as plain JSON values, for storing with a server or printing with --json."""
    return [{"start": _format_time(w.start), "end": _format_time(w.end), "threads": w.threads}
            for w in windows]


def windows_from_json(items: Sequence[Mapping[str, Any]]) -> tuple[Window, ...]:
    """Read windows stored by :func:`windows_to_json`, checked exactly like parse_schedule.

    Stored JSON may have been edited by hand or written by an older version, so it is not
    trusted: an error names the offending item.
    """
    if not isinstance(items, (list, tuple)):
        raise InvalidSchedule("a schedule must be a list of windows", value=items)
    parsed: list[tuple[Window, object]] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidSchedule("a window must be an object with start, end and threads",
                                  value=item)
        keys = set(item)
        if keys != {"start", "end", "threads"}:
            missing = sorted({"start", "end", "threads"} - keys)
            extra = sorted(keys - {"start", "end", "threads"})
            detail = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(map(str, extra))}" if extra else "") if part)
            raise InvalidSchedule(f"a window has exactly start, end and threads ({detail})",
                                  value=item)
        for name in ("start", "end"):
            if not isinstance(item[name], str):
                raise InvalidSchedule(f"{name} must be text HH:MM or HH:MM:SS", value=item)
        start = _parse_time(item["start"], item)
        end = _parse_time(item["end"], item)
        parsed.append((_make_window(start, end, item["threads"], item), item))
    _check_no_overlap(parsed)
    return tuple(window for window, _ in parsed)


def parse_timezone(name: str) -> ZoneInfo:
    """The zone a server's windows are read in; a name that is not an IANA region zone is
    refused up front (:func:`timezone_problem`).

    Failing at configuration time beats a server that silently runs on UTC.
    """
    problem = timezone_problem(name)
    if problem is not None:
        raise InvalidSchedule(problem, field="timezone", value=name)
    return ZoneInfo(name)


def timezone_problem(name: object) -> str | None:
    """Why ``name`` is not an IANA region zone such as ``Europe/Oslo`` or ``UTC``, or None.

    Refused besides unknown names: ``right/…`` (leap-second clocks), ``posix/…`` (copies),
    ``localtime`` (whatever this host is set to, so another host reads another zone),
    ``posixrules`` and ``Factory``. Loading the zone proves it exists and is a zone file.
    """
    if not isinstance(name, str) or not name:
        return "unknown time zone"
    if name in _NOT_REGION_NAMES or name.startswith(_NOT_REGION_PREFIXES):
        return ("not an IANA region zone (use a name such as Europe/Oslo or UTC; right/..., "
                "posix/..., localtime, posixrules and Factory are refused)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: empty, absolute or "../" names; OSError: e.g. a directory of zones.
        return "unknown time zone"
    return None


# -- wall time -> real time ---------------------------------------------------------


def _utc_offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # an aware zone always has an offset
    return offset


def resolve(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The real instant (aware, UTC) at which wall time ``wall`` happens on ``day`` in ``tz``.

    A wall time in a spring-forward gap does not happen; it resolves to the first instant
    after the gap, so a window due to start in the gap starts when the clocks jump. A wall
    time that happens twice (fall-back) resolves to its first occurrence, so a repeated hour
    is not counted twice.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None), tzinfo=tz)  # fold=0: first
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap. fold=0 reads the wall time with the offset from before the jump, fold=1 with
    # the offset from after it; the jump lies between the two readings. Find it to the second
    # (zone transitions fall on whole seconds).
    early = local.replace(fold=1).astimezone(UTC)
    late = instant
    if early > late:
        early, late = late, early
    after_offset = _utc_offset(late, tz)
    lo, hi = 0, int((late - early).total_seconds())
    while lo < hi:  # smallest step with the offset from after the jump
        mid = (lo + hi) // 2
        if _utc_offset(early + timedelta(seconds=mid), tz) == after_offset:
            hi = mid
        else:
            lo = mid + 1
    return early + timedelta(seconds=lo)


def occurrence(window: Window, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The real half-open interval ``[start, end)`` (UTC) of the window that starts on ``day``.

    A midnight-crossing window ends on the next day. The interval can be empty when the
    whole window falls in a spring-forward gap: that day it does not happen.
    """
    end_day = day + timedelta(days=1) if window.crosses_midnight else day
    return resolve(day, window.start, tz), resolve(end_day, window.end, tz)


def _require_aware(instant: datetime, name: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def threads_at(windows: Sequence[Window], tz: ZoneInfo, instant: datetime, *,
               default: int) -> int:
    """How many threads the server runs at ``instant`` (aware; naive raises ValueError).

    No windows: ``default`` all day. Otherwise the threads of the window occurrence that
    contains the instant, else 0: a schedule names the hours a server works.
    """
    now = _require_aware(instant, "instant")
    if not windows:
        return default
    local_day = now.astimezone(tz).date()
    # Yesterday's midnight-crossing windows reach into today; tomorrow is checked as a guard
    # for zones whose midnight falls in a gap.
    for offset in (-1, 0, 1):
        day = local_day + timedelta(days=offset)
        for window in windows:
            start, end = occurrence(window, day, tz)
            if start <= now < end:
                return window.threads
    return 0


def next_change(windows: Sequence[Window], tz: ZoneInfo, after: datetime, *,
                default: int) -> datetime | None:
    """The first instant (aware, UTC) strictly after ``after`` at which threads_at changes.

    The capacity preview walks a schedule from change to change with it. None when there
    are no windows or the count never changes (e.g. adjacent windows with equal threads
    covering the day).
    The count only changes at occurrence boundaries, so only those are examined, over the
    next few local days.
    """
    start_at = _require_aware(after, "after")
    if not windows:
        return None
    current = threads_at(windows, tz, start_at, default=default)
    local_day = start_at.astimezone(tz).date()
    boundaries: set[datetime] = set()
    for offset in range(-1, _LOOKAHEAD_DAYS + 1):
        day = local_day + timedelta(days=offset)
        for window in windows:
            boundaries.update(occurrence(window, day, tz))
    for boundary in sorted(b for b in boundaries if b > start_at):
        if threads_at(windows, tz, boundary, default=default) != current:
            return boundary
    return None
