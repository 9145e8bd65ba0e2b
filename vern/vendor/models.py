"""The vendor's own registry: systems, sub-processors, measures, officers, customer profiles and
contacts, Art. 28(2) change notices with the customers' objections, and maintenance notices.

Rows about the vendor itself (systems, sub-processors, measures, officers, maintenance) belong to
no customer. Rows owned by one customer (its profile, its contacts, the change notices it
received and its objections) are ``TenantScoped``: a customer's session never reaches another's.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow


class VendorSystem(Base):
    """One of the vendor's systems holding personal data, and where it keeps and processes it."""

    __tablename__ = "vendor_systems"

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    storage_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    processing_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    transfer_mechanism: Mapped[str | None] = mapped_column(String(24), nullable=True)
    transfer_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Subprocessor(Base):
    """A sub-processor under contract (Art. 28(2) and (4)): what it does, where, under which
    transfer mechanism, audited when, and for which customers."""

    __tablename__ = "vendor_subprocessors"

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(Text, default="")
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    storage_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    processing_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    transfer_mechanism: Mapped[str | None] = mapped_column(String(24), nullable=True)
    transfer_note: Mapped[str] = mapped_column(Text, default="")
    agreement_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_audit_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_audit_result: Mapped[str] = mapped_column(String(24), default="")
    last_audit_note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    all_customers: Mapped[bool] = mapped_column(Boolean, default=True)
    customer_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    processings: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Measure(Base):
    """One technical or organisational measure (Art. 32) with its owner, status and evidence."""

    __tablename__ = "vendor_measures"

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(40), unique=True)
    category: Mapped[str] = mapped_column(String(16))  # technical | organisational
    area: Mapped[str] = mapped_column(String(40), default="")
    title_nb: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    description_nb: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="planned")
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Officer(Base):
    """The vendor's data protection officer or security officer, as published."""

    __tablename__ = "vendor_officers"

    id: Mapped[str] = id_column()
    role: Mapped[str] = mapped_column(String(16), unique=True)  # dpo | security
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(40), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerProfile(TenantScoped, Base):
    """The vendor's contract with one customer: start, end and the breach notice deadline."""

    __tablename__ = "vendor_customer_profiles"
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[str] = id_column()
    contract_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    contract_end: Mapped[date | None] = mapped_column(Date, nullable=True)
    breach_notice_hours: Mapped[int] = mapped_column(Integer, default=24)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerContact(TenantScoped, Base):
    """A person the customer named for privacy, security, breach or maintenance notices. Name
    and address are sealed under the contact's own data key."""

    __tablename__ = "vendor_customer_contacts"

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16), index=True)
    key_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[PII] = mapped_column(Encrypted("vendor_customer_contacts.name"))
    email: Mapped[PII] = mapped_column(Encrypted("vendor_customer_contacts.email"))
    locale: Mapped[str] = mapped_column(String(8), default="nb")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubprocessorNotice(TenantScoped, Base):
    """One customer's Art. 28(2) notice of a new or changed sub-processor, its objection window,
    and the customer's objection (if any)."""

    __tablename__ = "vendor_subprocessor_notices"
    __table_args__ = (UniqueConstraint("org_id", "subprocessor_id", "version"),)

    id: Mapped[str] = id_column()
    subprocessor_id: Mapped[str] = mapped_column(String(36), index=True)
    version: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(16))  # added | changed
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    objected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    objected_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    objection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the worker recorded the window's closing and told the vendor's staff (once).
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MaintenanceNotice(Base):
    """Planned downtime, announced at least 24 hours ahead unless flagged as an emergency."""

    __tablename__ = "vendor_maintenance"

    id: Mapped[str] = id_column()
    title_nb: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    body_nb: Mapped[str] = mapped_column(Text, default="")
    body_en: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    all_customers: Mapped[bool] = mapped_column(Boolean, default=True)
    customer_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
