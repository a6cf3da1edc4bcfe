"""A PostgreSQL URL without psycopg installed says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys

from batchjobs.errors import ConfigError, MissingDriver

BLOCKED_PSYCOPG = """
import sys
sys.modules['psycopg'] = None  # what a production install without the extra looks like
from sqlalchemy import create_engine
from batchjobs.errors import MissingDriver
try:
    create_engine('postgresql+psycopg://u@127.0.0.1:5432/x')
except ImportError as exc:
    error = MissingDriver.from_import_error(exc)
    print(type(error).__name__, error.name, error.driver, error.extra, error, sep='|')
"""


def test_a_missing_psycopg_becomes_a_config_error_naming_the_postgres_extra():
    result = subprocess.run([sys.executable, "-c", BLOCKED_PSYCOPG], capture_output=True,
                            check=False, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    kind, name, driver, extra, message = result.stdout.strip().split("|")
    assert (kind, name, driver, extra) == ("MissingDriver", "BATCHJOBS_DATABASE_URL",
                                           "psycopg", "postgres")
    assert "pip install '.[postgres]'" in message


def test_an_import_error_that_is_not_a_driver_is_left_alone():
    assert MissingDriver.from_import_error(ModuleNotFoundError("x", name="numpy")) is None
    assert MissingDriver.from_import_error(ImportError("no name")) is None


def test_a_missing_driver_is_a_config_error_so_the_cli_exits_2():
    assert isinstance(MissingDriver("psycopg", extra="postgres"), ConfigError)
