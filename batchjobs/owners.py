"""The owner of a job: the user it runs as, and what happens to their jobs over the user's life.

A job runs as the user who submitted it (``jobs.created_by``, copied to each task's
``run_as``). AX's complaint was that disabling that user broke their jobs and deleting
the user deleted them. Here:

* Disabling a user (:func:`disable_user`) holds their waiting jobs, with the reason
  ``owner NAME disabled`` (``status`` and ``list`` show it); tasks already executing
  finish, and so does the run they belong to; a recurring job's next run is then held
  instead of waiting (:func:`next_status`). Housekeepers hold, rather than start, any
  due job whose owner is disabled (:func:`batchjobs.coordinator.sweeps.start_due_jobs`),
  which closes the race of a run that ended while the user was being disabled.
* Enabling the user again releases nothing by itself: an operator looks, then releases
  (``release`` and ``rerun`` refuse a job whose owner is still disabled).
* Reassigning (:func:`reassign`) gives jobs another run-as user and records who did it,
  when, from whom and to whom (``job_audit``, shown by ``batchjobs history``).
* A user who owns any job, finished or not, cannot be removed (:func:`remove_user`):
  a finished job can be rerun, as its owner.
* A disabled user cannot submit; an unknown one neither when
  ``BATCHJOBS_REQUIRE_KNOWN_USERS`` is on (:func:`check_submitter`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from . import clock, store
from .errors import InvalidValue, UserDisabled, UserHasJobs, UserNotFound
from .models import Job, JobAudit, Task, User
from .settings import Settings, get_settings
from .status import JobStatus

#: ``job_audit.action`` of a change of run-as user.
REASSIGN = "reassign"


def disabled_reason(name: str) -> str:
    """The hold reason of a job whose owner ``name`` is disabled."""
    return f"owner {name} disabled"


def is_disabled(session: Session, name: str) -> bool:
    """Whether ``name`` is a known user who is disabled (an unknown name is not)."""
    return session.execute(select(User.disabled_at).where(User.name == name)).scalar() \
        is not None


def disable_user(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Disable ``name``: their waiting jobs are held (reason ``owner NAME disabled``),
    their executing jobs finish the run they are in. Return the held job ids and the
    executing ones. Disabling a disabled user holds any waiting job left, and changes
    nothing else."""
    now = clock.now()
    with store.transaction(settings) as session:
        user = session.execute(select(User).where(User.name == name).with_for_update()).scalar()
        if user is None:
            raise UserNotFound(name)
        if user.disabled_at is None:
            user.disabled_at = now
        held = hold_jobs_of(session, name, now)
        executing = list(session.execute(select(Job.id).where(
            Job.created_by == name, Job.status == JobStatus.EXECUTING)
            .order_by(Job.id)).scalars())
    return {"user": name, "held": held, "executing": executing}


def hold_jobs_of(session: Session, name: str, now: Any, *,
                 job_ids: list[int] | None = None) -> list[int]:
    """Hold the waiting jobs of disabled user ``name`` (of ``job_ids`` only, if given):
    a guarded update, so a job that started meanwhile is left to run."""
    # here: reading a status (changes) imports no recurrence rules
    from . import runs

    query = update(Job).where(Job.created_by == name, Job.status == JobStatus.WAITING)
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    held = sorted(session.execute(query.values(
        status=JobStatus.HOLD, hold_reason=disabled_reason(name)).returning(Job.id)).scalars())
    for job_id in held:
        runs.set_run_status(session, job_id, JobStatus.HOLD, now)
    return held


