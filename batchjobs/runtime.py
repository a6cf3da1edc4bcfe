"""Runtime tasks: a running process adds tasks to its own job (AX 2012's
``BatchHeader.addRuntimeTask``), the way a big piece of work is split to run in parallel.

``ctx.add_task`` validates each task at once, as a job's tasks are validated at submit
(process registered and batchable, kwargs plain JSON that bind, fields, batch group,
name unique in the job, conditions only on tasks added before it by the same task), so
a bad one raises in the process and names its culprit. Valid tasks are kept in this
process, not stored: the attempt's success stores them all in its own transaction
(:mod:`batchjobs.coordinator.spawn`), in one batch as a submit stores a job. An attempt
that fails (its exception, a lost process, a time limit) therefore leaves nothing
behind, and its retry adds the tasks again from scratch: never half a set, never two.

The adding task stays ``executing`` (its attempt ``ended``) until every task it added
has finished, recursively, and then ends ``ended``, or ``error`` if one of them ended
``error`` without ``ignore_failure`` (its reason names the first); only then are its own
dependents decided (:func:`batchjobs.coordinator.settlement.propagate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from . import store
from .definition import Dependency, JobSpec, TaskSpec, check_runtime_task
from .errors import DuplicateTask, InvalidValue, UnknownDependency
from .models import BatchGroup, Task
from .settings import Settings
from .status import ConditionType, Expected

#: What ``depends_on`` of ``ctx.add_task`` holds: a task added before (its handle or
#: name), alone (condition ``ended``) or with the status it must reach.
Parent = TaskSpec | str
DependsOn = Iterable[tuple[Parent, Expected | str] | Parent]


class RuntimeTasks:
    """The tasks one attempt of a process adds to its job: validated, not yet stored.

    What validation needs from the database (the job's task names, the batch groups,
    the adding task's group and timeout) is read once, at the first ``add``: a process
    that adds nothing costs nothing."""

    def __init__(self, *, job_id: int, task_id: int, task: str, company: str | None,
                 settings: Settings | None = None) -> None:
        self.job_id = job_id
        self.task_id = task_id
        self.task = task
        self.company = company
        self.settings = settings
        self._job = JobSpec(f"tasks added by {task!r}")
        self._names: set[str] | None = None
        #: Names of the tasks added here so far (what a condition may name).
        self._mine: set[str] = set()
        self._groups: set[str] = set()
        self._group = ""
        self._timeout: float | None = None

    @property
    def added(self) -> tuple[TaskSpec, ...]:
        """What was added so far, in order."""
        return tuple(self._job.tasks)

    def add(self, name: str, process: str, *, kwargs: Mapping[str, Any] | None = None,
            group: str | None = None, company: str | None = None, retries: int = 0,
            ignore_failure: bool = False, condition: ConditionType | str = ConditionType.ALL,
            depends_on: DependsOn = (), timeout: float | None = None) -> TaskSpec:
        """Validate one task and keep it; raise a :class:`DefinitionError` naming the
        culprit (nothing of this call is kept then). ``group``, ``company`` and
        ``timeout`` default to the adding task's."""
        names = self._known_names()
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidValue("kwargs must be a mapping", task=_label(name), field="kwargs",
                               value=kwargs)
        before = len(self._job.tasks)
        spec = self._job.add_task(
            name, process, kwargs=kwargs, group=self._group if group is None else group,
            company=self.company if company is None else company, retries=retries,
            ignore_failure=ignore_failure, condition=condition, depends_on=depends_on,
            timeout=self._timeout if timeout is None else timeout)
        try:
            check_runtime_task(spec, groups=self._groups)
            if spec.name in names:
                raise DuplicateTask("the job has a task of this name already", task=spec.name,
                                    field="name", value=spec.name)
            self._check_conditions(spec)
        except Exception:
            del self._job.tasks[before:]
            raise
        names.add(spec.name)
        self._mine.add(spec.name)
        return spec

    def _check_conditions(self, spec: TaskSpec) -> None:
        """A runtime task may depend only on tasks this one added before it: its handle
        or its name (which also rules out cycles)."""
        seen: set[str] = set()
        for dep in spec.depends_on:
            _check_dependency(dep, spec.name, self._mine, self.task)
            if dep.task in seen:
                raise InvalidValue(f"two conditions on task {dep.task!r}", task=spec.name,
                                   field="depends_on", value=dep.task)
            seen.add(dep.task)

    def _known_names(self) -> set[str]:
        if self._names is None:
            with store.read_session(self.settings) as session:
                self._names = set(session.execute(
                    select(Task.name).where(Task.job_id == self.job_id)).scalars())
                self._groups = set(session.execute(select(BatchGroup.name)).scalars())
                own = session.execute(select(Task.group_name, Task.timeout)
                                      .where(Task.id == self.task_id)).first()
            if own is not None:
                self._group, self._timeout = own
        return self._names


def _check_dependency(dep: Dependency, name: str, mine: set[str], adder: str) -> None:
    if not isinstance(dep.task, str):
        raise InvalidValue("a condition's task must be a task handle or name", task=name,
                           field="depends_on", value=dep.task)
    if dep.task not in mine:
        raise UnknownDependency(f"condition on task {dep.task!r}, which task {adder!r} has "
                                "not added before this one (a runtime task may depend only "
                                "on tasks added by the same task)", task=name,
                                field="depends_on", value=dep.task)


def _label(name: Any) -> str | None:
    return name if isinstance(name, str) else None
