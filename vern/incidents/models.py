"""The deviation register and everything a breach leaves behind (Art. 33(5): every breach is
documented, reported or not).

The register is the vendor's: incidents, their affected customers, timeline and warnings belong
to the vendor organisation. Each notice belongs to the customer it was sent to, so a customer's
admin reads their own notices in their own scope and never another customer's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow

RISKS = ("none", "risk", "high")  # Art. 33(1) "unlikely to result in a risk" / risk / Art. 34 high
PHASES = ("initial", "update", "final")  # Art. 33(4): information in phases
EXEMPTIONS = ("a", "b", "c")  # Art. 34(3)(a)-(c)
STATUSES = ("open", "closed")


class Incident(TenantScoped, Base):
    """One deviation; ``personal_data`` makes it a personal data breach (Art. 4(12))."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("org_id", "number"),)

    id: Mapped[str] = id_column()
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    occurred_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    occurred_to: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    discovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    aware_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    what_happened: Mapped[str] = mapped_column(Text, default="")
    how_happened: Mapped[str] = mapped_column(Text, default="")
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    subjects_approx: Mapped[int | None] = mapped_column(Integer, nullable=True)
    records_approx: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consequences: Mapped[str] = mapped_column(Text, default="")
    measures_taken: Mapped[str] = mapped_column(Text, default="")
    measures_proposed: Mapped[str] = mapped_column(Text, default="")
    risk: Mapped[str] = mapped_column(String(8), default="risk")
    data_location: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(Text, default="")
    # Where the vendor is itself the controller (its own staff, its own website): Art. 33(1).
    vendor_is_controller: Mapped[bool] = mapped_column(Boolean, default=False)
    authority_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    authority_reference: Mapped[str] = mapped_column(String(200), default="")
    authority_late_reason: Mapped[str] = mapped_column(Text, default="")
    # Art. 34: data subjects told, or the Art. 34(3) exemption that applies.
    subjects_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exemption: Mapped[str | None] = mapped_column(String(1), nullable=True)
    exemption_reason: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    lessons: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AffectedCustomer(TenantScoped, Base):
    """A customer (controller) whose data a breach concerns, with its notice clock: the hours its
    agreement gives, counted from the vendor's awareness (Art. 33(2))."""

    __tablename__ = "incident_customers"
    __table_args__ = (UniqueConstraint("incident_id", "customer_id"),)

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    customer_id: Mapped[str] = mapped_column(String(36), ForeignKey("organisations.id"), index=True)
    notice_hours: Mapped[int] = mapped_column(Integer, default=24)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BreachNotice(TenantScoped, Base):
    """A notice to one customer, kept as sent (bokmål and English), with every Art. 33(3) item
    it carried; the customer's admin acknowledges it. Never changed after sending, except the
    acknowledgement."""

    __tablename__ = "incident_notices"
    __table_args__ = (UniqueConstraint("incident_id", "org_id", "sequence"),)

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    subject_nb: Mapped[str] = mapped_column(String(300))
    subject_en: Mapped[str] = mapped_column(String(300))
    body_nb: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class IncidentEvent(TenantScoped, Base):
    """The incident's timeline: every change, with the fields' old and new values."""

    __tablename__ = "incident_events"

    id: Mapped[str] = id_column()
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ClockWarning(TenantScoped, Base):
    """A warning the worker raised about a clock, once: its key (incident, clock, customer,
    level) is unique, and it is written in the same transaction as its mails, so a restarted
    worker neither loses nor repeats one. It is also the console's notice."""

    __tablename__ = "incident_warnings"

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(160), unique=True)
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    clock: Mapped[str] = mapped_column(String(16))  # "customer" | "authority"
    customer_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    level: Mapped[str] = mapped_column(String(16))  # "soon" | "passed"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mails: Mapped[int] = mapped_column(Integer, default=0)
