"""The systemd units in deploy/systemd: valid for systemd, and stopping as a warm shutdown."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT_FILES = sorted(UNITS.glob("*.service"))


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_every_unit_needs_the_network_and_stops_as_a_warm_shutdown():
    assert {p.name for p in UNIT_FILES} >= {"batchjobs-worker@.service",
                                            "batchjobs-coordinator.service",
                                            "batchjobs-flower.service", "batchjobs-web.service"}
    for path in UNIT_FILES:
        unit = read_unit(path)
        assert "network-online.target" in unit["Unit"]["Wants"].split(), path.name
        assert "network-online.target" in unit["Unit"]["After"].split(), path.name
        service = unit["Service"]
        assert service["KillMode"] == "mixed", path.name
        assert service["TimeoutStopSec"], path.name
        assert service["User"] == "batchjobs" and service["NoNewPrivileges"] == "yes", path.name
    worker = read_unit(UNITS / "batchjobs-worker@.service")["Service"]
    assert worker["KillSignal"] == "SIGTERM" and worker["TimeoutStopSec"] == "1h"
    assert worker["ExecStart"].endswith("batchjobs worker --server %i")


def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the units were not verified")
    # The units name /opt/batchjobs/bin/...; verify wants executables that exist.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("batchjobs", "celery"):
        (bin_dir / name).symlink_to(shutil.which("true") or "/bin/true")
    for path in UNIT_FILES:
        (tmp_path / path.name).write_text(path.read_text().replace("/opt/batchjobs/bin",
                                                                   str(bin_dir)))
    names = [p.name.replace("@.service", "@AOS1.service") for p in UNIT_FILES]
    result = subprocess.run([analyze, "verify", *names], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "batchjobs" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
