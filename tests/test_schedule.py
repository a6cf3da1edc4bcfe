"""The pure thread-schedule rules: windows of wall time -> threads at an instant, across DST.

Every instant here is fixed; nothing reads the clock.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from batchjobs.errors import ConfigError, InvalidSchedule
from batchjobs.schedule import (
    Window,
    next_change,
    occurrence,
    parse_schedule,
    parse_timezone,
    resolve,
    threads_at,
    windows_from_json,
    windows_to_json,
)

OSLO = ZoneInfo("Europe/Oslo")
NEW_YORK = ZoneInfo("America/New_York")
AX = "08:00-18:00=2,18:00-07:30=20"

# DST days used below (2027):
#   Europe/Oslo       spring 03-28 02:00 -> 03:00 (01:00 UTC); fall 10-31 03:00 -> 02:00 (01:00 UTC)
#   America/New_York  spring 03-14 02:00 -> 03:00 (07:00 UTC); fall 11-07 02:00 -> 01:00 (06:00 UTC)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int = 0,
          second: int = 0) -> datetime:
    """An aware wall-clock instant in ``tz`` (first occurrence if the wall time repeats)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0
        ) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def duration(text: str, day: date, tz: ZoneInfo) -> timedelta:
    """Real time the (single) window of ``text`` is open when it starts on ``day``."""
    (window,) = parse_schedule(text)
    start, end = occurrence(window, day, tz)
    return end - start


# -- the AX example --------------------------------------------------------------------


@pytest.mark.parametrize(("wall", "expected"), [
    (time(10, 0), 2),
    (time(17, 59, 59), 2),
    (time(18, 0), 20),
    (time(3, 0), 20),
    (time(7, 30), 0),
    (time(7, 45), 0),
])
def test_the_ax_schedule_gives_the_threads_of_the_window_in_force_and_0_between_windows(
        wall, expected):
    instant = datetime.combine(date(2027, 6, 15), wall, tzinfo=OSLO)
    assert threads_at(parse_schedule(AX), OSLO, instant, default=7) == expected


def test_the_ax_schedule_reads_its_wall_times_in_the_servers_zone_not_utc():
    # 06:15 UTC is 08:15 in Oslo in summer: the day window (read as UTC it would be the night).
    assert threads_at(parse_schedule(AX), OSLO, utc(2027, 6, 15, 6, 15), default=7) == 2


# -- no windows, midnight, adjacency ----------------------------------------------------


@pytest.mark.parametrize("hour", [0, 3, 8, 12, 18, 23])
def test_a_server_without_windows_runs_its_default_all_day(hour):
    assert threads_at((), OSLO, local(OSLO, 2027, 6, 15, hour), default=4) == 4


def test_a_server_without_windows_runs_its_default_on_a_dst_day():
    assert threads_at((), OSLO, utc(2027, 3, 28, 1, 30), default=4) == 4


def test_outside_every_window_the_default_does_not_apply_and_the_server_runs_0():
    schedule = parse_schedule("08:00-09:00=3")
    assert threads_at(schedule, OSLO, local(OSLO, 2027, 6, 15, 12), default=4) == 0


def test_a_window_whose_end_is_before_its_start_crosses_midnight():
    assert Window(time(22, 0), time(2, 0), 4).crosses_midnight is True


def test_a_window_ending_at_midnight_crosses_midnight():
    assert Window(time(18, 0), time(0, 0), 4).crosses_midnight is True


def test_a_window_ending_after_its_start_stays_within_the_day():
    assert Window(time(8, 0), time(18, 0), 4).crosses_midnight is False


@pytest.mark.parametrize(("instant", "expected"), [
    (local(OSLO, 2027, 6, 15, 21, 59, 59), 0),
    (local(OSLO, 2027, 6, 15, 22, 0), 4),
    (local(OSLO, 2027, 6, 15, 23, 59, 59), 4),
    (local(OSLO, 2027, 6, 16, 0, 0), 4),
    (local(OSLO, 2027, 6, 16, 1, 59, 59), 4),
    (local(OSLO, 2027, 6, 16, 2, 0), 0),
])
def test_a_window_crossing_midnight_runs_from_its_start_tonight_until_its_end_tomorrow(
        instant, expected):
    assert threads_at(parse_schedule("22:00-02:00=4"), OSLO, instant, default=9) == expected


def test_a_window_ending_at_midnight_runs_until_the_last_second_of_the_day():
    schedule = parse_schedule("18:00-00:00=3")
    assert threads_at(schedule, OSLO, local(OSLO, 2027, 6, 15, 23, 59, 59), default=9) == 3


