"""Pure units of the metrics endpoint's settings and the log filter."""

from __future__ import annotations

import logging

import pytest

from batchjobs.errors import ConfigError
from batchjobs.logfilters import CONTROL_LOGGER, NoResultBackendFilter
from batchjobs.metrics import configured_port


def test_metrics_port_is_off_unless_set_and_refuses_what_is_no_port():
    assert configured_port({}) is None
    assert configured_port({"BATCHJOBS_METRICS_PORT": " 9808 "}) == 9808
    for bad in ("0", "65536", "http", "-1"):
        with pytest.raises(ConfigError, match=f"BATCHJOBS_METRICS_PORT.*{bad!r}"):
            configured_port({"BATCHJOBS_METRICS_PORT": bad})


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(CONTROL_LOGGER, logging.WARNING, __file__, 1, message, args, None)


def test_the_filter_drops_the_revoke_warning_only():
    keep = NoResultBackendFilter().filter
    assert not keep(record("Failed to mark task %s as revoked in backend: %s", "abc",
                           "No result backend is configured.\nPlease see the documentation"))
    assert keep(record("Failed to mark task %s as revoked in backend: %s", "abc", "timeout"))
    assert keep(record("Terminating %s (%s)", "abc", 15))


def test_the_installation_registry_reads_the_figures_of_an_empty_installation(tmp_path,
                                                                             monkeypatch):
    from prometheus_client import generate_latest

    from batchjobs import store
    from batchjobs.app import app, configure
    from batchjobs.metrics import installation_registry

    monkeypatch.delenv("BATCHJOBS_DATABASE_URL", raising=False)
    monkeypatch.delenv("BATCHJOBS_BROKER_URL", raising=False)
    monkeypatch.setenv("BATCHJOBS_HOME", str(tmp_path))
    configure()
    store.reset_engines()
    store.get_engine()          # an empty installation: its database made, nothing in it
    try:
        text = generate_latest(installation_registry(app)).decode()
    finally:
        store.reset_engines()
        monkeypatch.undo()
        configure()
    assert 'batchjobs_jobs{status="ended"} 0.0' in text
    assert 'batchjobs_ready_tasks{group="default"} 0.0' in text
    assert 'batchjobs_queue_messages{group="default"} 0.0' in text
