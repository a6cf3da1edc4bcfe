"""Sample processes for integration tests that report what they received."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from batchjobs import ProcessContext, batchable


@batchable
def record(ctx: ProcessContext, path: str, value: str = "") -> None:
    """Append this run's context and ``value`` as one JSON line to ``path``."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps({**dataclasses.asdict(ctx), "value": value}) + "\n")