def test_a_window_ending_at_midnight_is_over_at_midnight():
    schedule = parse_schedule("18:00-00:00=3")
    assert threads_at(schedule, OSLO, local(OSLO, 2027, 6, 16, 0, 0), default=9) == 0


def test_adjacent_windows_are_accepted():
    assert len(parse_schedule("08:00-12:00=2,12:00-18:00=5")) == 2


def test_adjacent_windows_across_midnight_are_accepted():
    assert len(parse_schedule("18:00-00:00=3,00:00-06:00=1")) == 2


def test_the_earlier_of_adjacent_windows_holds_until_the_boundary():
    schedule = parse_schedule("08:00-12:00=2,12:00-18:00=5")
    assert threads_at(schedule, OSLO, local(OSLO, 2027, 6, 15, 11, 59, 59), default=0) == 2


def test_the_later_of_adjacent_windows_takes_over_at_the_boundary():
    schedule = parse_schedule("08:00-12:00=2,12:00-18:00=5")
    assert threads_at(schedule, OSLO, local(OSLO, 2027, 6, 15, 12, 0), default=0) == 5


def test_threads_at_refuses_a_naive_instant():
    with pytest.raises(ValueError, match="timezone-aware"):
        threads_at(parse_schedule(AX), OSLO, datetime(2027, 6, 15, 10, 0), default=1)


# -- parsing ---------------------------------------------------------------------------


def test_a_schedule_is_read_into_windows_in_the_order_written():
    assert parse_schedule(AX) == (Window(time(8, 0), time(18, 0), 2),
                                  Window(time(18, 0), time(7, 30), 20))


def test_spaces_around_windows_are_tolerated():
    assert parse_schedule("  08:00-18:00=2 ,  18:00-07:30=20 ") == parse_schedule(AX)


@pytest.mark.parametrize("text", ["", "   ", '""', "''"])
def test_an_empty_schedule_has_no_windows(text):
    assert parse_schedule(text) == ()


def test_times_may_carry_seconds():
    assert parse_schedule("08:00:30-18:00=2") == (Window(time(8, 0, 30), time(18, 0), 2),)


def test_a_window_prints_as_it_is_written():
    assert str(Window(time(8, 0), time(18, 0), 2)) == "08:00-18:00=2"


def test_a_window_prints_its_seconds_only_when_they_are_not_zero():
    assert str(Window(time(8, 0, 30), time(18, 0), 2)) == "08:00:30-18:00=2"


@pytest.mark.parametrize(("text", "culprit", "message"), [
    ("08:00-18:00", "08:00-18:00", "START-END=THREADS"),
    ("08:00 to 18:00=2", "08:00 to 18:00=2", "START-END=THREADS"),
    ("8h-18:00=2", "8h-18:00=2", "is not HH:MM"),
    ("25:00-07:00=2", "25:00-07:00=2", "hour 25 is not 0-23"),
    ("12:60-13:00=1", "12:60-13:00=1", "minute 60 is not 0-59"),
    ("12:00:60-13:00=1", "12:00:60-13:00=1", "second 60 is not 0-59"),
    ("08:00-09:00=-1", "08:00-09:00=-1", "threads -1 is negative"),
    ("08:00-09:00=x", "08:00-09:00=x", "threads 'x' is not a whole number"),
    ("08:00-09:00=2.5", "08:00-09:00=2.5", "threads '2.5' is not a whole number"),
    ("08:00-09:00=", "08:00-09:00=", "threads '' is not a whole number"),
    ("08:00-08:00=1", "08:00-08:00=1", "cannot start and end at the same time"),
    ("00:00-00:00=3", "00:00-00:00=3", "cannot start and end at the same time"),
    # the second window is named, the one it overlaps is in the message
    ("08:00-12:00=2,11:00-13:00=3", "11:00-13:00=3", "overlaps window 08:00-12:00=2"),
    ("18:00-07:30=20,06:00-09:00=2", "06:00-09:00=2", "overlaps window 18:00-07:30=20"),
    ("06:00-09:00=2,18:00-07:30=20", "18:00-07:30=20", "overlaps window 06:00-09:00=2"),
    ("22:00-02:00=1,23:00-01:00=2", "23:00-01:00=2", "overlaps window 22:00-02:00=1"),
    ("08:00-09:00=1,,10:00-11:00=2", "08:00-09:00=1,,10:00-11:00=2", "empty window"),
])
def test_a_malformed_schedule_is_refused_naming_the_window_at_fault(text, culprit, message):
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(text)
    assert caught.value.value == culprit
    assert message in str(caught.value)
    assert caught.value.field == "schedule"


