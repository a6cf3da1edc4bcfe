"""URLs read from files (``BATCHJOBS_*_URL_FILE``): the pure part."""

from __future__ import annotations

import pytest

from batchjobs.errors import ConfigError
from batchjobs.settings import Settings


def test_urls_come_from_files_without_their_final_newline(tmp_path):
    database, broker = tmp_path / "db", tmp_path / "broker"
    database.write_text("postgresql+psycopg://u:pw1@127.0.0.1/x\n")
    broker.write_text("  rediss://:pw2@127.0.0.1:6380/0?ssl_cert_reqs=required\n\n")
    settings = Settings.from_env({"BATCHJOBS_HOME": str(tmp_path),
                                  "BATCHJOBS_DATABASE_URL_FILE": str(database),
                                  "BATCHJOBS_BROKER_URL_FILE": str(broker)})
    assert settings.database_url == "postgresql+psycopg://u:pw1@127.0.0.1/x"
    assert settings.broker_url == "rediss://:pw2@127.0.0.1:6380/0?ssl_cert_reqs=required"
    assert "pw1" not in settings.safe_database_url() and "pw2" not in settings.safe_broker_url()


def test_a_missing_or_empty_file_or_both_forms_are_refused_naming_the_variable(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = [
        ({"BATCHJOBS_DATABASE_URL_FILE": str(tmp_path / "nope")},
         "BATCHJOBS_DATABASE_URL_FILE: cannot read .*nope: No such file"),
        ({"BATCHJOBS_BROKER_URL_FILE": str(empty)}, "BATCHJOBS_BROKER_URL_FILE: .*empty is empty"),
        ({"BATCHJOBS_BROKER_URL_FILE": str(empty), "BATCHJOBS_BROKER_URL": "redis://h"},
         "set BATCHJOBS_BROKER_URL or BATCHJOBS_BROKER_URL_FILE, not both"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError, match=message) as raised:
            Settings.from_env({"BATCHJOBS_HOME": str(tmp_path), **env})
        assert raised.value.name is not None and raised.value.name.endswith("_FILE")


def test_without_files_the_variables_and_defaults_apply_as_before(tmp_path):
    settings = Settings.from_env({"BATCHJOBS_HOME": str(tmp_path),
                                  "BATCHJOBS_BROKER_URL": "amqp://u:p@127.0.0.1:5672/v"})
    assert settings.broker_url == "amqp://u:p@127.0.0.1:5672/v"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'batchjobs.db'}"
