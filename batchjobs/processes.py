"""The batchable-process registry: AX's CanGoBatch rule.

Only a function or class marked with :func:`batchable` may be put in a task,
and a worker refuses to run anything else, even if a message names it. A
process is known by its dotted name (``module.qualname``).

Processes come only from where the operator says: the modules listed in
``BATCHJOBS_IMPORTS``, the shipped :mod:`batchjobs.examples`, and modules this
interpreter has already imported. Nothing is imported because a job file or a
task message names it: a process name is data from outside, and importing a
module runs its top-level code (``process: this.s`` would print the Zen of
Python on the submitting host; a forged message could import anything on a
server). When a name is not registered, the configured modules are imported
(once per interpreter) and the name is looked up again; if it is still
unknown, the error says why: the module is not found, it raised while
importing (exception, file and line), the object is not marked
``@batchable``, or no configured module defines it (and which were searched).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from .errors import CannotAddTasks, ConfigError, InvalidValue, UnknownProcess
from .settings import get_settings

if TYPE_CHECKING:
    from .definition import TaskSpec
    from .runtime import DependsOn, RuntimeTasks

#: Modules shipped with batchjobs whose processes every host knows.
BUILTIN_MODULES = ("batchjobs.examples",)
#: What to do when a configured module cannot be used; said in every such error.
IMPORT_HINT = ("list the module in BATCHJOBS_IMPORTS and make it importable on this host "
               "(PYTHONPATH or an installed package)")


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
    #: Where :meth:`add_task` keeps what this attempt adds (None: a context built by hand).
    #: Not a field: the context's fields are what a process may copy (``asdict``) or log.
    runtime: ClassVar[RuntimeTasks | None] = None

    def with_runtime(self, runtime: RuntimeTasks) -> ProcessContext:
        """This context, keeping in ``runtime`` the tasks its process adds (the attempt's
        runner calls it)."""
        object.__setattr__(self, "runtime", runtime)
        return self

    def add_task(self, name: str, process: str, *, kwargs: Mapping[str, Any] | None = None,
                 group: str | None = None, company: str | None = None, retries: int = 0,
                 ignore_failure: bool = False, condition: str = "all",
                 depends_on: DependsOn = (), timeout: float | None = None) -> TaskSpec:
        """Add a task to this job, to run in parallel with the others (AX's
        ``addRuntimeTask``); return its handle, for ``depends_on`` of a later one.

        Validated at once like a submitted task (a bad one raises here, naming the
        culprit); stored only if this attempt succeeds (:mod:`batchjobs.runtime`). This
        task ends when it and every task it added have finished (``error`` if one of
        them ended ``error`` without ``ignore_failure``); its dependents wait for that.
        ``depends_on``: tasks added before by this task only. ``group``, ``company`` and
        ``timeout`` default to this task's."""
        if self.runtime is None:
            raise CannotAddTasks(self.task)
        return self.runtime.add(name, process, kwargs=kwargs, group=group, company=company,
                                retries=retries, ignore_failure=ignore_failure,
                                condition=condition, depends_on=depends_on, timeout=timeout)


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
            if kwargs:
                self.signature().bind(**kwargs)
            elif (problem := _binds_nothing(self.target)) is not None:
                raise TypeError(problem)
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


@functools.lru_cache(maxsize=1024)
def _binds_nothing(target: Callable[..., Any]) -> str | None:
    """Why ``target`` cannot run without kwargs (None: it can); once per process, since
    most tasks of a large job give none."""
    try:
        _signature(target).bind()
    except TypeError as exc:
        return str(exc)
    return None


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


@dataclass(frozen=True)
class ImportFailure:
    """Why a configured module could not be imported: ``missing`` (not found on the path)
    or ``raised`` (its own code raised); ``detail`` is one line with the exception and,
    for ``raised``, the file and line it came from."""

    module: str
    kind: Literal["missing", "raised"]
    detail: str

    def describe(self) -> str:
        if self.kind == "missing":
            return f"module {self.module!r} is not found ({self.detail})"
        return f"module {self.module!r} raised while importing: {self.detail}"