def test_an_overlap_error_says_which_wall_times_are_shared():
    with pytest.raises(InvalidSchedule, match=r"\(06:00-07:30\)"):
        parse_schedule("18:00-07:30=20,06:00-09:00=2")


def test_an_overlap_error_names_both_windows_in_its_message():
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule("18:00-07:30=20,06:00-09:00=2")
    assert str(caught.value) == ("schedule '06:00-09:00=2': window 06:00-09:00=2 overlaps "
                                 "window 18:00-07:30=20 (06:00-07:30)")


def test_a_schedule_error_is_a_config_error():
    with pytest.raises(ConfigError):
        parse_schedule("25:00-07:00=2")


def test_a_window_built_by_hand_obeys_the_same_rules():
    with pytest.raises(InvalidSchedule, match="cannot start and end at the same time"):
        Window(time(8, 0), time(8, 0), 1)


def test_a_window_built_by_hand_refuses_negative_threads():
    with pytest.raises(InvalidSchedule, match="negative"):
        Window(time(8, 0), time(9, 0), -1)


# -- time zones ------------------------------------------------------------------------


def test_a_known_time_zone_is_returned_as_a_zoneinfo():
    assert parse_timezone("Europe/Oslo") == ZoneInfo("Europe/Oslo")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Europe", "", "/etc/passwd", "../x"])
def test_an_unknown_time_zone_is_refused_naming_it(name):
    with pytest.raises(InvalidSchedule, match="unknown time zone") as caught:
        parse_timezone(name)
    assert caught.value.value == name
    assert caught.value.field == "timezone"


# -- resolving wall times --------------------------------------------------------------


def test_a_wall_time_in_the_spring_forward_gap_resolves_to_the_end_of_the_gap():
    assert resolve(date(2027, 3, 28), time(2, 30), OSLO) == utc(2027, 3, 28, 1, 0)


def test_a_repeated_wall_time_resolves_to_its_first_occurrence():
    assert resolve(date(2027, 10, 31), time(2, 30), OSLO) == utc(2027, 10, 31, 0, 30)


def test_an_ordinary_wall_time_resolves_with_the_days_offset():
    assert resolve(date(2027, 6, 15), time(8, 0), OSLO) == utc(2027, 6, 15, 6, 0)


# -- DST spring forward, Europe/Oslo 2027-03-28 ----------------------------------------


def test_a_window_starting_in_the_spring_gap_is_closed_just_before_the_clocks_jump():
    schedule = parse_schedule("02:30-05:00=4")
    assert threads_at(schedule, OSLO, utc(2027, 3, 28, 0, 59, 59), default=9) == 0


def test_a_window_starting_in_the_spring_gap_opens_when_the_clocks_jump_to_03_00():
    schedule = parse_schedule("02:30-05:00=4")
    assert threads_at(schedule, OSLO, utc(2027, 3, 28, 1, 0), default=9) == 4


def test_a_window_starting_in_the_spring_gap_opens_at_01_00_utc():
    schedule = parse_schedule("02:30-05:00=4")
    assert next_change(schedule, OSLO, utc(2027, 3, 28, 0, 0), default=9) == utc(2027, 3, 28, 1)


def test_a_window_spanning_the_spring_gap_lasts_one_hour_less():
    assert duration("01:00-04:00=3", date(2027, 3, 28), OSLO) == timedelta(hours=2)


def test_a_window_spanning_the_spring_gap_closes_2_real_hours_after_it_opens():
    schedule = parse_schedule("01:00-04:00=3")
    opened = utc(2027, 3, 28, 0, 0)  # 01:00 CET
    assert next_change(schedule, OSLO, opened, default=9) - opened == timedelta(hours=2)


def test_a_window_entirely_inside_the_spring_gap_does_not_happen_that_day():
    schedule = parse_schedule("02:10-02:40=5")
    assert threads_at(schedule, OSLO, utc(2027, 3, 28, 1, 0), default=9) == 0


def test_a_window_entirely_inside_the_spring_gap_happens_again_the_next_day():
    schedule = parse_schedule("02:10-02:40=5")
    assert next_change(schedule, OSLO, utc(2027, 3, 27, 12), default=9) == \
        utc(2027, 3, 29, 0, 10)


# -- DST fall back, Europe/Oslo 2027-10-31 ----------------------------------------------


