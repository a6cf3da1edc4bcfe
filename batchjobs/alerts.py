"""Alerts: a run's end, told to the job's user when the job's alert setting asks.

``alert: always`` alerts on every end, ``error`` (the default) on a run that
ended ``error``, ``never`` never. The alert row is written in the transaction
that ends the run, with one delivery row per sink configured where it ended
(email with ``BATCHJOBS_SMTP_URL``, webhook with ``BATCHJOBS_ALERT_WEBHOOK``).
Deliveries are sent afterwards by every batch server's housekeeper (or by
``batchjobs coordinator``): each try is claimed with a lease so one process
sends it, a failure is retried with backoff and logged, and nothing of it
ever changes the job's outcome.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from . import clock, sinks, store
from .errors import DeliveryError
from .models import Alert, AlertDelivery, Attempt, Job, Task, User
from .settings import Settings, get_settings
from .status import Alert as AlertSetting
from .status import DeliveryStatus, JobStatus, Sink, TaskStatus

log = logging.getLogger(__name__)

_delivery = AlertDelivery.__table__


def wanted(setting: str, status: JobStatus) -> bool:
    """Whether a run that ended ``status`` alerts under the job's ``alert`` setting."""
    if setting == AlertSetting.ALWAYS:
        return True
    if setting == AlertSetting.ERROR:
        return status is JobStatus.ERROR
    return False


def sinks_configured(settings: Settings) -> list[Sink]:
    """The sinks this host's settings turn on."""
    return [sink for sink, url in ((Sink.EMAIL, settings.smtp_url),
                                   (Sink.WEBHOOK, settings.alert_webhook)) if url]


def create_alert(session: Session, job: Job, status: JobStatus, now: datetime,
                 settings: Settings) -> int | None:
    """Store the alert of the job's current run (if wanted) and its pending deliveries.

    Runs inside the transaction that ends the run: ``settings`` come from the caller,
    never from the environment here."""
    if not wanted(job.alert, status):
        return None
    payload = _payload(session, job, status, now)
    alert_id = session.execute(insert(Alert).values(
        job_id=job.id, run=job.run_number, user=job.created_by, status=status.value,
        created_at=now, payload=payload).returning(Alert.id)).scalar_one()
    sinks_on = sinks_configured(settings)
    if sinks_on:
        session.execute(insert(AlertDelivery), [_delivery_row(alert_id, sink, payload, now)
                                                for sink in sinks_on])
    return alert_id


def _delivery_row(alert_id: int, sink: Sink, payload: dict[str, Any],
                  now: datetime) -> dict[str, Any]:
    """A pending delivery; an email to a user without an address fails at once (retrying
    cannot help) and says how to fix it."""
    if sink is Sink.EMAIL and not payload.get("email"):
        user = payload.get("user")
        return {"alert_id": alert_id, "sink": sink, "status": DeliveryStatus.FAILED, "tries": 0,
                "next_try_at": None, "last_error": f"user {user} has no email address "
                f"(batchjobs user add {user} --email ADDRESS)"}
    return {"alert_id": alert_id, "sink": sink, "status": DeliveryStatus.PENDING, "tries": 0,
            "next_try_at": now, "last_error": None}


def _payload(session: Session, job: Job, status: JobStatus, now: datetime) -> dict[str, Any]:
    failed = session.execute(
        select(Task.id, Task.name, Task.attempts, Task.attempt_base)
        .where(Task.job_id == job.id, Task.status == TaskStatus.ERROR).order_by(Task.id)
    ).all()
    # ordered by number, so each task keeps its last attempt's error
    errors = dict(session.execute(
        select(Attempt.task_id, Attempt.error)
        .where(Attempt.task_id.in_([row.id for row in failed]))
        .order_by(Attempt.task_id, Attempt.number)).all()) if failed else {}
    tasks = [{"name": row.name, "error": errors.get(row.id),
              "attempts": row.attempts - row.attempt_base} for row in failed]
    email = session.execute(select(User.email).where(User.name == job.created_by)).scalar()
    names = ", ".join(t["name"] for t in tasks)
    message = (f"Job {job.id} {job.description!r} run {job.run_number} ended with status "
               f"{status.value}" + (f": {len(tasks)} task(s) failed ({names})" if tasks else ""))
    return {"job_id": job.id, "run": job.run_number, "description": job.description,
            "status": status.value, "user": job.created_by, "email": email,
            "created_at": clock.iso(now), "failed_tasks": tasks,
            "message": message}


