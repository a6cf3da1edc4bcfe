"""batchjobs: batch jobs with dependent tasks, run by Celery batch servers.

The public API is declared here once; everything else is internal.
"""

# Defining jobs
from .definition import Dependency, JobSpec, TaskSpec, job_from_dict, load_job_file

# Processes
from .processes import ProcessContext, batchable

# Operations
from .api import attempts, history, list_jobs, status, submit, wait
from .lifecycle import cancel, hold, release, rerun
from .alerts import list_alerts
from .client import run_client
from .recurrence import Recurrence
from .users import add_user

# Words
from .status import Alert, ConditionType, Expected, JobStatus, TaskStatus

# Errors
from .errors import (
    BatchJobsError,
    ConfigError,
    DefinitionError,
    DeliveryError,
    DependencyCycle,
    DispatchError,
    DuplicateTask,
    InvalidRecurrence,
    InvalidSchedule,
    InvalidState,
    InvalidValue,
    InUse,
    JobNotFound,
    MalformedDefinition,
    ServerNotFound,
    StoreError,
    TaskFailed,
    UnknownDependency,
    UnknownGroup,
    UnknownProcess,
)

# Configuration
from .settings import Settings

__all__ = [
    # defining jobs
    "JobSpec", "TaskSpec", "Dependency", "Recurrence", "load_job_file", "job_from_dict",
    # processes
    "batchable", "ProcessContext",
    # operations
    "submit", "status", "wait", "list_jobs", "attempts", "history",
    "hold", "release", "cancel", "rerun", "run_client", "list_alerts", "add_user",
    # words
    "Alert", "ConditionType", "Expected", "JobStatus", "TaskStatus",
    # errors
    "BatchJobsError", "DefinitionError", "MalformedDefinition", "UnknownProcess",
    "UnknownGroup", "DuplicateTask", "UnknownDependency", "DependencyCycle", "InvalidValue",
    "InvalidRecurrence", "StoreError", "JobNotFound", "ServerNotFound",
    "InUse", "InvalidState", "DispatchError", "TaskFailed", "DeliveryError", "ConfigError",
    "InvalidSchedule",
    # configuration
    "Settings",
]
