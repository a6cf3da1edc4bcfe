"""Sample processes for the unit tests of the batchable registry."""

from __future__ import annotations

from typing import Any

from batchjobs import ProcessContext, batchable


@batchable
def add(a: int, b: int = 0) -> int:
    """Return ``a + b``."""
    return a + b


@batchable
def whoami(ctx: ProcessContext, greeting: str = "hello") -> dict[str, Any]:
    """Return the context it received and ``greeting``."""
    return {"ctx": ctx, "greeting": greeting}


@batchable
class Report:
    """A class process: built with the kwargs, then ``run()``."""

    def __init__(self, title: str, pages: int = 1) -> None:
        self.title = title
        self.pages = pages

    def run(self) -> str:
        return f"{self.title} ({self.pages} pages)"


@batchable
class ContextReport:
    """A class process whose ``run`` takes the context."""

    def __init__(self, title: str) -> None:
        self.title = title

    def run(self, ctx: ProcessContext) -> str:
        return f"{self.title} for task {ctx.task} attempt {ctx.attempt}"


@batchable(name="samples.custom-name", client=True)
def renamed() -> str:
    """Registered under an explicit name, as a client-only process."""
    return "renamed"


def not_marked() -> str:
    """Importable, but NOT marked @batchable: no task may run it."""
    return "should never run"
