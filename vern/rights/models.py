"""Data subject requests and everything needed to finish them after a crash: all state is here,
in the database (never in a cache that can expire - Fides #4215)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow


class Kind(StrEnum):
    ACCESS = "access"  # Art. 15
    PORTABILITY = "portability"  # Art. 20
    RECTIFICATION = "rectification"  # Art. 16
    ERASURE = "erasure"  # Art. 17
    RESTRICTION = "restriction"  # Art. 18
    OBJECTION = "objection"  # Art. 21
    WITHDRAWAL = "withdrawal"  # Art. 7(3)


class Status(StrEnum):
    UNVERIFIED = "unverified"
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    PARTIAL = "partial"  # some database failed; retryable, never reported as done
    AWAITING_TASKS = "awaiting_tasks"  # a manual task in another system is not yet confirmed
    NOBODY_FOUND = "nobody_found"  # searched everywhere, no row matched: staff confirm the answer
    DONE = "done"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


OPEN_STATUSES = (
    Status.UNVERIFIED,
    Status.AWAITING_APPROVAL,
    Status.QUEUED,
    Status.RUNNING,
    Status.PARTIAL,
    Status.AWAITING_TASKS,
    Status.NOBODY_FOUND,
)


class PartStatus(StrEnum):
    PENDING = "pending"
    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"


class RightsRequest(TenantScoped, Base):
    __tablename__ = "rights_requests"

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # portal | api | staff
    locale: Mapped[str] = mapped_column(String(8), default="nb")
    key_id: Mapped[str] = mapped_column(String(36), ForeignKey("data_keys.id"))
    identities: Mapped[PII] = mapped_column(Encrypted("rights_requests.identities"))
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    details: Mapped[PII | None] = mapped_column(Encrypted("rights_requests.details"), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    extended_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verification_method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Who attested the person's identity (staff verification); with ``created_by`` never the
    # approver (four-eyes).
    attested_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    @property
    def deadline(self) -> datetime:
        return self.extended_due_at or self.due_at


class Verification(TenantScoped, Base):
    """A one-time code sent by e-mail: stored hashed, single use, 10 minutes, 3 attempts."""

    __tablename__ = "rights_verifications"

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Part(TenantScoped, Base):
    """A request's work in one product database; it fails or finishes on its own (Fides #2048)."""

    __tablename__ = "rights_parts"
    __table_args__ = (UniqueConstraint("request_id", "database"),)

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    database: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=PartStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rows_found: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Task(TenantScoped, Base):
    """One table of one part: the rows found (sealed under the request's key) and a checkpoint."""

    __tablename__ = "rights_tasks"
    __table_args__ = (UniqueConstraint("part_id", "table_name"),)

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    part_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_parts.id"), index=True)
    table_name: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    plan: Mapped[PII | None] = mapped_column(Encrypted("rights_tasks.plan"), nullable=True)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Package(TenantScoped, Base):
    """The result of an access or portability request: a zip sealed under the request's key."""

    __tablename__ = "rights_packages"

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    body: Mapped[PII | None] = mapped_column(Encrypted("rights_packages.body"), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    last_download_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Flag(TenantScoped, Base):
    """A restriction, objection or consent withdrawal the product can check (by identity hash)."""

    __tablename__ = "rights_flags"

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16))
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("rights_requests.id"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class LedgerEntry(TenantScoped, Base):
    """An executed erasure of one person in one product database, kept outside the product
    databases so it can be replayed after one of them is restored from a backup. Identities and
    matched values only as keyed hashes: ``match_hashes`` is ``{"tables": {table: ["m:…", "w:…"]},
    "rows": {table: n}}`` with ``table_name`` ``*`` (entries of earlier versions: one table, a list)."""

    __tablename__ = "rights_ledger"

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    database: Mapped[str] = mapped_column(String(200), index=True)
    table_name: Mapped[str] = mapped_column(String(200))
    tenant_value: Mapped[str] = mapped_column(String(200))
    subject_ref: Mapped[str] = mapped_column(String(64))
    match_hashes: Mapped[Any] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(Integer)
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Policy(TenantScoped, Base):
    """A customer's choices for its requests; without a row the strict defaults apply."""

    __tablename__ = "rights_policies"
    __table_args__ = (UniqueConstraint("org_id"),)

    id: Mapped[str] = id_column()
    product_tenant_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approve_erasure: Mapped[bool] = mapped_column(Boolean, default=True)
    approve_rectification: Mapped[bool] = mapped_column(Boolean, default=True)
    # A search that finds nobody is answered "no data held" without staff confirming it first
    # (off by default: staff look at what was searched before the person is told).
    answer_nobody_found: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StepStatus(StrEnum):
    PENDING = "pending"  # not yet done (an HTTP call not yet answered, a task not confirmed)
    DONE = "done"
    FAILED = "failed"  # the last HTTP attempt failed; a retry of the request tries again


class ExternalStep(TenantScoped, Base):
    """A request's work in a system outside SQL: an HTTP call (``via`` ``http``), a manual task
    (``manual``) or a notice to a recipient (``notice``, Art. 19). One row per request, system
    and operation - the row exists (committed) before the call is made, and its
    ``idempotency_key`` is sent with every attempt, so a call repeated after a crash is not
    applied twice by the receiving end."""

    __tablename__ = "rights_external_steps"
    __table_args__ = (UniqueConstraint("request_id", "system", "operation"),)

    id: Mapped[str] = id_column()
    request_id: Mapped[str] = mapped_column(String(36), ForeignKey("rights_requests.id"), index=True)
    system: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(16))  # http | manual | notice
    operation: Mapped[str] = mapped_column(String(240))  # a kind, or notice:<recipient>
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.PENDING.value, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(320), nullable=True)  # manual: who does it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    answer: Mapped[PII | None] = mapped_column(Encrypted("rights_external_steps.answer"), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # manual: the confirmation
    confirmed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