@pytest.mark.parametrize("instant", [utc(2027, 10, 31, 0, 0), utc(2027, 10, 31, 0, 29, 59)])
def test_a_window_in_the_repeated_hour_is_open_during_the_first_pass(instant):
    assert threads_at(parse_schedule("02:00-02:30=6"), OSLO, instant, default=9) == 6


@pytest.mark.parametrize("instant", [utc(2027, 10, 31, 1, 0), utc(2027, 10, 31, 1, 15),
                                     utc(2027, 10, 31, 1, 29, 59)])
def test_a_window_in_the_repeated_hour_is_not_open_again_during_the_second_pass(instant):
    assert threads_at(parse_schedule("02:00-02:30=6"), OSLO, instant, default=9) == 0


def test_a_window_in_the_repeated_hour_lasts_its_wall_length_once():
    assert duration("02:00-02:30=6", date(2027, 10, 31), OSLO) == timedelta(minutes=30)


def test_a_window_spanning_the_repeated_hour_lasts_one_hour_more():
    assert duration("01:00-04:00=3", date(2027, 10, 31), OSLO) == timedelta(hours=4)


def test_a_window_spanning_the_repeated_hour_closes_4_real_hours_after_it_opens():
    schedule = parse_schedule("01:00-04:00=3")
    opened = utc(2027, 10, 30, 23, 0)  # 01:00 CEST
    assert next_change(schedule, OSLO, opened, default=9) - opened == timedelta(hours=4)


def test_after_the_repeated_hour_window_closes_it_next_opens_the_following_night():
    schedule = parse_schedule("02:00-02:30=6")
    # 2027-11-01 02:00 CET
    assert next_change(schedule, OSLO, utc(2027, 10, 31, 0, 30), default=9) == \
        utc(2027, 11, 1, 1, 0)


# -- DST in America/New_York -----------------------------------------------------------


def test_new_york_a_window_starting_in_the_spring_gap_is_closed_before_the_jump():
    schedule = parse_schedule("02:30-05:00=4")
    assert threads_at(schedule, NEW_YORK, utc(2027, 3, 14, 6, 59, 59), default=9) == 0


def test_new_york_a_window_starting_in_the_spring_gap_opens_at_03_00_edt():
    schedule = parse_schedule("02:30-05:00=4")
    assert threads_at(schedule, NEW_YORK, utc(2027, 3, 14, 7, 0), default=9) == 4


def test_new_york_a_window_spanning_the_spring_gap_lasts_2_real_hours():
    assert duration("01:00-04:00=3", date(2027, 3, 14), NEW_YORK) == timedelta(hours=2)


def test_new_york_a_window_in_the_repeated_hour_is_open_during_the_first_pass():
    schedule = parse_schedule("01:00-01:30=6")
    assert threads_at(schedule, NEW_YORK, utc(2027, 11, 7, 5, 15), default=9) == 6  # EDT


def test_new_york_a_window_in_the_repeated_hour_is_not_open_during_the_second_pass():
    schedule = parse_schedule("01:00-01:30=6")
    assert threads_at(schedule, NEW_YORK, utc(2027, 11, 7, 6, 15), default=9) == 0  # EST


def test_new_york_a_window_spanning_the_repeated_hour_lasts_4_real_hours():
    assert duration("01:00-04:00=3", date(2027, 11, 7), NEW_YORK) == timedelta(hours=4)


# -- next_change -----------------------------------------------------------------------


def test_next_change_from_the_day_window_is_its_end_at_18_00_oslo():
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 6, 15, 10), default=1) == \
        local(OSLO, 2027, 6, 15, 18)


def test_next_change_is_the_utc_instant_of_the_local_boundary():
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 6, 15, 10), default=1) == \
        utc(2027, 6, 15, 16, 0)


def test_next_change_is_given_in_utc():
    found = next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 6, 15, 10), default=1)
    assert found is not None and found.tzinfo is UTC


def test_next_change_is_strictly_after_the_given_instant():
    # At 18:00 the night window has just begun; it next changes when it ends.
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 6, 15, 18), default=1) == \
        local(OSLO, 2027, 6, 16, 7, 30)


def test_next_change_between_windows_is_the_start_of_the_next_window():
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 6, 16, 7, 45),
                       default=1) == local(OSLO, 2027, 6, 16, 8, 0)


def test_next_change_across_spring_forward_uses_the_new_offset():
    # The night window ends at 07:30 CEST on 2027-03-28, i.e. 05:30 UTC (not 06:30).
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 3, 27, 20), default=1) == \
        utc(2027, 3, 28, 5, 30)


