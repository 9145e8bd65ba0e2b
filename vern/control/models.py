"""Tables of the vendor's internal control. None is tenant-scoped: they belong to the vendor."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, UTCDateTime, id_column, utcnow


class ControlTask(Base):
    """A recurring (or one-off) internal control task with an owner and its next due date."""

    __tablename__ = "control_tasks"

    id: Mapped[str] = id_column()
    key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    recurrence: Mapped[str] = mapped_column(String(16))
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ControlCompletion(Base):
    """One completion of a task: who, when, for which due date, and a note."""

    __tablename__ = "control_completions"

    id: Mapped[str] = id_column()
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_tasks.id"), index=True)
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    completed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    next_due_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class ControlEvidence(Base):
    """Evidence of a task: an uploaded file (kept in the database), a link, or a Vern record.

    Deleting it needs two people: ``delete_requested_by`` asks, another person approves."""

    __tablename__ = "control_evidence"

    id: Mapped[str] = id_column()
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_tasks.id"), index=True)
    completion_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # file | link | record
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    record_kind: Mapped[str | None] = mapped_column(String(40), nullable=True)
    record_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    added_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delete_requested_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    delete_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delete_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ControlReminder(Base):
    """A reminder sent for one due date of a task; the unique key makes sending idempotent."""

    __tablename__ = "control_reminders"
    __table_args__ = (UniqueConstraint("task_id", "due_on", "kind"),)

    id: Mapped[str] = id_column()
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_tasks.id"), index=True)
    due_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # soon | overdue
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlMapping(Base):
    """A control task covers a framework requirement (e.g. ISO 27001 A 5.1, NSM 1.1)."""

    __tablename__ = "control_mappings"
    __table_args__ = (UniqueConstraint("task_id", "framework", "requirement"),)

    id: Mapped[str] = id_column()
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_tasks.id"), index=True)
    framework: Mapped[str] = mapped_column(String(40))
    requirement: Mapped[str] = mapped_column(String(20))


class ControlRisk(Base):
    """A risk in the register: an asset or processing, a threat, and its score before and after
    measures (likelihood and consequence 1-4 each)."""

    __tablename__ = "control_risks"

    id: Mapped[str] = id_column()
    asset: Mapped[str] = mapped_column(String(200))
    threat: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    likelihood_before: Mapped[int] = mapped_column(Integer)
    consequence_before: Mapped[int] = mapped_column(Integer)
    likelihood_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consequence_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlMeasure(Base):
    """A measure against a risk, with its owner and status."""

    __tablename__ = "control_measures"

    id: Mapped[str] = id_column()
    risk_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_risks.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    owner_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlDpia(Base):
    """A data protection impact assessment of one processing; its content is versioned."""

    __tablename__ = "control_dpias"

    id: Mapped[str] = id_column()
    processing: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlDpiaVersion(Base):
    """One saved version of a DPIA (CNIL PIA structure: context, principles, risks, validation)."""

    __tablename__ = "control_dpia_versions"
    __table_args__ = (UniqueConstraint("dpia_id", "version"),)

    id: Mapped[str] = id_column()
    dpia_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_dpias.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    author_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlChange(Base):
    """A four-eyes change request: approved only by a person other than its author."""

    __tablename__ = "control_changes"

    id: Mapped[str] = id_column()
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    risk: Mapped[str] = mapped_column(Text)
    rollback: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    author_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    implemented_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    implemented_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlChangeEvent(Base):
    """The history of a change request: each step, by whom, with a note."""

    __tablename__ = "control_change_events"

    id: Mapped[str] = id_column()
    change_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_changes.id"),
                                           index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlPerson(Base):
    """A person with access: vendor staff (``user_id``) or supplier staff without an account
    (name sealed under their own data key)."""

    __tablename__ = "control_people"

    id: Mapped[str] = id_column()
    user_id: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    name: Mapped[PII | None] = mapped_column(Encrypted("control_people.name"), nullable=True)
    supplier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    function: Mapped[str] = mapped_column(String(200), default="")
    sensitive_access: Mapped[bool] = mapped_column(Boolean, default=True)
    nda_signed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    nda_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlTraining(Base):
    """A training a person completed."""

    __tablename__ = "control_trainings"

    id: Mapped[str] = id_column()
    person_id: Mapped[str] = mapped_column(String(36), ForeignKey("control_people.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    completed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ControlMedia(Base):
    """One sanitised storage medium: device, serial number, method, date, who and a witness."""

    __tablename__ = "control_media"

    id: Mapped[str] = id_column()
    device: Mapped[str] = mapped_column(String(200))
    serial: Mapped[str] = mapped_column(String(100), index=True)
    method: Mapped[str] = mapped_column(String(16))
    done_on: Mapped[date] = mapped_column(Date)
    done_by: Mapped[str] = mapped_column(String(36))
    witness: Mapped[str] = mapped_column(String(36))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
