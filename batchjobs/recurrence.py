"""When a recurring job runs next: pure rules for ``recurrence`` (cron or fixed interval).

A job may recur, written in its file or through the API as::

    recurrence:
      cron: "0 2 * * 1-5"     # or  every: 90m   (exactly one of the two)
      timezone: Europe/Oslo   # default UTC
      end_after: 10           # optional: at most this many runs
      end_by: 2027-06-30T00:00:00+02:00   # optional: no run starts after this

Why the rules are what they are:

* One run at a time. Run 1 is due at the first occurrence at or after the job's start.
  When a run finishes at ``now``, the next run is due at the next occurrence *strictly
  after* ``now``: occurrences missed meanwhile are skipped, not replayed (a nightly job
  that ran 30 hours must not then run twice back to back), and how many were skipped is
  reported so it can be recorded.
* Cron is wall-clock time in the zone: ``0 2 * * *`` stays 02:00 local across DST, since
  that is what people mean by it. A wall time that does not exist (spring-forward gap)
  fires once at the first instant after the gap; one that happens twice (fall-back) fires
  once, at its first occurrence. croniter 7 fires the repeated hour twice when handed
  zone-aware datetimes, so we iterate croniter on *naive* wall times and resolve each to a
  real instant ourselves (:func:`batchjobs.schedule.resolve`), dropping duplicates.
* ``every`` in seconds, minutes or hours is a fixed duration of real time from the anchor
  (run 1's due time): ``anchor + k * interval``, no DST adjustment, so "every 90m" is
  always 90 real minutes, and "every 24h" 24 of them.
* ``every`` in days or weeks keeps the wall-clock time in the recurrence's zone: run k is
  on the anchor's local date + k * interval, at the anchor's local time, so "every 1d"
  from 02:00 runs at 02:00 local across DST (23 or 25 real hours on the night the clocks
  change), as people mean it. A wall time in the spring-forward gap resolves to the first
  instant after the gap; a repeated one (fall-back) to its first pass, as for cron.
  Counts are computed arithmetically (an estimate from real time, corrected by the few
  hours DST can shift it), never by stepping.

Everything is stored and returned in UTC; naive datetimes are refused (``ValueError``) so
that a missing zone can never silently mean "server local time".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from batchjobs.errors import InvalidRecurrence
from batchjobs.schedule import parse_timezone, resolve, timezone_problem

__all__ = [
    "MAX_COUNTED_SKIPS",
    "Recurrence",
    "first_occurrence",
    "next_occurrence",
    "parse_recurrence",
    "skips_are_a_lower_bound",
]

#: Cron skip counts stop here, and a count that reaches it means "at least this many"
#: (:func:`skips_are_a_lower_bound`; ``history`` shows "≥ 100"). Counting cron occurrences
#: takes one croniter step each (~30 µs), inside the transaction that ends a run: a cap of
#: 100,000 made a per-second cron two days late hold it for 4.5 s. At 100 the count costs
#: a few milliseconds whatever the lateness; ``every`` is counted exactly, by arithmetic.
MAX_COUNTED_SKIPS = 100

_KEYS = ("cron", "every", "timezone", "end_after", "end_by")
_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_EVERY = re.compile(r"([0-9]+)([smhdw])")
#: Units of ``every`` that keep the wall-clock time (the others are elapsed time).
_CALENDAR_UNITS = ("w", "d")
_TINY = timedelta(microseconds=1)  # datetime resolution: ">= t" is "> t - _TINY"
_PROBE_FROM = datetime(2000, 1, 1)  # any fixed wall time; a 5/6-field cron repeats within years


# -- the value ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recurrence:
    """A validated recurrence; construct it directly or via :func:`parse_recurrence`.

    Validation lives in ``__post_init__`` so no invalid value can exist, however it was
    built; ``end_by`` is normalised to UTC and ``cron`` to single spaces.
    """

    cron: str | None
    every: timedelta | None
    timezone: str = "UTC"
    end_after: int | None = None
    end_by: datetime | None = None  # aware, stored UTC
    #: ``every`` counts calendar days in ``timezone`` (keeping the wall-clock time), not
    #: elapsed time. None: when ``every`` is whole days (``1d``, ``2w``), as a job file's
    #: ``d`` and ``w`` mean it; ``24h`` in a file is elapsed time (False).
    calendar: bool | None = None

    def __post_init__(self) -> None:
        _check_one_of(self.cron, self.every)
        if self.cron is not None:
            object.__setattr__(self, "cron", _check_cron(self.cron))
        calendar = False
        if self.every is not None:
            _check_every(self.every)
            whole_days = self.every % _UNITS["d"] == timedelta(0)
            calendar = whole_days if self.calendar is None else bool(self.calendar)
            if calendar and not whole_days:
                raise InvalidRecurrence(
                    f"every {self.every!r} is not whole days: only days and weeks keep the "
                    "wall-clock time", field="recurrence.every", value=str(self.every))
        object.__setattr__(self, "calendar", calendar)
        _zone(self.timezone)
        if self.end_after is not None:
            _check_end_after(self.end_after)
        if self.end_by is not None:
            object.__setattr__(self, "end_by", _check_end_by(self.end_by))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able mapping that :meth:`from_json` reads back to an equal value.

        ``every`` is written in the largest unit that divides it ("90m", "1w" for 7d), so
        equal recurrences always serialise the same way; ``end_by`` as ISO-8601 UTC ("Z").
        """
        return {
            "cron": self.cron,
            "every": None if self.every is None else _every_text(self.every,
                                                                 bool(self.calendar)),
            "timezone": self.timezone,
            "end_after": self.end_after,
            "end_by": None if self.end_by is None else _iso_utc(self.end_by),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recurrence:
        """The inverse of :meth:`to_json` (``None`` values mean "not set")."""
        return parse_recurrence(data)

    def describe(self) -> str:
        """One line for humans (CLI, logs), e.g.
        ``cron 0 2 * * 1-5 in Europe/Oslo, at most 10 runs, until 2027-06-29T22:00:00Z``.

        The zone is named for cron and for ``every`` in days or weeks (wall-clock time);
        ``every`` in seconds, minutes or hours is real time and ignores it.
        """
        if self.cron is not None:
            parts = [f"cron {self.cron} in {self.timezone}"]
        else:
            assert self.every is not None
            parts = [f"every {_every_text(self.every, bool(self.calendar))}"
                     + (f" at the same wall time in {self.timezone}" if self.calendar else "")]
        if self.end_after is not None:
            parts.append(f"at most {self.end_after} run{'' if self.end_after == 1 else 's'}")
        if self.end_by is not None:
            parts.append(f"until {_iso_utc(self.end_by)}")
        return ", ".join(parts)


# -- parsing ------------------------------------------------------------------------------


def parse_recurrence(raw: Any) -> Recurrence:
    """The :class:`Recurrence` of a job file's or API call's ``recurrence`` value.

    A :class:`Recurrence` is returned as is. Keys whose value is ``None`` count as absent
    (an empty YAML value, or :meth:`Recurrence.to_json` output). Every problem raises
    :class:`~batchjobs.errors.InvalidRecurrence` naming the field and the culprit, so the
    user can fix the file without guessing.
    """
    if isinstance(raw, Recurrence):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidRecurrence(
            f"recurrence must be a mapping with cron or every, got {raw!r}",
            field="recurrence", value=raw)
    for key in raw:
        if key not in _KEYS:
            raise InvalidRecurrence(
                f"unknown key {key!r} (expected one of {', '.join(_KEYS)})",
                field=f"recurrence.{key}", value=key)
    given = {key: value for key, value in raw.items() if value is not None}
    _check_one_of(given.get("cron"), given.get("every"))
    every = given.get("every")
    end_by = given.get("end_by")
    return Recurrence(
        cron=given.get("cron"),
        every=None if every is None else _parse_every(every),
        timezone=given.get("timezone", "UTC"),
        end_after=given.get("end_after"),
        end_by=None if end_by is None else _parse_end_by(end_by),
        calendar=None if every is None else str(every)[-1:] in _CALENDAR_UNITS,
    )


def _parse_every(text: Any) -> timedelta:
    """``"90m"`` -> 90 minutes. Only whole units, so the interval is exact and printable."""
    match = _EVERY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidRecurrence(
            f"every {text!r} must be a number followed by s, m, h, d or w",
            field="recurrence.every", value=text)
    try:
        every = int(match[1]) * _UNITS[match[2]]
    except OverflowError:
        raise InvalidRecurrence(f"every {text!r} is too large",
                                field="recurrence.every", value=text) from None
    if not every:
        raise InvalidRecurrence(f"every {text!r} must be more than zero",
                                field="recurrence.every", value=text)
    return every


def _parse_end_by(value: Any) -> datetime:
    """An ISO-8601 string (or a YAML datetime) *with* an offset; the offset is mandatory
    because "until midnight" in an unstated zone is off by hours for someone."""
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is not None and parsed.utcoffset() is not None:
        return parsed
    raise InvalidRecurrence(
        f"end_by {value!r} must be an ISO-8601 date and time with a UTC offset, "
        "e.g. 2027-06-30T00:00:00+02:00",
        field="recurrence.end_by", value=value)


def _check_one_of(cron: Any, every: Any) -> None:
    """Exactly one syntax: a job that gives both would run on whichever we happened to pick."""
    if cron is not None and every is not None:
        raise InvalidRecurrence(
            f"give exactly one of cron or every, not both (cron {cron!r}, every {every!r})",
            field="recurrence", value={"cron": cron, "every": every})
    if cron is None and every is None:
        raise InvalidRecurrence("give exactly one of cron or every, got neither",
                                field="recurrence", value={"cron": None, "every": None})


def _check_cron(expr: Any) -> str:
    """The expression with single spaces, if croniter accepts it and it ever fires.

    Only 5 fields (min hour dom month dow) or 6 (… sec, seconds last): croniter also takes
    aliases and a year field, which we do not promise to support.
    """
    if not isinstance(expr, str):
        raise InvalidRecurrence(f"cron {expr!r} must be a string",
                                field="recurrence.cron", value=expr)
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise InvalidRecurrence(
            f"cron {expr!r} must have 5 fields (min hour dom month dow) "
            "or 6 (min hour dom month dow sec)",
            field="recurrence.cron", value=expr)
    normal = " ".join(fields)
    try:
        valid = croniter.is_valid(normal)
    except (CroniterError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidRecurrence(f"cron {expr!r} is not a valid cron expression",
                                field="recurrence.cron", value=expr)
    try:
        croniter(normal, _PROBE_FROM).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidRecurrence(f"cron {expr!r} never fires (e.g. 30 February)",
                                field="recurrence.cron", value=expr) from None
    return normal


def _check_every(every: Any) -> None:
    """A positive whole number of seconds, so ``to_json`` can write it back exactly."""
    if (not isinstance(every, timedelta) or every <= timedelta(0)
            or every % timedelta(seconds=1)):
        raise InvalidRecurrence(f"every {every!r} must be a positive whole number of seconds",
                                field="recurrence.every", value=every)


def _check_end_after(end_after: Any) -> None:
    """An int >= 1; ``True`` is refused although Python calls it an int."""
    if isinstance(end_after, bool) or not isinstance(end_after, int) or end_after < 1:
        raise InvalidRecurrence(f"end_after {end_after!r} must be a whole number >= 1",
                                field="recurrence.end_after", value=end_after)


def _check_end_by(end_by: Any) -> datetime:
    """``end_by`` in UTC; naive values are refused (see :func:`_parse_end_by`)."""
    if not isinstance(end_by, datetime) or end_by.utcoffset() is None:
        raise InvalidRecurrence(
            f"end_by {end_by!r} must be an ISO-8601 date and time with a UTC offset, "
            "e.g. 2027-06-30T00:00:00+02:00",
            field="recurrence.end_by", value=end_by)
    return end_by.astimezone(UTC)


def _zone(name: Any) -> ZoneInfo:
    """The zone, with the server schedule's rules for names but this module's error."""
    problem = timezone_problem(name)
    if problem is not None:
        raise InvalidRecurrence(f"time zone {name!r}: {problem}", field="recurrence.timezone",
                                value=name)
    return parse_timezone(name)


# -- formatting ---------------------------------------------------------------------------


def _every_text(every: timedelta, calendar: bool = False) -> str:
    """The interval in the largest unit of its kind that divides it: 5400 s -> "90m",
    7 calendar days -> "1w", 24 elapsed hours -> "24h" (not "1d": that keeps wall time)."""
    for unit, size in _UNITS.items():
        if (unit in _CALENDAR_UNITS) == calendar and every % size == timedelta(0):
            return f"{every // size}{unit}"
    raise AssertionError(f"unreachable: {every!r} is not whole seconds")


def _iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- occurrences --------------------------------------------------------------------------


def _aware(instant: datetime, name: str) -> datetime:
    if not isinstance(instant, datetime) or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def _cron_after(rec: Recurrence, after: datetime) -> Iterator[datetime]:
    """The cron's real instants (UTC, increasing, no repeats) strictly after ``after``.

    croniter walks naive wall times; :func:`resolve` maps each to its instant (gap -> the
    first instant after the gap, repeated -> its first occurrence). That map never goes
    backwards, so equal neighbours are the only duplicates. Starting from the wall reading
    of ``after`` skips only wall times that resolve at or before it; the few that still do
    (after ``after`` in the wall clock, before it in real time: the repeated hour) are
    dropped.
    """
    assert rec.cron is not None
    tz = _zone(rec.timezone)
    start = after.astimezone(tz).replace(tzinfo=None, fold=0)
    walls = croniter(rec.cron, start)
    last: datetime | None = None
    while True:
        try:
            wall = walls.get_next(datetime)
        except CroniterBadDateError:  # no further occurrence croniter can find
            return
        instant = resolve(wall.date(), wall.time(), tz)
        if instant <= after or instant == last:
            continue
        last = instant
        yield instant


def _past_end(rec: Recurrence, instant: datetime) -> bool:
    return rec.end_by is not None and instant > rec.end_by


def first_occurrence(rec: Recurrence, start: datetime) -> datetime | None:
    """When run 1 is due: the first occurrence at or after ``start`` (UTC), or ``None``
    if that is after ``end_by``.

    For ``every`` it is ``start`` itself: the interval counts from the job's start.
    """
    start = _aware(start, "start")
    if rec.every is not None:
        first: datetime | None = start
    else:
        first = next(_cron_after(rec, start - _TINY), None)
    if first is None or _past_end(rec, first):
        return None
    return first


def next_occurrence(rec: Recurrence, *, anchor: datetime, previous: datetime,
                    now: datetime, runs_done: int) -> tuple[datetime | None, int]:
    """When the next run is due after the run due at ``previous`` finished at ``now``.

    ``anchor`` is run 1's due time (the origin of ``every``); ``runs_done`` counts the runs
    done so far, including the one that just finished. Returns ``(next, skipped)``:
    ``next`` is the first occurrence strictly after ``max(previous, now)``, ``skipped`` the
    number of occurrences strictly between ``previous`` and ``next`` (missed, not replayed).

    The series ends, returning ``None``, when ``runs_done >= end_after`` (skipped is then
    0: nothing was missed, the series is complete) or when ``next`` is after ``end_by``
    (skipped then counts only occurrences up to ``end_by``: later ones were never due).
    Skipped occurrences do not count toward ``end_after``, which limits *runs*. For cron,
    the count stops at :data:`MAX_COUNTED_SKIPS`.
    """
    anchor = _aware(anchor, "anchor")
    previous = _aware(previous, "previous")
    now = _aware(now, "now")
    if isinstance(runs_done, bool) or not isinstance(runs_done, int) or runs_done < 0:
        raise ValueError(f"runs_done must be a whole number >= 0, got {runs_done!r}")
    if rec.end_after is not None and runs_done >= rec.end_after:
        return None, 0
    after = max(previous, now)
    upcoming: datetime | None
    if rec.every is not None:
        upcoming, skipped = _every_next(rec, anchor, previous, after)
    else:
        upcoming, skipped = _cron_next(rec, previous, after)
    if upcoming is None or _past_end(rec, upcoming):
        return None, skipped
    return upcoming, skipped


def skips_are_a_lower_bound(rec: Recurrence | Mapping[str, Any], skipped: int) -> bool:
    """Whether ``skipped`` (from :func:`next_occurrence`) is only a lower bound: a cron
    count that reached :data:`MAX_COUNTED_SKIPS`. ``every`` counts are always exact.
    ``rec`` may be the stored mapping (:meth:`Recurrence.to_json`)."""
    cron = rec.get("cron") if isinstance(rec, Mapping) else rec.cron
    return cron is not None and skipped >= MAX_COUNTED_SKIPS


def _every_next(rec: Recurrence, anchor: datetime, previous: datetime,
                after: datetime) -> tuple[datetime, int]:
    """Next occurrence of ``every`` after ``after``, and the skips, by index arithmetic
    (O(1), exact even for ``every: 1s`` a year late)."""
    series = _Series(rec, anchor)
    k_next = series.first_after(after)
    upcoming = series.at(k_next)
    last_skipped = k_next - 1
    if rec.end_by is not None:
        last_skipped = min(last_skipped, series.first_after(rec.end_by) - 1)
    return upcoming, max(0, last_skipped - series.first_after(previous) + 1)


class _Series:
    """The occurrences of an ``every`` recurrence, numbered from 0 (the anchor).

    Elapsed: ``anchor + k * every``. Calendar (days, weeks): the anchor's wall time on its
    local date + k * every, resolved to a real instant in the zone (never decreasing in
    k). ``timedelta // timedelta`` is exact floor division on microseconds; for calendar
    days it is an estimate that DST shifts by a few hours at most, corrected by a step or
    two either way."""

    def __init__(self, rec: Recurrence, anchor: datetime) -> None:
        assert rec.every is not None
        self.every = rec.every
        self.anchor = anchor
        self.calendar = bool(rec.calendar)
        self.zone = _zone(rec.timezone)
        wall = anchor.astimezone(self.zone)
        self.day = wall.date()
        self.time = wall.time().replace(fold=0)

    def at(self, k: int) -> datetime:
        if k == 0 or not self.calendar:
            return self.anchor + k * self.every
        return resolve(self.day + k * self.every, self.time, self.zone)

    def first_after(self, instant: datetime) -> int:
        """The index of the first occurrence strictly after ``instant``."""
        k = max(0, (instant - self.anchor) // self.every + 1)
        if not self.calendar:
            return k
        while k > 0 and self.at(k - 1) > instant:
            k -= 1
        while self.at(k) <= instant:
            k += 1
        return k


def _cron_next(rec: Recurrence, previous: datetime,
               after: datetime) -> tuple[datetime | None, int]:
    """Next cron instant after ``after``, and the cron instants in ``(previous, next)``
    (and not after ``end_by``), counted up to :data:`MAX_COUNTED_SKIPS`."""
    upcoming = next(_cron_after(rec, after), None)
    limit = upcoming
    if rec.end_by is not None and (limit is None or limit > rec.end_by):
        limit = rec.end_by + _TINY  # count occurrences <= end_by
    skipped = 0
    if limit is not None and limit > previous:
        for instant in _cron_after(rec, previous):
            if instant >= limit or skipped >= MAX_COUNTED_SKIPS:
                break
            skipped += 1
    return upcoming, skipped
