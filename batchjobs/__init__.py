"""batchjobs: batch jobs with dependent tasks, run by Celery batch servers.

The public API is declared here once; everything else is internal.
"""

# Defining jobs
from .definition import Dependency, JobSpec, TaskSpec, job_from_dict, load_job_file

# Processes
from .processes import ProcessContext, batchable

# Operations
from .api import attempts, list_jobs, status, submit, wait

# Words
from .status import Alert, ConditionType, Expected, JobStatus, TaskStatus

# Errors
from .errors import (
    BatchJobsError,
    ConfigError,
    DefinitionError,
    DependencyCycle,
    DispatchError,
    DuplicateTask,
    InvalidSchedule,
    InvalidValue,
    GroupNotFound,
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
    "JobSpec", "TaskSpec", "Dependency", "load_job_file", "job_from_dict",
    # processes
    "batchable", "ProcessContext",
    # operations
    "submit", "status", "wait", "list_jobs", "attempts",
    # words
    "Alert", "ConditionType", "Expected", "JobStatus", "TaskStatus",
    # errors
    "BatchJobsError", "DefinitionError", "MalformedDefinition", "UnknownProcess",
    "UnknownGroup", "DuplicateTask", "UnknownDependency", "DependencyCycle", "InvalidValue",
    "StoreError", "JobNotFound", "ServerNotFound", "GroupNotFound", "InUse", "DispatchError", "TaskFailed", "ConfigError", "InvalidSchedule",
    # configuration
    "Settings",
]