def deliver_due(settings: Settings | None = None, *, limit: int = 20) -> int:
    """Try the deliveries that are due, for the sinks configured here; return how many
    were sent."""
    settings = settings or get_settings()
    here = sinks_configured(settings)
    if not here:
        return 0
    now = clock.now()
    due = (_delivery.c.status == DeliveryStatus.PENDING.value, _delivery.c.next_try_at <= now,
           _delivery.c.sink.in_(here))
    # Every housekeeper asks twice a second: look before taking the write lock (SQLite).
    with store.read_session(settings) as session:
        if session.execute(select(_delivery.c.id).where(*due).limit(1)).first() is None:
            return 0
    with store.transaction(settings) as session:
        claimed = session.connection().execute(
            update(_delivery).where(
                _delivery.c.id.in_(select(_delivery.c.id).where(*due).limit(limit)
                                   .scalar_subquery()), *due)
            .values(tries=_delivery.c.tries + 1, next_try_at=now + timedelta(
                seconds=settings.alert_lease))
            .returning(_delivery.c.id, _delivery.c.alert_id, _delivery.c.sink,
                       _delivery.c.tries)).all()
        payloads: dict[int, dict[str, Any]] = {}
        if claimed:
            rows: Any = session.execute(select(Alert.id, Alert.payload).where(
                Alert.id.in_([row.alert_id for row in claimed]))).all()
            payloads = dict(rows)
    sent = 0
    for row in claimed:
        payload = {"id": row.alert_id, **payloads[row.alert_id]}
        try:
            _send(row.sink, payload, settings)
        except DeliveryError as exc:
            _failed(row.id, row.tries, str(exc), settings)
            continue
        with store.transaction(settings) as session:
            session.execute(update(AlertDelivery).where(AlertDelivery.id == row.id).values(
                status=DeliveryStatus.SENT, sent_at=clock.now(), last_error=None))
        sent += 1
    return sent


def _send(sink: str, payload: dict[str, Any], settings: Settings) -> None:
    if sink == Sink.WEBHOOK:
        assert settings.alert_webhook is not None
        sinks.post_webhook(payload, url=settings.alert_webhook)
    else:
        assert settings.smtp_url is not None
        sinks.send_email(payload, smtp_url=settings.smtp_url, sender=settings.alert_email_from,
                         recipient=payload.get("email") or "")


def _failed(delivery_id: int, tries: int, error: str, settings: Settings) -> None:
    give_up = tries >= settings.alert_max_tries
    wait = sinks.backoff(tries)
    if give_up:
        log.error("alert delivery %s failed %d times, given up: %s", delivery_id, tries, error)
    else:
        log.warning("alert delivery %s failed (try %d), retrying in %.0fs: %s", delivery_id,
                    tries, wait, error)
    with store.transaction(settings) as session:
        session.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(
            status=DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING, last_error=error,
            next_try_at=None if give_up else clock.now() + timedelta(seconds=wait)))


def list_alerts(*, user: str | None = None, limit: int = 100,
                settings: Settings | None = None) -> list[dict[str, Any]]:
    """Alerts, newest first, with each delivery's state."""
    with store.read_session(settings) as session:
        query = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if user is not None:
            query = query.where(Alert.user == user)
        rows = session.execute(query).scalars().all()
        deliveries: dict[int, list[dict[str, Any]]] = {}
        for d in session.execute(select(AlertDelivery).where(
                AlertDelivery.alert_id.in_([a.id for a in rows]))).scalars():
            deliveries.setdefault(d.alert_id, []).append(
                {"sink": d.sink, "status": d.status, "tries": d.tries,
                 "last_error": d.last_error})
        return [{"id": a.id, "job_id": a.job_id, "run": a.run, "user": a.user,
                 "status": a.status, "created_at": clock.iso(a.created_at),
                 "message": a.payload.get("message"), "failed_tasks": a.payload.get("failed_tasks"),
                 "deliveries": deliveries.get(a.id, [])} for a in rows]
