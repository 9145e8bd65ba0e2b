"""Retention of the internal control's history ("internal-control"): five years after each
record's own end, the record is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.control.models import (
    ControlChange,
    ControlChangeEvent,
    ControlCompletion,
    ControlEvidence,
    ControlMapping,
    ControlMedia,
    ControlPerson,
    ControlReminder,
    ControlTask,
    ControlTraining,
)
from vern.core.crypto import keyring


@dataclass
class _Taker:
    """Takes the ids of expired records, kind by kind, until ``limit`` records are taken; what is
    held is left (each query reads as many rows more as there are holds, so that held rows do not
    leave room unused)."""

    session: Session
    limit: int
    held: set[str]
    taken: list[str] = field(default_factory=list)

    def room(self) -> int:
        return self.limit - len(self.taken)

    def take(self, kind: str, stmt: Any, keep: Callable[[Any], Any]) -> list[str]:
        if self.room() <= 0:
            return []
        rows = self.session.execute(stmt.limit(self.room() + len(self.held))).all()
        ids = [r[0] for r in rows if not keep(r)][: self.room()]
        self.taken.extend(f"{kind}:{i}" for i in ids)
        return ids


@dataclass(frozen=True)
class _Expired:
    """The ids taken, per kind of record."""

    tasks: list[str]
    completions: list[str]
    evidence: list[str]
    reminders: list[str]
    changes: list[str]
    people: list[str]
    media: list[str]

    def counts(self) -> dict[str, int]:
        """Records taken per kind, the kinds with none left out."""
        kinds = (("tasks", self.tasks), ("completions", self.completions),
                 ("evidence", self.evidence), ("reminders", self.reminders),
                 ("changes", self.changes), ("people", self.people), ("media", self.media))
        return {k: len(ids) for k, ids in kinds if ids}


def expire_records(session: Session, *, before: datetime, limit: int,
                   held: set[str] | None = None, dry_run: bool = False) -> list[str]:
    """Retention of the internal control's history: what ended before ``before`` (five years
    ago) is deleted, at most ``limit`` records per call, oldest first; what is still in use
    (open tasks, risks, DPIAs, people with access, mappings) is kept. A record ends:

    * a closed task (``closed_at``): with its completions, evidence, reminders and mappings;
    * a completion (``completed_at``): with the evidence tied to it;
    * an evidence entry whose content was deleted (``deleted_at``);
    * a reminder, on its due date;
    * a change request implemented (``implemented_at``) or rejected (``decided_at``): with its
      history;
    * a person whose access ended (``ended_on``): with their trainings, their data key destroyed;
    * a media sanitisation entry (``done_on``).

    ``held``: ids under a legal hold (a task's id holds its completions and evidence; a person's
    account id holds the person). Returns ``kind:id`` of every record taken (or, ``dry_run``,
    that would be). One transaction: the caller's."""
    taker = _Taker(session, limit, held or set())
    expired = _find(taker, before)
    if dry_run or not taker.taken:
        return taker.taken
    _delete(session, expired)
    record(session, "control.expired", org_id=None,
           details={"new": expired.counts() | {"before": before.isoformat()}})
    return taker.taken


def _find(taker: _Taker, before: datetime) -> _Expired:
    """What ended before ``before``, kind by kind, oldest first; the records of a task taken are
    not taken again on their own."""
    held, day = taker.held, before.date()
    tasks = taker.take("task", select(ControlTask.id).where(
        ControlTask.closed_at.is_not(None), ControlTask.closed_at < before)
        .order_by(ControlTask.closed_at, ControlTask.id), lambda r: r[0] in held)
    completions = taker.take("completion", select(
        ControlCompletion.id, ControlCompletion.task_id).where(
        ControlCompletion.completed_at < before, ControlCompletion.task_id.not_in(tasks or [""]))
        .order_by(ControlCompletion.completed_at, ControlCompletion.id),
        lambda r: r[0] in held or r[1] in held)
    evidence = taker.take("evidence", select(
        ControlEvidence.id, ControlEvidence.task_id, ControlEvidence.completion_id).where(
        ControlEvidence.deleted_at.is_not(None), ControlEvidence.deleted_at < before,
        ControlEvidence.task_id.not_in(tasks or [""]))
        .order_by(ControlEvidence.deleted_at, ControlEvidence.id),
        lambda r: held & {r[0], r[1], r[2]})
    reminders = taker.take("reminder", select(ControlReminder.id, ControlReminder.task_id).where(
        ControlReminder.due_on < day, ControlReminder.task_id.not_in(tasks or [""]))
        .order_by(ControlReminder.due_on, ControlReminder.id), lambda r: held & {r[0], r[1]})
    changes = taker.take("change", select(ControlChange.id).where(or_(
        and_(ControlChange.status == "implemented", ControlChange.implemented_at < before),
        and_(ControlChange.status == "rejected", ControlChange.decided_at < before)))
        .order_by(ControlChange.created_at, ControlChange.id), lambda r: r[0] in held)
    people = taker.take("person", select(ControlPerson.id, ControlPerson.user_id).where(
        ControlPerson.ended_on.is_not(None), ControlPerson.ended_on < day)
        .order_by(ControlPerson.ended_on, ControlPerson.id), lambda r: held & {r[0], r[1]})
    media = taker.take("media", select(ControlMedia.id).where(ControlMedia.done_on < day)
                       .order_by(ControlMedia.done_on, ControlMedia.id), lambda r: r[0] in held)
    return _Expired(tasks, completions, evidence, reminders, changes, people, media)


def _delete(session: Session, expired: _Expired) -> None:
    """Delete what was taken, each record with what belongs to it; a person's data key is
    destroyed."""
    if expired.tasks:
        for model in (ControlEvidence, ControlCompletion, ControlReminder, ControlMapping):
            session.execute(delete(model).where(model.task_id.in_(expired.tasks)))
        session.execute(delete(ControlTask).where(ControlTask.id.in_(expired.tasks)))
    if expired.completions:
        session.execute(delete(ControlEvidence).where(
            ControlEvidence.completion_id.in_(expired.completions)))
        session.execute(delete(ControlCompletion).where(
            ControlCompletion.id.in_(expired.completions)))
    if expired.evidence:
        session.execute(delete(ControlEvidence).where(ControlEvidence.id.in_(expired.evidence)))
    if expired.reminders:
        session.execute(delete(ControlReminder).where(ControlReminder.id.in_(expired.reminders)))
    if expired.changes:
        session.execute(delete(ControlChangeEvent).where(
            ControlChangeEvent.change_id.in_(expired.changes)))
        session.execute(delete(ControlChange).where(ControlChange.id.in_(expired.changes)))
    if expired.people:
        _delete_people(session, expired.people)
    if expired.media:
        session.execute(delete(ControlMedia).where(ControlMedia.id.in_(expired.media)))


def _delete_people(session: Session, people: list[str]) -> None:
    for key_id in session.scalars(select(ControlPerson.key_id).where(
            ControlPerson.id.in_(people), ControlPerson.key_id.is_not(None))):
        keyring().shred(session, str(key_id))
    session.execute(delete(ControlTraining).where(ControlTraining.person_id.in_(people)))
    session.execute(delete(ControlPerson).where(ControlPerson.id.in_(people)))
