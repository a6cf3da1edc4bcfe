"""Job definitions: typed specs built in Python or read from a JSON/YAML file.

Both roads end in the same :class:`JobSpec`, and :meth:`JobSpec.validate`
checks everything that can be checked before a row is written, naming the
culprit (task, field, value) in the error.

File shape (optional keys with their defaults)::

    description: JOB 1
    alert: error            # always | error | never
    company: null
    run_at: null            # ISO-8601 with offset; null = now
    recurrence: null        # {cron: "0 2 * * 1-5" | every: 90m, timezone, end_after, end_by}
    priority: normal        # low | normal | high | critical (each task may set its own)
    max_concurrency: null   # at most N of its tasks execute at once; null = no cap
    tasks:
      - name: TASK 1
        process: batchjobs.examples.sleep
        kwargs: {seconds: 0.2}
        group: default
        company: null       # null = the job's
        retries: 0
        ignore_failure: false
        condition: all      # all | any
        retry_delay: null   # seconds or 5s / 1m before a retry (null = the job's, else 0)
        retry_backoff: null # the n-th retry waits retry_delay × backoff^(n−1) (default 1)
        retry_max_delay: null  # the cap on that wait
        retry_on: null      # [KeyError, myapp.errors.Busy]: only these are retried
        priority: null      # null = the job's
        depends_on:
          - {task: TASK 0, status: ended}   # ended | error | finished
          - {job: 42, status: ended}        # another job's outcome (job_conditions.py)

The four ``retry_*`` keys may also be given on the job, as defaults for its tasks.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import InstrumentedAttribute

from .errors import (
    DependencyCycle,
    DuplicateTask,
    InvalidValue,
    MalformedDefinition,
    UnknownDependency,
    UnknownGroup,
)
from .models import Job, Task
from .priority import DEFAULT as DEFAULT_PRIORITY
from .priority import Priority
from .processes import Process, get_process, import_configured
from .recurrence import Recurrence, parse_recurrence
from .retry import Policy, policy_of
from .settings import DEFAULT_GROUP
from .status import Alert, ConditionType, Expected

#: Deepest nesting of a job file or of a task's kwargs. Deeper is refused before any
#: recursive code (a parser, the JSON encoder, the database driver) meets it: a file nested
#: 100,000 deep made them raise RecursionError with 199 KB of traceback.
MAX_DEPTH = 100
#: Most retries a task may ask for: each retry is an attempt row, and a number past the
#: database's integer is refused by the database only after the job is half written.
MAX_RETRIES = 1000
#: Largest job id a condition may name (the database's integer): a larger one names no job.
MAX_JOB_ID = 2**31 - 1

#: The retry policy's keys (:mod:`batchjobs.retry`), on a task or as the job's defaults.
RETRY_KEYS = ("retry_delay", "retry_backoff", "retry_max_delay", "retry_on")
JOB_KEYS = frozenset({"description", "alert", "company", "run_at", "recurrence", "tasks",
                      "timeout", "priority", "max_concurrency", *RETRY_KEYS})
TASK_KEYS = frozenset({"name", "process", "kwargs", "group", "company", "retries",
                       "ignore_failure", "condition", "depends_on", "timeout", "priority",
                       *RETRY_KEYS})
#: Largest ``max_concurrency`` (the database's integer; more threads than any site has).
MAX_CONCURRENCY = 1_000_000
DEPENDENCY_KEYS = frozenset({"task", "job", "status"})


@dataclass(frozen=True)
class Dependency:
    """One condition: the parent task and the status it must reach."""

    task: str
    status: Expected = Expected.ENDED

    def to_dict(self) -> dict[str, str]:
        return {"task": self.task, "status": self.status.value}


@dataclass(frozen=True)
class JobRef:
    """Another job, named by its id, as the parent of a condition:
    ``depends_on=[(JobRef(42), "ended")]``."""

    id: int


@dataclass(frozen=True)
class JobDependency:
    """A condition on another job's outcome: it must end with ``status`` (ended, error,
    or finished = either). See :mod:`batchjobs.job_conditions`."""

    job: int
    status: Expected = Expected.ENDED

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "status": self.status.value}


@dataclass
class TaskSpec:
    """One task of a job, as defined by the user."""

    name: str
    process: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    group: str = DEFAULT_GROUP
    company: str | None = None
    retries: int = 0
    ignore_failure: bool = False
    condition: ConditionType = ConditionType.ALL
    depends_on: list[Dependency] = field(default_factory=list)
    #: Seconds its process may run (None: the job's ``timeout``, else no limit).
    timeout: float | None = None
    #: The retry policy (:mod:`batchjobs.retry`); None: the job's, else the default.
    retry_delay: float | str | None = None
    retry_backoff: float | None = None
    retry_max_delay: float | str | None = None
    retry_on: list[str] | None = None
    #: Conditions on other jobs' outcomes.
    after_jobs: list[JobDependency] = field(default_factory=list)
    #: ``low | normal | high | critical`` (None: the job's).
    priority: Priority | str | None = None

    def after(self, parent: TaskSpec | str | JobRef,
              status: Expected | str = Expected.ENDED) -> TaskSpec:
        """Add a condition: run after ``parent`` (a task of this job, or another job:
        :class:`JobRef`) reaches ``status``. Returns self."""
        if isinstance(parent, JobRef):
            self.after_jobs.append(JobDependency(parent.id, _word(
                Expected, status, self.name, "depends_on.status")))
            return self
        parent_name = parent.name if isinstance(parent, TaskSpec) else parent
        self.depends_on.append(Dependency(parent_name, _word(Expected, status, self.name,
                                                             "depends_on.status")))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "process": self.process, "kwargs": self.kwargs,
            "group": self.group, "company": self.company, "retries": self.retries,
            "ignore_failure": self.ignore_failure, "condition": self.condition.value,
            "depends_on": [d.to_dict() for d in self.depends_on]
            + [d.to_dict() for d in self.after_jobs],
            **({} if self.timeout is None else {"timeout": self.timeout}),
            **_retry_dict(self),
            **({} if self.priority is None else {"priority": str(self.priority)}),
        }


def _retry_dict(spec: TaskSpec | JobSpec) -> dict[str, Any]:
    return {key: getattr(spec, key) for key in RETRY_KEYS if getattr(spec, key) is not None}


@dataclass
class JobSpec:
    """A batch job: a description, settings and its tasks.

    Example::

        job = JobSpec("JOB 1")
        t1 = job.add_task("TASK 1", "batchjobs.examples.sleep", kwargs={"seconds": 0.2})
        t2 = job.add_task("TASK 2", "batchjobs.examples.noop", depends_on=[(t1, "finished")])
        job_id = batchjobs.submit(job)
    """

    description: str
    alert: Alert = Alert.ERROR
    company: str | None = None
    run_at: datetime | None = None
    tasks: list[TaskSpec] = field(default_factory=list)
    #: A :class:`Recurrence` or its file mapping (``{"every": "90m"}``); None = runs once.
    recurrence: Recurrence | Mapping[str, Any] | None = None
    #: Seconds a process of its tasks may run, for tasks that set none (None: no limit).
    timeout: float | None = None
    #: The retry policy of its tasks that set none (:mod:`batchjobs.retry`).
    retry_delay: float | str | None = None
    retry_backoff: float | None = None
    retry_max_delay: float | str | None = None
    retry_on: list[str] | None = None
    #: The priority of its tasks that set none: ``low | normal | high | critical``.
    priority: Priority | str = DEFAULT_PRIORITY
    #: At most this many of its tasks execute at once, across all servers (None: no cap).
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        self.alert = _word(Alert, self.alert, None, "alert")
        self.run_at = _run_at(self.run_at)
        if self.recurrence is not None:
            self.recurrence = parse_recurrence(self.recurrence)

    def add_task(self, name: str, process: str, *, kwargs: Mapping[str, Any] | None = None,
                 group: str = DEFAULT_GROUP, company: str | None = None, retries: int = 0,
                 ignore_failure: bool = False, condition: ConditionType | str = ConditionType.ALL,
                 depends_on: Iterable[tuple[TaskSpec | str | JobRef, Expected | str]
                                      | TaskSpec | str | JobRef] = (),
                 timeout: float | None = None, retry_delay: float | str | None = None,
                 retry_backoff: float | None = None,
                 retry_max_delay: float | str | None = None,
                 retry_on: Iterable[str] | None = None,
                 priority: Priority | str | None = None) -> TaskSpec:
        """Add a task and return it; ``depends_on`` items are ``(parent, status)`` or a parent
        (status ``ended``); a parent is a task (or its name) or another job
        (:class:`JobRef`)."""
        spec = TaskSpec(name=name, process=process, kwargs=dict(kwargs or {}), group=group,
                        company=company, retries=retries, ignore_failure=ignore_failure,
                        condition=_word(ConditionType, condition, name, "condition"),
                        timeout=timeout, retry_delay=retry_delay, retry_backoff=retry_backoff,
                        retry_max_delay=retry_max_delay,
                        retry_on=_names(retry_on), priority=priority)
        for item in depends_on:
            if isinstance(item, tuple):
                spec.after(*item)
            else:
                spec.after(item)
        self.tasks.append(spec)
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description, "alert": self.alert.value, "company": self.company,
            "run_at": self.run_at.isoformat() if self.run_at else None,
            "recurrence": self.recurrence.to_json()
            if isinstance(self.recurrence, Recurrence) else None,
            "tasks": [t.to_dict() for t in self.tasks],
            **({} if self.timeout is None else {"timeout": self.timeout}),
            **_retry_dict(self),
            **({} if str(self.priority) == DEFAULT_PRIORITY else {"priority": str(self.priority)}),
            **({} if self.max_concurrency is None else {"max_concurrency": self.max_concurrency}),
        }

    # -- validation -----------------------------------------------------------

    def validate(self, *, groups: Iterable[str] | None = None) -> None:
        """Check the whole definition; raise a :class:`DefinitionError` naming the culprit.

        ``groups`` is the set of existing batch groups (not checked when None).
        """
        if not isinstance(self.description, str) or not self.description.strip():
            raise InvalidValue("description must be a non-empty string", field="description",
                               value=self.description)
        check_text(self.description, field="description")
        if self.company is not None:
            if not isinstance(self.company, str):
                raise InvalidValue("company must be a string", field="company",
                                   value=self.company)
            check_text(self.company, field="company", column=Job.company)
        if not self.tasks:
            raise InvalidValue("a job needs at least one task", field="tasks", value=[])
        _check_timeout(self.timeout, None)
        self.retry_policy(None)
        self.priority = _priority(self.priority, None)
        _check_max_concurrency(self.max_concurrency)
        names: set[str] = set()
        for task in self.tasks:
            _check_task_fields(task)
            self.retry_policy(task)
            if task.name in names:
                raise DuplicateTask("task name is used twice", task=task.name, field="name",
                                    value=task.name)
            names.add(task.name)
        known_groups = set(groups) if groups is not None else None
        # The operator's modules (BATCHJOBS_IMPORTS), imported here on purpose: this host
        # must know the processes the servers know, and may import nothing else.
        import_configured()
        for task in self.tasks:
            check_task(task, groups=known_groups)
            seen_parents: set[str] = set()
            for dep in task.depends_on:
                if not isinstance(dep.task, str):
                    raise InvalidValue("a condition's task must be a task name",
                                       task=task.name, field="depends_on", value=dep.task)
                if dep.task not in names:
                    raise UnknownDependency(f"condition on task {dep.task!r}, which is not in "
                                            "the job", task=task.name, field="depends_on",
                                            value=dep.task)
                if dep.task in seen_parents:
                    raise InvalidValue(f"two conditions on task {dep.task!r}", task=task.name,
                                       field="depends_on", value=dep.task)
                seen_parents.add(dep.task)
            _check_job_dependencies(task)
        cycle = find_cycle({t.name: [d.task for d in t.depends_on] for t in self.tasks})
        if cycle:
            raise DependencyCycle(cycle)

    def retry_policy(self, task: TaskSpec | None) -> Policy:
        """The retry policy of ``task`` (its own values, else the job's), or the job's
        defaults (``task`` None), checked: :class:`InvalidValue` names the field.

        A valid policy is remembered by its values: a job of 100,000 tasks mostly has
        one or two, and is validated once and stored once (its submit's time)."""
        retries, delay, backoff = 0, self.retry_delay, self.retry_backoff
        max_delay, retry_on = self.retry_max_delay, self.retry_on
        if task is not None:   # its own values, where it gives them
            retries = task.retries
            if task.retry_delay is not None:
                delay = task.retry_delay
            if task.retry_backoff is not None:
                backoff = task.retry_backoff
            if task.retry_max_delay is not None:
                max_delay = task.retry_max_delay
            if task.retry_on is not None:
                retry_on = task.retry_on
        key = _policy_key(retries, delay, backoff, max_delay, retry_on)
        if key is not None and (known := _policies.get(key)) is not None:
            return known
        policy = policy_of(retries=retries, delay=delay, backoff=backoff,
                           max_delay=max_delay, retry_on=retry_on,
                           task=task.name if task is not None else None)
        if key is not None and len(_policies) < _POLICY_MEMO:
            _policies[key] = policy
        return policy


#: Valid retry policies by their values (:meth:`JobSpec.retry_policy`), at most this many.
_POLICY_MEMO = 256
_policies: dict[tuple[Any, ...], Policy] = {}


def _policy_key(retries: Any, delay: Any, backoff: Any, max_delay: Any,
                retry_on: Any) -> tuple[Any, ...] | None:
    """These values as a memo key: their types too (``True`` is not ``1``), a list of
    exception names as a tuple; None for what cannot be a key (checked every time)."""
    if retry_on is not None:
        if type(retry_on) is not list or not all(type(name) is str for name in retry_on):
            return None
        retry_on = tuple(retry_on)
    key = (type(retries), retries, type(delay), delay, type(backoff), backoff,
           type(max_delay), max_delay, retry_on)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def check_task(task: TaskSpec, *, groups: Collection[str] | None) -> Process:
    """The checks of one task that need no other task and no field check (see
    :func:`check_runtime_task`): its process is registered and batchable, its kwargs are
    plain JSON that bind to it, its batch group is in ``groups`` (not checked when None).
    Returns the process."""
    process = get_process(task.process, task=task.name)
    if type(task.kwargs) is not dict or task.kwargs:   # {}: plain JSON, and not deep
        _check_depth(task.kwargs, task=task.name, field_name="kwargs")
        _check_json(task)
    process.check_kwargs(task.kwargs, task=task.name)
    if groups is not None and task.group not in groups:
        raise UnknownGroup(f"batch group {task.group!r} does not exist", task=task.name,
                           field="group", value=task.group)
    return process


def check_runtime_task(task: TaskSpec, *, groups: Collection[str]) -> Process:
    """Every check of one task that :meth:`JobSpec.validate` makes without looking at
    the others: what a running process's ``ctx.add_task`` validates at once."""
    _check_task_fields(task)
    return check_task(task, groups=groups)


def find_cycle(parents: Mapping[str, list[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (a depends on b ...), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in parents:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            children = parents.get(node, [])
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return None


# -- reading files ----------------------------------------------------------------


def load_job_file(path: str | Path) -> JobSpec:
    """Read a job from a JSON or YAML file; raise :class:`MalformedDefinition` if unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MalformedDefinition(f"cannot read {path}: {exc.strerror}", field="file",
                                  value=str(path)) from None
    except UnicodeDecodeError as exc:
        raise MalformedDefinition(f"{path} is not UTF-8 text (byte {exc.start})", field="file",
                                  value=str(path)) from None
    is_json = path.suffix.lower() == ".json"
    if not text.strip():
        raise MalformedDefinition(f"{path}: the file is empty (a job needs a description and "
                                  "tasks)", field="file", value=str(path))
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except RecursionError:
        raise MalformedDefinition(f"{path} is nested too deeply (at most {MAX_DEPTH} levels)",
                                  field="file", value=str(path)) from None
    except json.JSONDecodeError as exc:
        raise MalformedDefinition(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno}", field="file", value=str(path)) from None
    except yaml.YAMLError as exc:
        raise MalformedDefinition(f"{path} is not valid YAML: {_yaml_problem(exc)}",
                                  field="file", value=str(path)) from None
    if data is None:
        raise MalformedDefinition(f"{path}: the file is empty (it holds only comments; a job "
                                  "needs a description and tasks)", field="file",
                                  value=str(path))
    return job_from_dict(data)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error in one line: the problem and where it is."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1} column {mark.column + 1}" if mark else problem


def job_from_dict(data: Any) -> JobSpec:
    """Build a :class:`JobSpec` from plain data (the file shape)."""
    if not isinstance(data, Mapping):
        raise MalformedDefinition("a job must be a mapping", value=type(data).__name__)
    _check_depth({k: v for k, v in data.items() if k != "tasks"}, task=None,
                 field_name="file")
    _no_unknown_keys(data, JOB_KEYS, None)
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, list):
        raise MalformedDefinition("'tasks' must be a list", field="tasks", value=tasks_data)
    description: Any = data.get("description")     # checked by validate(), as every field
    job = JobSpec(description=description, alert=data.get("alert", "error"),
                  company=data.get("company"), run_at=data.get("run_at"),
                  recurrence=data.get("recurrence"), timeout=data.get("timeout"),
                  retry_delay=data.get("retry_delay"), retry_backoff=data.get("retry_backoff"),
                  retry_max_delay=data.get("retry_max_delay"), retry_on=data.get("retry_on"),
                  priority=data.get("priority", DEFAULT_PRIORITY),
                  max_concurrency=data.get("max_concurrency"))
    for index, item in enumerate(tasks_data):
        if not isinstance(item, Mapping):
            raise MalformedDefinition(f"task #{index + 1} must be a mapping", field="tasks",
                                      value=item)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidValue(f"task #{index + 1} needs a non-empty name", field="name",
                               value=name)
        _no_unknown_keys(item, TASK_KEYS, name)
        _check_depth(item, task=name, field_name="kwargs", start=3)  # file > tasks > task
        deps = item.get("depends_on")
        deps = [] if deps is None else deps
        if not isinstance(deps, list):
            raise MalformedDefinition("'depends_on' must be a list", task=name,
                                      field="depends_on", value=deps)
        kwargs = item.get("kwargs")
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, Mapping):
            raise InvalidValue("kwargs must be a mapping", task=name, field="kwargs", value=kwargs)
        process: Any = item.get("process")
        task = job.add_task(name, process, kwargs=kwargs,
                            group=item.get("group", DEFAULT_GROUP), company=item.get("company"),
                            retries=item.get("retries", 0),
                            ignore_failure=item.get("ignore_failure", False),
                            condition=item.get("condition", "all"),
                            timeout=item.get("timeout"), retry_delay=item.get("retry_delay"),
                            retry_backoff=item.get("retry_backoff"),
                            retry_max_delay=item.get("retry_max_delay"),
                            retry_on=item.get("retry_on"), priority=item.get("priority"))
        for dep in deps:
            if not isinstance(dep, Mapping) or ("task" in dep) == ("job" in dep):
                raise MalformedDefinition("each depends_on item needs 'task' or 'job' (and "
                                          "'status')", task=name, field="depends_on",
                                          value=dep)
            _no_unknown_keys(dep, DEPENDENCY_KEYS, name)
            parent = JobRef(dep["job"]) if "job" in dep else str(dep["task"])
            task.after(parent, dep.get("status", "ended"))
    return job


# -- helpers -------------------------------------------------------------------


def _word(enum: type[StrEnum], value: Any, task: str | None, field_name: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = " | ".join(m.value for m in enum)
        raise InvalidValue(f"{value!r} is not one of {allowed}", task=task, field=field_name,
                           value=value) from None


def _run_at(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidValue("run_at must be ISO-8601 with an offset", field="run_at",
                               value=value) from None
    if not isinstance(value, datetime):
        raise InvalidValue("run_at must be ISO-8601 with an offset", field="run_at", value=value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue("run_at needs a UTC offset (e.g. +01:00 or Z)", field="run_at",
                           value=value.isoformat())
    return value


def _no_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], task: str | None) -> None:
    if data.keys() <= allowed:
        return
    unknown = [k for k in data if not isinstance(k, str) or k not in allowed]
    if unknown:
        key = unknown[0]
        names = ", ".join(sorted(allowed))
        raise MalformedDefinition(f"unknown key {str(key)!r} (allowed: {names})",
                                  task=task, field=str(key), value=data[key])


def _check_task_fields(task: TaskSpec) -> None:
    if not isinstance(task.name, str) or not task.name.strip():
        raise InvalidValue("task name must be a non-empty string", field="name", value=task.name)
    check_text(task.name, task=task.name, field="name", column=Task.name)
    if isinstance(task.process, str):
        check_text(task.process, task=task.name, field="process", column=Task.process)
    if not isinstance(task.group, str) or not task.group:
        raise InvalidValue("group must be a non-empty string", task=task.name, field="group",
                           value=task.group)
    check_text(task.group, task=task.name, field="group", column=Task.group_name)
    if isinstance(task.retries, bool) or not isinstance(task.retries, int) or task.retries < 0:
        raise InvalidValue("retries must be a whole number >= 0", task=task.name,
                           field="retries", value=task.retries)
    if task.retries > MAX_RETRIES:
        raise InvalidValue(f"retries must be at most {MAX_RETRIES}", task=task.name,
                           field="retries", value=task.retries)
    if not isinstance(task.ignore_failure, bool):
        raise InvalidValue("ignore_failure must be true or false", task=task.name,
                           field="ignore_failure", value=task.ignore_failure)
    if task.company is not None and not isinstance(task.company, str):
        raise InvalidValue("company must be a string", task=task.name, field="company",
                           value=task.company)
    if task.company is not None:
        check_text(task.company, task=task.name, field="company", column=Task.company)

    _check_timeout(task.timeout, task.name)
    if task.priority is not None:
        task.priority = _priority(task.priority, task.name)


def _priority(value: Any, task: str | None) -> Priority:
    """A priority word (``low | normal | high | critical``), or InvalidValue naming it."""
    if not isinstance(value, str):
        raise InvalidValue(f"{value!r} is not one of low | normal | high | critical",
                           task=task, field="priority", value=value)
    chosen: Priority = _word(Priority, value, task, "priority")
    return chosen


def _check_max_concurrency(value: Any) -> None:
    """A job's cap is a whole number of tasks >= 1 (None: no cap)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not \
            1 <= value <= MAX_CONCURRENCY:
        raise InvalidValue(f"{value!r}: max_concurrency must be a whole number from 1 to "
                           f"{MAX_CONCURRENCY} (or null: no cap)", field="max_concurrency",
                           value=value)


def check_user(user: str) -> None:
    """Refuse a user name the database cannot store (``--user``, ``BATCHJOBS_USER``)."""
    if not isinstance(user, str) or not user.strip():
        raise InvalidValue("user must be a non-empty string", field="user", value=user)
    check_text(user, field="user", column=Job.created_by)


def check_text(value: str, *, field: str, task: str | None = None,
               column: InstrumentedAttribute[Any] | None = None) -> None:
    """Refuse text the database would refuse halfway through a job: a NUL byte (PostgreSQL
    text cannot hold one), a lone surrogate (not encodable as UTF-8), or more characters
    than ``column`` (a model column such as ``Task.name``) holds. Named in the message."""
    if "\x00" in value:
        raise InvalidValue(f"contains a NUL byte (\\x00) at character {value.index(chr(0)) + 1}",
                           task=task, field=field, value=value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValue(f"contains a lone surrogate (\\u{ord(value[exc.start]):04x}) at "
                           f"character {exc.start + 1}; text must be valid Unicode",
                           task=task, field=field, value=value) from None
    if column is None:
        return
    limit = _length(column)
    if limit is not None and len(value) > limit:
        stored = column.property.columns[0]
        raise InvalidValue(f"is {len(value)} characters long; at most {limit} fit (database "
                           f"column {stored.table.name}.{stored.name})", task=task,
                           field=field, value=value)


@functools.cache
def _length(column: InstrumentedAttribute[Any]) -> int | None:
    """The characters a model's text column holds (None: no limit)."""
    return getattr(column.property.columns[0].type, "length", None)


def _names(value: Iterable[str] | None) -> list[str] | None:
    """``retry_on`` as given, a list (a string stays a string: refused by validate)."""
    if value is None or isinstance(value, str) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    return list(value)


def _check_job_dependencies(task: TaskSpec) -> None:
    """Conditions on other jobs: each a positive job id, at most one per job (whether the
    job exists is the store's to say, at submit: :func:`job_conditions.check_awaited`)."""
    seen: set[int] = set()
    for dep in task.after_jobs:
        if isinstance(dep.job, bool) or not isinstance(dep.job, int) or dep.job <= 0:
            raise InvalidValue("a condition's job must be a job id (a whole number > 0)",
                               task=task.name, field="depends_on.job", value=dep.job)
        if dep.job > MAX_JOB_ID:
            raise InvalidValue(f"job {dep.job} does not exist", task=task.name,
                               field="depends_on.job", value=dep.job)
        if dep.job in seen:
            raise InvalidValue(f"two conditions on job {dep.job}", task=task.name,
                               field="depends_on.job", value=dep.job)
        seen.add(dep.job)


def _check_depth(data: Any, *, task: str | None, field_name: str, start: int = 1) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` (``data`` itself is at level
    ``start``, a value inside it one level down), walking without recursion; only
    containers are stacked, since a 100,000-task file is mostly short strings."""
    stack: list[tuple[Any, int]] = [(data, start)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            _too_deep(task, field_name)
        if type(item) is dict or isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        for child in children:
            if child is None or isinstance(child, _SCALARS):
                if depth >= MAX_DEPTH:
                    _too_deep(task, field_name)
            else:
                stack.append((child, depth + 1))


#: What holds nothing, in a job file or in kwargs (``bool`` is an ``int``).
_SCALARS = (str, int, float)


def _too_deep(task: str | None, field_name: str) -> None:
    raise MalformedDefinition(f"nested more than {MAX_DEPTH} levels deep", task=task,
                              field=field_name, value=f"depth > {MAX_DEPTH}")


def _check_timeout(value: Any, task: str | None) -> None:
    """A timeout is a positive number of seconds (or None: no limit)."""
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        raise InvalidValue("timeout must be a positive number of seconds", task=task,
                           field="timeout", value=value)


def _check_json(task: TaskSpec) -> None:
    """kwargs must survive a JSON round trip unchanged (that is what a worker receives)."""
    try:
        text = json.dumps(task.kwargs, allow_nan=False)
    except RecursionError:
        raise InvalidValue(f"kwargs are nested more than {MAX_DEPTH} levels deep",
                           task=task.name, field="kwargs", value="(too deep)") from None
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"kwargs are not JSON: {exc}", task=task.name, field="kwargs",
                           value=repr(task.kwargs)) from None
    if json.loads(text) != task.kwargs:
        raise InvalidValue("kwargs are not plain JSON (tuples, non-string keys?)",
                           task=task.name, field="kwargs", value=repr(task.kwargs))

