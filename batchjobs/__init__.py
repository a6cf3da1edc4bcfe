"""batchjobs: batch jobs with dependent tasks, run by Celery batch servers.

The public API is declared here once; everything else is internal. Names are
imported on first use (PEP 562), so ``import batchjobs`` (and every command of the
CLI) loads only what it needs: reading a job's status never imports Celery, YAML or
the alert sinks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the module that defines it, grouped by concept.
_PUBLIC: dict[str, str] = {
    # defining jobs
    "JobSpec": "definition", "TaskSpec": "definition", "Dependency": "definition",
    "Recurrence": "recurrence", "load_job_file": "definition", "job_from_dict": "definition",
    "JobRef": "definition",
    # processes
    "batchable": "processes", "ProcessContext": "processes", "Retry": "retry", "Fail": "retry",
    # operations
    "submit": "api", "status": "api", "wait": "api", "list_jobs": "api", "attempts": "api",
    "history": "api", "hold": "lifecycle", "release": "lifecycle", "cancel": "lifecycle",
    "rerun": "lifecycle", "run_client": "client", "list_alerts": "alerts", "add_user": "users",
    # words
    "Alert": "status", "ConditionType": "status", "Expected": "status", "JobStatus": "status",
    "TaskStatus": "status",
    # errors
    **{name: "errors" for name in (
        "BatchJobsError", "DefinitionError", "MalformedDefinition", "UnknownProcess",
        "UnknownGroup", "DuplicateTask", "UnknownDependency", "DependencyCycle",
        "InvalidValue", "InvalidRecurrence", "StoreError", "JobNotFound", "TaskNotFound",
        "ServerNotFound",
        "InUse", "InvalidState", "DispatchError", "RunError", "ClientOnly", "TaskFailed",
        "ServerStartError", "DeliveryError", "ConfigError", "InvalidSchedule")},
    # configuration
    "Settings": "settings",
}

__all__ = sorted(_PUBLIC)

# ``status`` is both a submodule (the status words) and the public function that reads a
# job's status. Load the words now (cheap) and drop the attribute their import set, so
# that ``batchjobs.status`` is always the function (found by ``__getattr__``).
from . import status as _words  # noqa: E402

globals().pop("status")


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'batchjobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value      # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


if TYPE_CHECKING:
    from .alerts import list_alerts
    from .api import attempts, history, list_jobs, status, submit, wait
    from .client import run_client
    from .definition import Dependency, JobRef, JobSpec, TaskSpec, job_from_dict, load_job_file
    from .errors import (
        BatchJobsError,
        ClientOnly,
        ConfigError,
        DefinitionError,
        DeliveryError,
        DependencyCycle,
        DispatchError,
        DuplicateTask,
        InUse,
        InvalidRecurrence,
        InvalidSchedule,
        InvalidState,
        InvalidValue,
        JobNotFound,
        MalformedDefinition,
        RunError,
        ServerNotFound,
        ServerStartError,
        StoreError,
        TaskFailed,
        TaskNotFound,
        UnknownDependency,
        UnknownGroup,
        UnknownProcess,
    )
    from .lifecycle import cancel, hold, release, rerun
    from .processes import ProcessContext, batchable
    from .recurrence import Recurrence
    from .retry import Fail, Retry
    from .settings import Settings
    from .status import Alert, ConditionType, Expected, JobStatus, TaskStatus
    from .users import add_user
