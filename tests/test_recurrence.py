"""The pure recurrence rules: parsing, cron in a zone across DST, fixed intervals, skips, ends.

Every instant here is fixed; nothing reads the clock.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from batchjobs import recurrence as recurrence_module
from batchjobs.errors import DefinitionError, InvalidRecurrence
from batchjobs.recurrence import (
    Recurrence,
    first_occurrence,
    next_occurrence,
    parse_recurrence,
)

OSLO = ZoneInfo("Europe/Oslo")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def oslo(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=OSLO, fold=fold)


def series(rec: Recurrence, start: datetime, count: int) -> list[datetime]:
    """``count`` due times, each run finishing the instant it starts (nothing skipped)."""
    first = first_occurrence(rec, start)
    assert first is not None
    out = [first]
    while len(out) < count:
        upcoming, skipped = next_occurrence(rec, anchor=first, previous=out[-1], now=out[-1],
                                            runs_done=len(out))
        assert upcoming is not None and skipped == 0
        out.append(upcoming)
    return out


def local(instants: list[datetime]) -> list[str]:
    return [i.astimezone(OSLO).strftime("%m-%d %H:%M:%S%z") for i in instants]


# -- parsing ------------------------------------------------------------------------------


def test_parse_cron() -> None:
    rec = parse_recurrence({"cron": " 0 2  * * 1-5 ", "timezone": "Europe/Oslo",
                            "end_after": 10, "end_by": "2027-06-30T00:00:00+02:00"})
    assert rec == Recurrence(cron="0 2 * * 1-5", every=None, timezone="Europe/Oslo",
                             end_after=10, end_by=utc(2027, 6, 29, 22))
    assert rec.end_by is not None and rec.end_by.tzinfo is UTC


@pytest.mark.parametrize(("text", "expected"), [
    ("2s", timedelta(seconds=2)),
    ("90m", timedelta(minutes=90)),
    ("36h", timedelta(hours=36)),
    ("1d", timedelta(days=1)),
    ("2w", timedelta(weeks=2)),
])
def test_parse_every(text: str, expected: timedelta) -> None:
    rec = parse_recurrence({"every": text})
    assert rec.every == expected and rec.cron is None and rec.timezone == "UTC"


def test_parse_returns_a_recurrence_as_is() -> None:
    rec = Recurrence(cron=None, every=timedelta(minutes=5))
    assert parse_recurrence(rec) is rec


def test_none_values_count_as_absent() -> None:
    rec = parse_recurrence({"cron": None, "every": "5m", "timezone": None, "end_after": None,
                            "end_by": None})
    assert rec == Recurrence(cron=None, every=timedelta(minutes=5))


def test_end_by_may_be_a_yaml_datetime() -> None:
    end = datetime(2027, 6, 30, tzinfo=OSLO)
    assert parse_recurrence({"every": "1d", "end_by": end}).end_by == utc(2027, 6, 29, 22)


def test_end_by_accepts_z() -> None:
    assert parse_recurrence({"every": "1d", "end_by": "2027-06-30T00:00:00Z"}).end_by == \
        utc(2027, 6, 30)


@pytest.mark.parametrize(("raw", "field", "value"), [
    ("0 2 * * *", "recurrence", "0 2 * * *"),
    (["every", "5m"], "recurrence", ["every", "5m"]),
    ({"every": "5m", "start": "now"}, "recurrence.start", "start"),
    ({"cron": "0 2 * * *", "every": "5m"}, "recurrence", {"cron": "0 2 * * *", "every": "5m"}),
    ({"timezone": "UTC"}, "recurrence", {"cron": None, "every": None}),
    ({"cron": "0 2 * *"}, "recurrence.cron", "0 2 * *"),
    ({"cron": "0 2 * * * * 2027"}, "recurrence.cron", "0 2 * * * * 2027"),
    ({"cron": "@daily"}, "recurrence.cron", "@daily"),
    ({"cron": "61 * * * *"}, "recurrence.cron", "61 * * * *"),
    ({"cron": "0 2 * * 8"}, "recurrence.cron", "0 2 * * 8"),
    ({"cron": "0 0 30 2 *"}, "recurrence.cron", "0 0 30 2 *"),
    ({"cron": 5}, "recurrence.cron", 5),
    ({"every": "90x"}, "recurrence.every", "90x"),
    ({"every": "0m"}, "recurrence.every", "0m"),
    ({"every": "1.5h"}, "recurrence.every", "1.5h"),
    ({"every": "-5m"}, "recurrence.every", "-5m"),
    ({"every": "5m\n"}, "recurrence.every", "5m\n"),
    ({"every": 90}, "recurrence.every", 90),
    ({"every": "99999999999w"}, "recurrence.every", "99999999999w"),
    ({"every": "5m", "timezone": "Mars/Olympus"}, "recurrence.timezone", "Mars/Olympus"),
    ({"every": "5m", "timezone": "../etc"}, "recurrence.timezone", "../etc"),
    ({"every": "5m", "timezone": 1}, "recurrence.timezone", 1),
    ({"every": "5m", "end_after": 0}, "recurrence.end_after", 0),
    ({"every": "5m", "end_after": True}, "recurrence.end_after", True),
    ({"every": "5m", "end_after": "10"}, "recurrence.end_after", "10"),
    ({"every": "5m", "end_after": 2.0}, "recurrence.end_after", 2.0),
    ({"every": "5m", "end_by": "next tuesday"}, "recurrence.end_by", "next tuesday"),
    ({"every": "5m", "end_by": "2027-06-30T00:00:00"}, "recurrence.end_by",
     "2027-06-30T00:00:00"),
    ({"every": "5m", "end_by": "2027-06-30"}, "recurrence.end_by", "2027-06-30"),
    ({"every": "5m", "end_by": datetime(2027, 6, 30)}, "recurrence.end_by",
     datetime(2027, 6, 30)),
    ({"every": "5m", "end_by": 1782770400}, "recurrence.end_by", 1782770400),
])
def test_parse_errors_name_field_and_value(raw: Any, field: str, value: Any) -> None:
    with pytest.raises(InvalidRecurrence) as caught:
        parse_recurrence(raw)
    error = caught.value
    assert isinstance(error, DefinitionError)
    assert error.field == field
    assert error.value == value
    assert field in str(error)
    if not isinstance(value, dict):
        assert repr(value) in str(error)


def test_every_message() -> None:
    with pytest.raises(InvalidRecurrence, match=r"every '90x' must be a number followed by "
                                                r"s, m, h, d or w"):
        parse_recurrence({"every": "90x"})


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(InvalidRecurrence) as caught:
        Recurrence(cron=None, every=timedelta(milliseconds=1500))
    assert caught.value.field == "recurrence.every"
    with pytest.raises(InvalidRecurrence) as caught:
        Recurrence(cron="0 2 * * *", every=None, end_by=datetime(2027, 1, 1))
    assert caught.value.field == "recurrence.end_by"


# -- cron across DST (Europe/Oslo: spring forward 2027-03-28, fall back 2026-10-25) ------


def test_cron_0200_across_spring_forward() -> None:
    rec = parse_recurrence({"cron": "0 2 * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2027, 3, 26, 12), 4)
    # 02:00 does not exist on the 28th: it fires when the clocks jump, 03:00 CEST.
    assert runs == [utc(2027, 3, 27, 1), utc(2027, 3, 28, 1), utc(2027, 3, 29, 0),
                    utc(2027, 3, 30, 0)]
    assert local(runs) == ["03-27 02:00:00+0100", "03-28 03:00:00+0200",
                           "03-29 02:00:00+0200", "03-30 02:00:00+0200"]
    assert all(r.tzinfo is UTC for r in runs)


def test_cron_0200_across_fall_back() -> None:
    rec = parse_recurrence({"cron": "0 2 * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2026, 10, 23, 12), 4)
    assert runs == [utc(2026, 10, 24, 0), utc(2026, 10, 25, 0), utc(2026, 10, 26, 1),
                    utc(2026, 10, 27, 1)]
    assert local(runs) == ["10-24 02:00:00+0200", "10-25 02:00:00+0200",
                           "10-26 02:00:00+0100", "10-27 02:00:00+0100"]


def test_cron_0230_in_the_spring_gap_fires_once_at_0300() -> None:
    rec = parse_recurrence({"cron": "30 2 * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2027, 3, 27, 12), 2)
    assert local(runs) == ["03-28 03:00:00+0200", "03-29 02:30:00+0200"]


def test_cron_0230_repeated_on_fall_back_fires_once() -> None:
    rec = parse_recurrence({"cron": "30 2 * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2026, 10, 24, 12), 2)
    assert local(runs) == ["10-25 02:30:00+0200", "10-26 02:30:00+0100"]
    # Finishing inside the repeated hour (02:40 CET, second pass) does not fire 02:30 again.
    upcoming, skipped = next_occurrence(rec, anchor=runs[0], previous=runs[0],
                                        now=oslo(2026, 10, 25, 2, 40, fold=1), runs_done=1)
    assert upcoming == oslo(2026, 10, 26, 2, 30) and skipped == 0


def test_cron_quarter_hours_in_the_gap_collapse_into_one_run() -> None:
    rec = parse_recurrence({"cron": "*/15 * * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2027, 3, 28, 1, 40), 4)
    assert local(runs) == ["03-28 01:45:00+0100", "03-28 03:00:00+0200",
                           "03-28 03:15:00+0200", "03-28 03:30:00+0200"]


def test_cron_repeated_hour_runs_once_and_skips_nothing_twice() -> None:
    rec = parse_recurrence({"cron": "*/30 * * * *", "timezone": "Europe/Oslo"})
    runs = series(rec, oslo(2026, 10, 25, 1, 50), 4)
    assert local(runs) == ["10-25 02:00:00+0200", "10-25 02:30:00+0200",
                           "10-25 03:00:00+0100", "10-25 03:30:00+0100"]
    upcoming, skipped = next_occurrence(rec, anchor=runs[0], previous=runs[1],
                                        now=oslo(2026, 10, 25, 2, 10, fold=1), runs_done=2)
    assert upcoming == runs[2] and skipped == 0


def test_cron_with_seconds_field() -> None:
    rec = parse_recurrence({"cron": "0 * * * * */20"})  # min hour dom month dow sec
    runs = series(rec, utc(2027, 1, 1, 9, 59, 59), 4)
    assert runs == [utc(2027, 1, 1, 10), utc(2027, 1, 1, 10, 0, 20),
                    utc(2027, 1, 1, 10, 0, 40), utc(2027, 1, 1, 11)]
    assert first_occurrence(parse_recurrence({"cron": "0 2 * * * 30"}),
                            utc(2027, 1, 1)) == utc(2027, 1, 1, 2, 0, 30)


def test_first_occurrence_is_at_or_after_start() -> None:
    rec = parse_recurrence({"cron": "0 2 * * 1-5", "timezone": "Europe/Oslo"})
    assert first_occurrence(rec, oslo(2027, 1, 4, 2)) == oslo(2027, 1, 4, 2)  # Monday
    assert first_occurrence(rec, oslo(2027, 1, 4, 2, 0, 0) + timedelta(microseconds=1)) == \
        oslo(2027, 1, 5, 2)
    assert first_occurrence(rec, oslo(2027, 1, 1, 3)) == oslo(2027, 1, 4, 2)  # Fri -> Mon


def test_first_occurrence_at_the_jump_catches_the_gap_time() -> None:
    rec = parse_recurrence({"cron": "30 2 * * *", "timezone": "Europe/Oslo"})
    assert first_occurrence(rec, oslo(2027, 3, 28, 3)) == oslo(2027, 3, 28, 3)


# -- every --------------------------------------------------------------------------------


def test_every_starts_at_start() -> None:
    rec = parse_recurrence({"every": "90m", "timezone": "Europe/Oslo"})
    start = oslo(2027, 3, 28, 0, 10, 7)
    assert first_occurrence(rec, start) == start.astimezone(UTC)


def test_every_90m_across_dst_is_90_real_minutes() -> None:
    rec = parse_recurrence({"every": "90m", "timezone": "Europe/Oslo"})
    for start in (oslo(2027, 3, 28, 0, 30), oslo(2026, 10, 25, 0, 30)):
        runs = series(rec, start, 4)
        assert [b - a for a, b in itertools.pairwise(runs)] == [timedelta(minutes=90)] * 3
    spring = series(rec, oslo(2027, 3, 28, 0, 30), 3)
    assert local(spring) == ["03-28 00:30:00+0100", "03-28 03:00:00+0200",
                             "03-28 04:30:00+0200"]


def test_every_skips_missed_occurrences() -> None:
    rec = parse_recurrence({"every": "2s"})
    t = utc(2027, 1, 1, 12)
    now = t + timedelta(seconds=7.5)
    assert next_occurrence(rec, anchor=t, previous=t, now=now, runs_done=1) == \
        (t + timedelta(seconds=8), 3)


def test_every_counts_from_the_anchor_not_from_now() -> None:
    rec = parse_recurrence({"every": "1h"})
    anchor = utc(2027, 1, 1, 0, 17)
    previous = utc(2027, 1, 1, 5, 17)
    assert next_occurrence(rec, anchor=anchor, previous=previous, now=utc(2027, 1, 1, 5, 40),
                           runs_done=6) == (utc(2027, 1, 1, 6, 17), 0)
    # Finishing exactly on an occurrence: it is not "strictly after", so it is skipped.
    assert next_occurrence(rec, anchor=anchor, previous=previous, now=utc(2027, 1, 1, 6, 17),
                           runs_done=6) == (utc(2027, 1, 1, 7, 17), 1)


def test_every_second_a_day_late_is_counted_arithmetically() -> None:
    rec = parse_recurrence({"every": "1s"})
    t = utc(2027, 1, 1)
    assert next_occurrence(rec, anchor=t, previous=t, now=t + timedelta(days=365),
                           runs_done=1) == (t + timedelta(days=365, seconds=1),
                                            365 * 86_400)


# -- every in days and weeks: wall-clock time ------------------------------------------------

LONDON = ZoneInfo("Europe/London")   # clocks change at 01:00 UTC: 02:00 local always exists


def london(instants: list[datetime]) -> list[str]:
    return [i.astimezone(LONDON).strftime("%m-%d %H:%M%z") for i in instants]


def test_every_1d_keeps_0200_local_across_both_dst_changes() -> None:
    rec = parse_recurrence({"every": "1d", "timezone": "Europe/London"})
    spring = series(rec, datetime(2027, 3, 27, 2, tzinfo=LONDON), 3)   # 28th: 01:00 -> 02:00
    assert london(spring) == ["03-27 02:00+0000", "03-28 02:00+0100", "03-29 02:00+0100"]
    assert [b - a for a, b in itertools.pairwise(spring)] == [timedelta(hours=23),
                                                              timedelta(hours=24)]
    fall = series(rec, datetime(2026, 10, 24, 2, tzinfo=LONDON), 3)     # 25th: 02:00 -> 01:00
    assert london(fall) == ["10-24 02:00+0100", "10-25 02:00+0000", "10-26 02:00+0000"]
    assert [b - a for a, b in itertools.pairwise(fall)] == [timedelta(hours=25),
                                                            timedelta(hours=24)]
    # across a whole year, every run is at 02:00 local
    year = series(rec, datetime(2026, 7, 1, 2, tzinfo=LONDON), 366)
    assert {i.astimezone(LONDON).strftime("%H:%M") for i in year} == {"02:00"}


def test_every_1w_keeps_the_wall_time_and_hours_stay_elapsed() -> None:
    weekly = series(parse_recurrence({"every": "1w", "timezone": "America/New_York"}),
                    datetime(2027, 3, 8, 9, tzinfo=ZoneInfo("America/New_York")), 3)
    assert [i.astimezone(ZoneInfo("America/New_York")).strftime("%m-%d %H:%M") for i in
            weekly] == ["03-08 09:00", "03-15 09:00", "03-22 09:00"]     # DST from 03-14
    hours = series(parse_recurrence({"every": "24h", "timezone": "Europe/London"}),
                   datetime(2027, 3, 27, 2, tzinfo=LONDON), 2)
    assert london(hours) == ["03-27 02:00+0000", "03-28 03:00+0100"]    # 24 real hours


def test_every_1d_in_the_gap_and_in_the_repeated_hour_follows_the_cron_rules() -> None:
    rec = parse_recurrence({"every": "1d", "timezone": "Europe/Oslo"})
    # 02:30 does not exist on 2027-03-28: the first instant after the gap, then 02:30 again
    assert local(series(rec, oslo(2027, 3, 27, 2, 30), 3)) == [
        "03-27 02:30:00+0100", "03-28 03:00:00+0200", "03-29 02:30:00+0200"]
    # 02:30 happens twice on 2026-10-25: its first pass, once
    assert local(series(rec, oslo(2026, 10, 24, 2, 30), 3)) == [
        "10-24 02:30:00+0200", "10-25 02:30:00+0200", "10-26 02:30:00+0100"]


def test_every_1d_skips_are_counted_in_bounded_steps(monkeypatch) -> None:
    calls = {"n": 0}
    real = recurrence_module.resolve

    def counted(*args: Any) -> datetime:
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(recurrence_module, "resolve", counted)
    rec = parse_recurrence({"every": "1d", "timezone": "Europe/Oslo"})
    anchor = oslo(2027, 1, 1, 2).astimezone(UTC)
    upcoming, skipped = next_occurrence(rec, anchor=anchor, previous=anchor,
                                        now=oslo(2036, 12, 31, 12).astimezone(UTC), runs_done=1)
    assert upcoming == oslo(2037, 1, 1, 2).astimezone(UTC)
    assert skipped == (datetime(2037, 1, 1) - datetime(2027, 1, 2)).days   # 01-02 .. 12-31
    assert calls["n"] <= 12


def test_every_keeps_its_kind_through_json_and_describe() -> None:
    daily = parse_recurrence({"every": "1d", "timezone": "Europe/Oslo"})
    hourly = parse_recurrence({"every": "24h", "timezone": "Europe/Oslo"})
    assert daily.calendar and not hourly.calendar and daily.every == hourly.every
    assert (daily.to_json()["every"], hourly.to_json()["every"]) == ("1d", "24h")
    assert Recurrence.from_json(hourly.to_json()) == hourly != daily
    assert Recurrence(cron=None, every=timedelta(days=1), timezone="Europe/Oslo") == daily
    assert daily.describe() == "every 1d at the same wall time in Europe/Oslo"
    assert hourly.describe() == "every 24h"
    with pytest.raises(InvalidRecurrence, match="not whole days"):
        Recurrence(cron=None, every=timedelta(hours=36), calendar=True)


# -- cron at fall-back ----------------------------------------------------------------------


def test_croniter_fires_a_repeated_wall_time_twice_and_an_hourly_cron_here_once() -> None:
    """croniter 7, handed zone-aware times, fires 02:30 of the fall-back night at both
    passes; the rule here is once, at the first pass (the repeated hour runs once)."""
    from croniter import croniter

    raw = croniter("30 * * * *", oslo(2026, 10, 25, 1))
    assert [raw.get_next(datetime).strftime("%H:%M%z") for _ in range(4)] == [
        "01:30+0200", "02:30+0200", "02:30+0100", "03:30+0100"]
    rec = parse_recurrence({"cron": "30 * * * *", "timezone": "Europe/Oslo"})
    ours = series(rec, oslo(2026, 10, 25, 1), 4)
    assert local(ours) == ["10-25 01:30:00+0200", "10-25 02:30:00+0200",
                           "10-25 03:30:00+0100", "10-25 04:30:00+0100"]


# -- cron skips ---------------------------------------------------------------------------


def test_cron_hourly_finishing_three_and_a_half_hours_late() -> None:
    rec = parse_recurrence({"cron": "0 * * * *", "timezone": "Europe/Oslo"})
    previous = oslo(2027, 5, 3, 10)
    assert next_occurrence(rec, anchor=previous, previous=previous,
                           now=oslo(2027, 5, 3, 13, 30), runs_done=1) == \
        (oslo(2027, 5, 3, 14), 3)


def test_cron_finishing_in_time_skips_nothing() -> None:
    rec = parse_recurrence({"cron": "0 * * * *"})
    previous = utc(2027, 5, 3, 10)
    assert next_occurrence(rec, anchor=previous, previous=previous,
                           now=utc(2027, 5, 3, 10, 59), runs_done=1) == (utc(2027, 5, 3, 11), 0)


def test_cron_skip_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recurrence_module, "MAX_COUNTED_SKIPS", 50)
    rec = parse_recurrence({"cron": "* * * * * *"})
    t = utc(2027, 1, 1)
    assert next_occurrence(rec, anchor=t, previous=t, now=t + timedelta(days=30),
                           runs_done=1) == (t + timedelta(days=30, seconds=1), 50)


# -- ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [{"every": "1h", "end_after": 3},
                                 {"cron": "0 * * * *", "end_after": 3}])
def test_end_after_stops(raw: dict[str, Any]) -> None:
    rec = parse_recurrence(raw)
    t = utc(2027, 1, 1)
    assert next_occurrence(rec, anchor=t, previous=t + timedelta(hours=1),
                           now=t + timedelta(hours=1), runs_done=2) == \
        (t + timedelta(hours=2), 0)
    assert next_occurrence(rec, anchor=t, previous=t + timedelta(hours=2),
                           now=t + timedelta(hours=5), runs_done=3) == (None, 0)


@pytest.mark.parametrize("raw", [{"every": "1h", "end_by": "2027-01-01T03:00:00Z"},
                                 {"cron": "0 * * * *", "end_by": "2027-01-01T03:00:00Z"}])
def test_end_by_stops(raw: dict[str, Any]) -> None:
    rec = parse_recurrence(raw)
    t = utc(2027, 1, 1)
    # A run due exactly at end_by still happens; the one after it does not.
    assert next_occurrence(rec, anchor=t, previous=t + timedelta(hours=2),
                           now=t + timedelta(hours=2, minutes=5), runs_done=3) == \
        (t + timedelta(hours=3), 0)
    assert next_occurrence(rec, anchor=t, previous=t + timedelta(hours=3),
                           now=t + timedelta(hours=3, minutes=5), runs_done=4) == (None, 0)
    # Late past end_by: only occurrences up to end_by count as skipped (01:00, 02:00, 03:00).
    assert next_occurrence(rec, anchor=t, previous=t, now=t + timedelta(hours=9),
                           runs_done=1) == (None, 3)
    assert first_occurrence(rec, t + timedelta(hours=3)) == t + timedelta(hours=3)
    assert first_occurrence(rec, t + timedelta(hours=3, seconds=1)) is None


# -- naive input --------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    rec = parse_recurrence({"every": "1h"})
    naive, aware = datetime(2027, 1, 1), utc(2027, 1, 1)
    with pytest.raises(ValueError, match="start"):
        first_occurrence(rec, naive)
    for name in ("anchor", "previous", "now"):
        times = {"anchor": aware, "previous": aware, "now": aware, name: naive}
        with pytest.raises(ValueError, match=name):
            next_occurrence(rec, runs_done=1, **times)


# -- json and describe --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    {"cron": "0 2 * * 1-5", "timezone": "Europe/Oslo", "end_after": 10,
     "end_by": "2027-06-30T00:00:00+02:00"},
    {"cron": "0 * * * * 30"},
    {"every": "90m"},
    {"every": "2s", "end_after": 1},
    {"every": "1w", "timezone": "America/New_York", "end_by": "2027-01-01T00:00:00.5+00:00"},
])
def test_json_round_trip(raw: dict[str, Any]) -> None:
    rec = parse_recurrence(raw)
    data = json.loads(json.dumps(rec.to_json()))
    assert Recurrence.from_json(data) == rec
    assert Recurrence.from_json(data).to_json() == data


def test_to_json_form() -> None:
    rec = parse_recurrence({"every": "90m", "timezone": "Europe/Oslo", "end_after": 10,
                            "end_by": "2027-06-30T00:00:00+02:00"})
    assert rec.to_json() == {"cron": None, "every": "90m", "timezone": "Europe/Oslo",
                             "end_after": 10, "end_by": "2027-06-29T22:00:00Z"}
    assert parse_recurrence({"every": "7d"}).to_json()["every"] == "1w"
    assert parse_recurrence({"every": "120m"}).to_json()["every"] == "2h"


@pytest.mark.parametrize(("raw", "text"), [
    ({"cron": "0 2 * * 1-5", "timezone": "Europe/Oslo", "end_after": 10,
      "end_by": "2027-06-30T00:00:00+02:00"},
     "cron 0 2 * * 1-5 in Europe/Oslo, at most 10 runs, until 2027-06-29T22:00:00Z"),
    ({"cron": "0 2 * * *"}, "cron 0 2 * * * in UTC"),
    ({"every": "90m", "end_after": 1}, "every 90m, at most 1 run"),
])
def test_describe(raw: dict[str, Any], text: str) -> None:
    assert parse_recurrence(raw).describe() == text


# -- bounded skip counting ------------------------------------------------------------------


#: Most croniter steps one skip count may take: ~30 µs each, so about 6 ms; the issue asks
#: for under 50 ms whatever the lateness.
MOST_STEPS = 200


@pytest.fixture
def counted_steps(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count croniter steps: the skip count must be bounded by steps, not by how late the
    run is (a wall-time bound alone would pass on a fast machine and fail on a loaded one)."""
    real = recurrence_module.croniter
    steps = {"n": 0}

    class Counting(real):  # type: ignore[misc, valid-type]
        def get_next(self, *args, **kwargs):
            steps["n"] += 1
            return super().get_next(*args, **kwargs)

    monkeypatch.setattr(recurrence_module, "croniter", Counting)
    return steps


