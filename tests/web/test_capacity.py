"""The capacity preview: pure, with fixed datetimes across DST, and from the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from batchjobs.capacity import preview
from batchjobs.errors import InvalidValue
from tests.test_cli_validation import home, run  # noqa: F401 - fixture


def record(name: str, *, groups: list[str], threads: int = 1, timezone: str = "UTC",
           schedule: list[dict] | None = None) -> dict:
    return {"name": name, "groups": groups, "threads": threads, "timezone": timezone,
            "schedule": schedule or [], "live": False}


OSLO_NIGHT = [{"start": "08:00", "end": "18:00", "threads": 2},
              {"start": "18:00", "end": "07:30", "threads": 20}]


def changes(row: dict) -> list[tuple[str, str, int]]:
    return [(c["at"], c["local"], c["threads"]) for c in row["changes"]]


def test_the_first_change_is_now_and_each_window_boundary_follows():
    now = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)   # 13:00 in Oslo (CET, +01:00)
    data = preview([record("AOS1", groups=["default"], timezone="Europe/Oslo",
                           schedule=OSLO_NIGHT)], now=now, hours=24)
    assert changes(data["servers"][0]) == [
        ("2027-01-15T12:00:00+00:00", "2027-01-15T13:00:00+01:00", 2),
        ("2027-01-15T17:00:00+00:00", "2027-01-15T18:00:00+01:00", 20),
        ("2027-01-16T06:30:00+00:00", "2027-01-16T07:30:00+01:00", 0),
        ("2027-01-16T07:00:00+00:00", "2027-01-16T08:00:00+01:00", 2),
    ]


def test_spring_forward_moves_the_utc_times_of_the_same_wall_times():
    # Europe/Oslo jumps from 02:00 CET to 03:00 CEST on 2027-03-28.
    now = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    data = preview([record("AOS1", groups=["default"], timezone="Europe/Oslo",
                           schedule=OSLO_NIGHT)], now=now, hours=24)
    assert changes(data["servers"][0])[1:] == [
        ("2027-03-27T17:00:00+00:00", "2027-03-27T18:00:00+01:00", 20),
        ("2027-03-28T05:30:00+00:00", "2027-03-28T07:30:00+02:00", 0),
        ("2027-03-28T06:00:00+00:00", "2027-03-28T08:00:00+02:00", 2),
    ]


def test_a_window_starting_in_the_fall_back_hour_starts_at_its_first_occurrence():
    # Europe/Oslo repeats 02:00-03:00 on 2027-10-31; 02:30 resolves to the first one (CEST).
    now = datetime(2027, 10, 30, 22, 0, tzinfo=UTC)
    data = preview([record("AOS1", groups=["default"], timezone="Europe/Oslo",
                           schedule=[{"start": "02:30", "end": "04:00", "threads": 3}])],
                   now=now, hours=6)
    assert changes(data["servers"][0]) == [
        ("2027-10-30T22:00:00+00:00", "2027-10-31T00:00:00+02:00", 0),
        ("2027-10-31T00:30:00+00:00", "2027-10-31T02:30:00+02:00", 3),
        ("2027-10-31T03:00:00+00:00", "2027-10-31T04:00:00+01:00", 0),
    ]


def test_a_group_sums_the_servers_that_serve_it_at_each_change():
    now = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
    data = preview([
        record("AOS1", groups=["BG1", "default"], timezone="Europe/Oslo", schedule=OSLO_NIGHT),
        record("AOS2", groups=["BG1"], threads=4),
    ], now=now, hours=24)
    groups = {g["name"]: g for g in data["groups"]}
    assert [(c["at"], c["threads"]) for c in groups["BG1"]["changes"]] == [
        ("2027-01-15T12:00:00+00:00", 6), ("2027-01-15T17:00:00+00:00", 24),
        ("2027-01-16T06:30:00+00:00", 4), ("2027-01-16T07:00:00+00:00", 6)]
    assert groups["BG1"]["timezone"] == "UTC"          # two zones: shown in UTC
    assert groups["default"]["timezone"] == "Europe/Oslo"
    assert groups["BG1"]["servers"] == ["AOS1", "AOS2"]


def test_a_server_without_schedule_has_one_change_its_threads_all_day():
    now = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
    data = preview([record("AOS2", groups=["default"], threads=4)], now=now, hours=168)
    assert changes(data["servers"][0]) == [
        ("2027-01-15T12:00:00+00:00", "2027-01-15T12:00:00+00:00", 4)]


@pytest.mark.parametrize("hours", [0, 169, -1, True])
def test_hours_out_of_bounds_are_refused_naming_the_field(hours):
    with pytest.raises(InvalidValue, match="hours"):
        preview([], now=datetime(2027, 1, 15, tzinfo=UTC), hours=hours)


@pytest.mark.usefixtures("home")
def test_server_preview_prints_json_of_servers_and_groups():
    assert run("group", "add", "BG1").exit_code == 0
    assert run("server", "set", "AOS1", "--groups", "BG1", "--threads", "3").exit_code == 0
    assert run("server", "set", "AOS2", "--groups", "default", "--threads", "1").exit_code == 0
    result = run("server", "preview", "AOS1", "--hours", "24", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["servers"]] == ["AOS1"]
    assert [(g["name"], g["changes"][0]["threads"]) for g in data["groups"]] == [("BG1", 3)]
    text = run("server", "preview")
    assert text.exit_code == 0 and "server AOS2 (UTC)" in text.stdout
    assert "group default (UTC)" in text.stdout


@pytest.mark.usefixtures("home")
@pytest.mark.parametrize(("args", "word"), [(["NOPE"], "NOPE"), (["--hours", "169"], "hours")])
def test_server_preview_bad_input_exits_2_naming_it(args, word):
    assert run("db", "upgrade").exit_code == 0
    result = run("server", "preview", *args)
    assert result.exit_code == 2, result.output
    assert word in result.stderr