def test_next_change_across_fall_back_uses_the_new_offset():
    # The night window ends at 07:30 CET on 2027-10-31, i.e. 06:30 UTC (not 05:30).
    assert next_change(parse_schedule(AX), OSLO, local(OSLO, 2027, 10, 30, 20), default=1) == \
        utc(2027, 10, 31, 6, 30)


def test_next_change_skips_a_boundary_where_the_thread_count_stays_the_same():
    schedule = parse_schedule("08:00-12:00=2,12:00-18:00=2")
    assert next_change(schedule, OSLO, local(OSLO, 2027, 6, 15, 9), default=1) == \
        local(OSLO, 2027, 6, 15, 18)


def test_next_change_is_none_without_windows():
    assert next_change((), OSLO, local(OSLO, 2027, 6, 15, 9), default=1) is None


def test_next_change_is_none_when_windows_with_equal_threads_cover_the_whole_day():
    schedule = parse_schedule("08:00-20:00=2,20:00-08:00=2")
    assert next_change(schedule, OSLO, local(OSLO, 2027, 6, 15, 9), default=1) is None


def test_next_change_of_a_nearly_all_day_window_is_its_last_second():
    schedule = parse_schedule("00:00-23:59:59=3")
    assert next_change(schedule, OSLO, local(OSLO, 2027, 6, 15, 12), default=1) == \
        local(OSLO, 2027, 6, 15, 23, 59, 59)


def test_next_change_after_a_nearly_all_day_window_closes_is_midnight():
    schedule = parse_schedule("00:00-23:59:59=3")
    assert next_change(schedule, OSLO, local(OSLO, 2027, 6, 15, 23, 59, 59), default=1) == \
        local(OSLO, 2027, 6, 16, 0, 0)


def test_next_change_refuses_a_naive_instant():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_change(parse_schedule(AX), OSLO, datetime(2027, 6, 15, 10, 0), default=1)


# -- JSON ------------------------------------------------------------------------------


def test_windows_are_written_as_json_with_hh_mm_times():
    assert windows_to_json(parse_schedule(AX)) == [
        {"start": "08:00", "end": "18:00", "threads": 2},
        {"start": "18:00", "end": "07:30", "threads": 20},
    ]


def test_json_times_carry_seconds_only_when_they_are_not_zero():
    assert windows_to_json(parse_schedule("08:00:30-18:00=2")) == [
        {"start": "08:00:30", "end": "18:00", "threads": 2}]


def test_windows_survive_a_json_round_trip():
    windows = parse_schedule("08:00:30-18:00=2,18:00-07:30=20")
    assert windows_from_json(json.loads(json.dumps(windows_to_json(windows)))) == windows


def test_no_windows_survive_a_json_round_trip():
    assert windows_from_json(windows_to_json(())) == ()


@pytest.mark.parametrize(("items", "message"), [
    ([{"start": "08:00", "end": "18:00"}], "missing threads"),
    ([{"start": "08:00", "end": "18:00", "threads": 2, "extra": 1}], "unexpected extra"),
    ([{"start": "25:00", "end": "18:00", "threads": 2}], "hour 25 is not 0-23"),
    ([{"start": 8, "end": "18:00", "threads": 2}], "start must be text"),
    ([{"start": "08:00", "end": "18:00", "threads": "2"}], "is not a whole number"),
    ([{"start": "08:00", "end": "18:00", "threads": True}], "is not a whole number"),
    ([{"start": "08:00", "end": "18:00", "threads": -1}], "negative"),
    ([{"start": "08:00", "end": "08:00", "threads": 1}], "same time"),
    (["08:00-18:00=2"], "must be an object"),
])
def test_malformed_json_windows_are_refused_naming_the_item(items, message):
    with pytest.raises(InvalidSchedule, match=message) as caught:
        windows_from_json(items)
    assert caught.value.value == items[0]


def test_overlapping_json_windows_are_refused_naming_the_later_one():
    items = [{"start": "18:00", "end": "07:30", "threads": 20},
             {"start": "06:00", "end": "09:00", "threads": 2}]
    with pytest.raises(InvalidSchedule, match="overlaps window 18:00-07:30=20") as caught:
        windows_from_json(items)
    assert caught.value.value == items[1]


def test_json_that_is_not_a_list_is_refused():
    with pytest.raises(InvalidSchedule, match="must be a list"):
        windows_from_json({"start": "08:00", "end": "18:00",  # type: ignore[arg-type]
                           "threads": 2})