def enable_user(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Enable ``name`` again. Their held jobs stay held: releasing is an operator's call.
    Return the ids of the jobs still held because of the disable."""
    with store.transaction(settings) as session:
        user = session.execute(select(User).where(User.name == name).with_for_update()).scalar()
        if user is None:
            raise UserNotFound(name)
        user.disabled_at = None
        held = list(session.execute(select(Job.id).where(
            Job.created_by == name, Job.status == JobStatus.HOLD,
            Job.hold_reason == disabled_reason(name)).order_by(Job.id)).scalars())
    return {"user": name, "held": held}


def remove_user(name: str, *, settings: Settings | None = None) -> None:
    """Remove ``name`` (and their API tokens); refused while they own any job."""
    with store.transaction(settings) as session:
        user = session.execute(select(User).where(User.name == name).with_for_update()).scalar()
        if user is None:
            raise UserNotFound(name)
        jobs = session.execute(select(func.count()).select_from(Job)
                               .where(Job.created_by == name)).scalar_one()
        if jobs:
            raise UserHasJobs(name, int(jobs))
        session.delete(user)


def check_submitter(session: Session, name: str, settings: Settings) -> None:
    """Refuse a disabled submitter, and an unknown one when known users are required.

    Called in the transaction that stores the job; the user's row is locked (shared), so a
    disable either waits for this job and then holds it, or is seen here."""
    row = session.execute(select(User.name, User.disabled_at).where(User.name == name)
                          .with_for_update(read=True)).first()
    if row is None:
        if settings.require_known_users:
            raise UserNotFound(name)
        return
    if row.disabled_at is not None:
        raise UserDisabled(name, doing="they cannot submit jobs")


def check_owner_enabled(session: Session, job: Job, doing: str) -> None:
    """Refuse to start ``job`` (release, rerun) while its owner is disabled."""
    if is_disabled(session, job.created_by):
        raise UserDisabled(job.created_by, job_id=job.id, doing=doing)


def next_status(session: Session, owner: str) -> tuple[JobStatus, str | None]:
    """How a recurring job waits for its next run: ``waiting``, or ``hold`` with the
    reason when its owner has been disabled meanwhile."""
    if is_disabled(session, owner):
        return JobStatus.HOLD, disabled_reason(owner)
    return JobStatus.WAITING, None


def reassign(*, to_user: str, job_id: int | None = None, from_user: str | None = None,
             by: str | None = None, settings: Settings | None = None) -> list[int]:
    """Give job ``job_id``, or every job of ``from_user``, the run-as user ``to_user``.

    Tasks not yet run run as ``to_user``; attempts already made keep the user they ran
    as. Each job changed gets a ``job_audit`` row (who, when, from, to). A job's status
    is left alone: a job held because its owner was disabled stays held until released.
    ``to_user`` must not be disabled, and must be known when known users are required.
    Return the ids of the jobs changed (a job already owned by ``to_user`` is not)."""
    from .api import current_user

    settings = settings or get_settings()
    if (job_id is None) == (from_user is None):
        raise InvalidValue("give a job id or a user to reassign from, not both or neither",
                           field="job", value=job_id)
    by = by or current_user()
    now = clock.now()
    with store.transaction(settings) as session:
        _check_new_owner(session, to_user, settings)
        if from_user is not None and from_user != to_user and session.get(User, from_user) \
                is None and not _owns_any(session, from_user):
            raise UserNotFound(from_user)
        query = select(Job.id, Job.created_by).where(Job.created_by != to_user) \
            .order_by(Job.id).with_for_update()
        if job_id is not None:
            from .errors import JobNotFound

            if session.get(Job, job_id) is None:
                raise JobNotFound(job_id)
            query = query.where(Job.id == job_id)
        else:
            query = query.where(Job.created_by == from_user)
        changed = session.execute(query).all()
        ids = [row.id for row in changed]
        if ids:
            session.execute(update(Job).where(Job.id.in_(ids)).values(created_by=to_user))
            session.execute(update(Task).where(Task.job_id.in_(ids)).values(run_as=to_user))
            session.execute(insert(JobAudit), [
                {"job_id": row.id, "at": now, "by": by, "action": REASSIGN,
                 "from_user": row.created_by, "to_user": to_user} for row in changed])
    return ids


def _check_new_owner(session: Session, name: str, settings: Settings) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidValue("a user needs a non-empty name of at most 200 characters",
                           field="to", value=name)
    row = session.execute(select(User.disabled_at).where(User.name == name)).first()
    if row is None:
        if settings.require_known_users:
            raise UserNotFound(name)
        return
    if row.disabled_at is not None:
        raise UserDisabled(name, doing="no job can be given to them")


def _owns_any(session: Session, name: str) -> bool:
    return session.execute(select(Job.id).where(Job.created_by == name).limit(1)).first() \
        is not None
