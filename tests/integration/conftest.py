"""Fixtures of the integration tests that need more than the shared backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PG_SCHEMA, reset_postgres
from tests.services import pointed_at


@pytest.fixture
def own_database(backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this test alone, on the shared broker.

    Every server's housekeeper feeds every group's queue to *its* queue depth; the
    session's servers (Batch1, Batch2) keep the default depth, so they would give a job
    that a test submits with a shallow queue all its messages at once. A test whose
    assertion depends on the queue depth uses a database that only its own servers
    read. Ask for it before ``start_server``, so its servers stop before it ends."""
    if backend.name == "embedded":
        url = f"sqlite:///{tmp_path_factory.mktemp('own') / 'batchjobs.db'}"
    else:
        url = reset_postgres(f"{PG_SCHEMA}_own")
    with pointed_at(BATCHJOBS_DATABASE_URL=url):
        yield url
