"""The batchable-process registry: AX's CanGoBatch rule.

Only a function or class marked with :func:`batchable` may be put in a task,
and a worker refuses to run anything else, even if a message names it. A
process is known by its dotted name (``module.qualname``); when a name is not
registered yet, its module is imported once so its decorators can run, and the
name must then be in the registry.
"""

from __future__ import annotations

import functools
import importlib
import re
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import InvalidValue, UnknownProcess


@dataclass(frozen=True)
class ProcessContext:
    """What a running process knows about its task; passed as the ``ctx`` argument."""

    job_id: int
    task_id: int
    task: str
    attempt: int
    company: str | None
    user: str
    server: str


@dataclass(frozen=True)
class Process:
    """A registered batchable process."""

    name: str
    target: Callable[..., Any]
    is_class: bool
    takes_context: bool
    client: bool = False

    def signature(self) -> inspect.Signature:
        """The parameters a task's kwargs bind to (``ctx`` excluded); computed once, since
        a large job checks every task against it."""
        return _signature(self.target)

    def check_kwargs(self, kwargs: dict[str, Any], *, task: str | None = None) -> None:
        """Refuse keyword arguments the process does not accept."""
        try:
            self.signature().bind(**kwargs)
        except TypeError as exc:
            raise InvalidValue(f"process {self.name} does not accept these kwargs: {exc}",
                               task=task, field="kwargs", value=kwargs) from None

    def run(self, ctx: ProcessContext, kwargs: dict[str, Any]) -> Any:
        if self.is_class:
            instance = self.target(**kwargs)
            method = instance.run
            if "ctx" in inspect.signature(method).parameters:
                return method(ctx=ctx)
            return method()
        if self.takes_context:
            return self.target(ctx=ctx, **kwargs)
        return self.target(**kwargs)


@functools.lru_cache(maxsize=1024)
def _signature(target: Callable[..., Any]) -> inspect.Signature:
    sig = inspect.signature(target)
    return sig.replace(parameters=[p for p in sig.parameters.values() if p.name != "ctx"])


_registry: dict[str, Process] = {}
_DOTTED = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")

F = TypeVar("F", bound=Callable[..., Any])


def batchable(target: F | None = None, *, name: str | None = None, client: bool = False) -> Any:
    """Mark a function or class as a batchable process.

    A function is called with the task's kwargs (and ``ctx`` if it has such a
    parameter); a class is built with the kwargs and its ``run()`` (or
    ``run(ctx)``) is called. ``client=True`` marks a process that must be run
    by a person, never on a batch server.
    """

    def register(obj: F) -> F:
        dotted = name or f"{obj.__module__}.{obj.__qualname__}"
        is_class = inspect.isclass(obj)
        takes_ctx = (not is_class) and "ctx" in inspect.signature(obj).parameters
        _registry[dotted] = Process(dotted, obj, is_class, takes_ctx, client)
        return obj

    if target is not None:
        return register(target)
    return register


def get_process(name: str, *, task: str | None = None) -> Process:
    """The registered process called ``name``; raises :class:`UnknownProcess` otherwise."""
    process = _registry.get(name) if isinstance(name, str) else None
    if process is not None:
        return process
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise UnknownProcess(f"{name!r} is not a dotted name such as myapp.jobs.report",
                             task=task, field="process", value=name)
    if process is None:
        module_name = name.rpartition(".")[0]
        while module_name and process is None:
            try:
                importlib.import_module(module_name)
            except ImportError:
                module_name = module_name.rpartition(".")[0]
                continue
            process = _registry.get(name)
            break
    if process is None:
        raise UnknownProcess(f"{name!r} is not a registered batchable process", task=task,
                             field="process", value=name)
    return process


def registered() -> list[str]:
    """Names of every process registered in this interpreter so far."""
    return sorted(_registry)
