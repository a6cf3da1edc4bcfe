"""Processes that add tasks to their own job at run time (``ctx.add_task``)."""

from __future__ import annotations

from typing import Any

from batchjobs import ProcessContext, batchable
from batchjobs.errors import DefinitionError


@batchable
def adds(ctx: ProcessContext, children: list[dict[str, Any]], catch: bool = False,
         fail_attempts: int = 0) -> None:
    """Add each of ``children`` (``add_task``'s keywords; ``depends_on`` by name, or
    ``{"handle": i}`` for the handle of the i-th one added here). ``catch``: print a
    refused child's error and go on. ``fail_attempts``: raise after adding, on the first
    that many attempts."""
    handles: list[Any] = []
    for child in children:
        options = dict(child)
        options["depends_on"] = [handles[d["handle"]] if isinstance(d, dict) and "handle" in d
                                 else tuple(d) if isinstance(d, list) else d
                                 for d in options.get("depends_on", [])]
        try:
            handles.append(ctx.add_task(options.pop("name"), options.pop("process"),
                                        **options))
        except DefinitionError as exc:
            if not catch:
                raise
            print(f"refused: {exc}")
    if ctx.attempt <= fail_attempts:
        raise RuntimeError(f"attempt {ctx.attempt} fails after adding {len(handles)} tasks")


@batchable
def many(ctx: ProcessContext, n: int, process: str = "batchjobs.examples.noop") -> None:
    """Add ``n`` tasks running ``process``."""
    for i in range(n):
        ctx.add_task(f"{ctx.task} {i}", process)


@batchable
def fails_while(path: str) -> None:
    """Fail while the file ``path`` exists."""
    import os

    if os.path.exists(path):
        raise RuntimeError(f"{path} exists")


@batchable
def adds_a_set(ctx: ProcessContext) -> None:
    """Add a task whose kwargs are not JSON (a set)."""
    ctx.add_task("x", "batchjobs.examples.sleep", kwargs={"seconds": {1, 2}})


@batchable(client=True)
def client_adds(ctx: ProcessContext, n: int = 2) -> None:
    """A client step (``run-client``) that adds ``n`` batch tasks."""
    for i in range(1, n + 1):
        ctx.add_task(f"after {ctx.task} {i}", "batchjobs.examples.noop")