@pytest.mark.parametrize(("cron", "late"), [
    ("* * * * * *", timedelta(days=2)),        # per second, 2 days late: 172,800 missed
    ("* * * * *", timedelta(days=80)),         # per minute, 80 days late: 115,200 missed
    ("* * * * * *", timedelta(days=3650)),     # ten years
    ("0 2 * * *", timedelta(days=3650)),       # daily, in a zone with DST
])
def test_a_very_late_cron_run_counts_skips_up_to_the_cap_in_bounded_steps(
        counted_steps, cron, late) -> None:
    import time as wall

    rec = parse_recurrence({"cron": cron, "timezone": "Europe/Oslo"})
    t = utc(2027, 1, 1)
    started = wall.perf_counter()
    upcoming, skipped = next_occurrence(rec, anchor=t, previous=t, now=t + late, runs_done=1)
    elapsed = wall.perf_counter() - started
    assert upcoming is not None and upcoming > t + late
    assert skipped == recurrence_module.MAX_COUNTED_SKIPS
    assert recurrence_module.skips_are_a_lower_bound(rec, skipped)
    assert counted_steps["n"] <= MOST_STEPS
    assert elapsed < 1.0, f"{elapsed:.3f} s"     # ~5 ms here; loose for a loaded machine


def test_a_cron_count_below_the_cap_is_exact_and_not_a_lower_bound() -> None:
    rec = parse_recurrence({"cron": "0 * * * *"})
    t = utc(2027, 5, 3, 10)
    _, skipped = next_occurrence(rec, anchor=t, previous=t, now=t + timedelta(hours=40),
                                 runs_done=1)
    assert skipped == 40 and not recurrence_module.skips_are_a_lower_bound(rec, skipped)


def test_every_counts_any_lateness_exactly_without_stepping(counted_steps) -> None:
    rec = parse_recurrence({"every": "1s"})
    t = utc(2027, 1, 1)
    upcoming, skipped = next_occurrence(rec, anchor=t, previous=t,
                                        now=t + timedelta(days=3650), runs_done=1)
    assert skipped == 3650 * 86400
    assert upcoming == t + timedelta(days=3650, seconds=1)
    assert not recurrence_module.skips_are_a_lower_bound(rec, skipped)
    assert counted_steps["n"] == 0