#: Configured modules imported (or tried) in this interpreter, with their failures.
_tried: set[str] = set()
_failures: dict[str, ImportFailure] = {}


def configured_modules(imports: Iterable[str] | None = None) -> tuple[str, ...]:
    """The modules processes may come from: the shipped examples, then ``imports``
    (default: ``BATCHJOBS_IMPORTS`` of this process), in order, without repeats."""
    listed = get_settings().imports if imports is None else tuple(imports)
    return tuple(dict.fromkeys((*BUILTIN_MODULES, *listed)))


def import_configured(imports: Iterable[str] | None = None) -> dict[str, ImportFailure]:
    """Import every configured module not tried yet in this interpreter; return the
    failures so far, by module.

    This is the only place batchjobs imports a module for its processes: the
    submitting host calls it when it validates a job, a server when it looks up a
    process it does not know yet. A failure is kept, not raised, so that a broken
    module is reported against the task that needs it, not against every job.
    """
    for module in configured_modules(imports):
        if module in _tried:
            continue
        _tried.add(module)
        failure = _try_import(module)
        if failure is not None:
            _failures[module] = failure
    return dict(_failures)


def require_configured() -> None:
    """Import the configured modules; raise :class:`ConfigError` naming every one that
    fails. A batch server calls it before it starts, so that a module the operator listed
    but cannot be loaded stops the server with one line instead of failing every task."""
    failures = import_configured()
    if failures:
        problems = "; ".join(f.describe() for f in failures.values())
        raise ConfigError(f"BATCHJOBS_IMPORTS: {problems} ({IMPORT_HINT})",
                          name="BATCHJOBS_IMPORTS")


def _try_import(module: str) -> ImportFailure | None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            return ImportFailure(module, "missing", f"no module named {missing!r}")
        return ImportFailure(module, "raised", _one_line(exc))
    except (Exception, SystemExit) as exc:  # any error of the user's module is reported
        return ImportFailure(module, "raised", _one_line(exc))
    return None


def _one_line(exc: BaseException) -> str:
    """``Type: message (file:line)``: the innermost frame of the user's code that raised
    (a SyntaxError carries its own place)."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    head = text[-1] if text else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{head} ({exc.filename}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and "importlib" not in f.filename]
    return f"{head} ({frames[-1].filename}:{frames[-1].lineno})" if frames else head


def get_process(name: str, *, task: str | None = None) -> Process:
    """The registered process called ``name``; raises :class:`UnknownProcess` saying why
    otherwise. Imports nothing but the configured modules (see the module docstring)."""
    process = _registry.get(name) if isinstance(name, str) else None
    if process is not None:
        return process
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise UnknownProcess(f"{name!r} is not a dotted name such as myapp.jobs.report",
                             task=task, field="process", value=name)
    failures = import_configured()
    process = _registry.get(name)
    if process is None:
        raise UnknownProcess(_why_unknown(name, failures), task=task, field="process",
                             value=name)
    return process


def _why_unknown(name: str, failures: dict[str, ImportFailure]) -> str:
    """Why ``name`` is not registered, judged from what is imported; imports nothing."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        failure = failures.get(module_name)
        if failure is not None:
            return f"process {name!r} cannot be loaded: {failure.describe()}; {IMPORT_HINT}"
        module = sys.modules.get(module_name)
        if module is None:
            continue
        target: Any = module
        for attr in parts[cut:]:
            target = getattr(target, attr, None)
            if target is None:
                break
        if target is not None:
            return (f"{name!r} exists but is not marked @batchable (decorate it with "
                    "batchjobs.batchable)")
        if module_name in configured_modules():
            return (f"{name!r} is not in module {module_name!r} (it has no "
                    f"{'.'.join(parts[cut:])!r})")
        break  # e.g. a package imported for another reason: not where processes come from
    searched = ", ".join(
        f"{m} ({failures[m].kind})" if m in failures else m for m in configured_modules())
    return (f"no configured module defines {name!r} (searched: {searched}); "
            f"{IMPORT_HINT}")


def registered() -> list[str]:
    """Names of every process registered in this interpreter so far."""
    return sorted(_registry)
