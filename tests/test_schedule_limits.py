"""Schedules refuse what cannot run: a window's threads above the cap of --threads, and
time zones that are not IANA region zones, in server schedules and in recurrences."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from batchjobs.errors import InvalidRecurrence, InvalidSchedule
from batchjobs.recurrence import parse_recurrence
from batchjobs.schedule import (
    MAX_THREADS,
    Window,
    parse_schedule,
    parse_timezone,
    windows_from_json,
)
from tests.test_cli_validation import home, run  # noqa: F401 - fixture

NOT_REGION = ["right/UTC", "right/Europe/Oslo", "posix/Europe/Oslo", "posix/UTC", "localtime",
              "posixrules", "Factory", "right", "posix"]


def test_a_window_above_the_thread_cap_is_refused_naming_it():
    with pytest.raises(InvalidSchedule) as info:
        parse_schedule(f"08:00-18:00=2,18:00-07:30={MAX_THREADS + 1}")
    assert info.value.value == f"18:00-07:30={MAX_THREADS + 1}"
    assert f"more than a server may run ({MAX_THREADS}" in str(info.value)
    with pytest.raises(InvalidSchedule):
        parse_schedule("08:00-18:00=100000")


def test_a_window_at_the_thread_cap_is_accepted():
    assert parse_schedule(f"08:00-18:00={MAX_THREADS}")[0].threads == MAX_THREADS


def test_stored_and_built_windows_obey_the_same_cap():
    with pytest.raises(InvalidSchedule):
        windows_from_json([{"start": "08:00", "end": "18:00", "threads": 100000}])
    with pytest.raises(InvalidSchedule):
        Window(time(8), time(18), MAX_THREADS + 1)


@pytest.mark.parametrize("name", NOT_REGION)
def test_a_zone_that_is_not_an_iana_region_zone_is_refused_for_a_server(name):
    with pytest.raises(InvalidSchedule) as info:
        parse_timezone(name)
    assert (info.value.field, info.value.value) == ("timezone", name)
    assert "not an IANA region zone" in str(info.value)


@pytest.mark.parametrize("name", NOT_REGION)
def test_a_zone_that_is_not_an_iana_region_zone_is_refused_for_a_recurrence(name):
    with pytest.raises(InvalidRecurrence) as info:
        parse_recurrence({"cron": "0 2 * * *", "timezone": name})
    assert (info.value.field, info.value.value) == ("recurrence.timezone", name)
    assert "not an IANA region zone" in str(info.value)


@pytest.mark.parametrize("name", ["UTC", "Europe/Oslo", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT+5"])
def test_region_zones_are_accepted(name):
    assert parse_timezone(name).key == name
    assert parse_recurrence({"cron": "0 2 * * *", "timezone": name}).timezone == name


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe", "../etc/passwd", "Europe/Oslo\x00"])
def test_unknown_zones_stay_unknown(name):
    with pytest.raises(InvalidSchedule, match="unknown time zone"):
        parse_timezone(name)


@pytest.mark.parametrize(("args", "words"), [
    (["--schedule", "08:00-18:00=100000"], ["18:00=100000", str(MAX_THREADS)]),
    (["--timezone", "right/UTC"], ["right/UTC", "IANA region zone"]),
    (["--timezone", "localtime"], ["localtime", "IANA region zone"]),
])
@pytest.mark.usefixtures("home")
def test_server_set_refuses_them_with_exit_2(args, words):
    result = run("server", "set", "AOS9", "--groups", "default", *args)
    assert result.exit_code == 2, (result.output, result.exception)
    for word in words:
        assert word in result.stderr
    assert "AOS9" not in run("server", "list").stdout


@pytest.mark.usefixtures("home")
def test_submit_refuses_a_recurrence_in_posix_zones_with_exit_2(tmp_path: Path):
    path = tmp_path / "job.yaml"
    path.write_text("description: J\nrecurrence: {cron: '0 2 * * *', timezone: posix/UTC}\n"
                    "tasks:\n  - {name: A, process: batchjobs.examples.noop}\n")
    result = run("submit", str(path), "--hold")
    assert result.exit_code == 2 and "posix/UTC" in result.stderr
    assert "IANA region zone" in result.stderr


@pytest.mark.usefixtures("home")
def test_worker_threads_above_the_cap_are_refused_before_any_process_starts():
    result = run("worker", "--server", "NEW1", "--threads", "100000")
    assert result.exit_code == 2
    assert "--threads" in result.stderr and str(MAX_THREADS) in result.stderr
