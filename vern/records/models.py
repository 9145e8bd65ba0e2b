"""Processing entries of the vendor as controller, agreements per customer, and published
document versions.

Entries hold references only (consent purpose keys, data map systems and tables, sub-processor
ids): the record of processing is assembled from those domains when it is read, so nothing the
data map, the purposes or the vendor registry already know is typed twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow

# Document kinds generated from the records (the vendor's own, or one customer's DPA).
DOCUMENT_KINDS = ("privacy", "dpa", "record", "cookie")
AGREEMENT_STATUSES = ("draft", "sent", "signed", "superseded")


class ProcessingEntry(TenantScoped, Base):
    """One processing activity of the vendor as controller (its website, newsletter, CRM...)."""

    __tablename__ = "records_entries"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(40))
    name_nb: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    purpose_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    subjects: Mapped[list[str]] = mapped_column(JSON, default=list)
    systems: Mapped[list[str]] = mapped_column(JSON, default=list)
    own_tables: Mapped[list[str]] = mapped_column(JSON, default=list)
    subprocessors: Mapped[list[str]] = mapped_column(JSON, default=list)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Agreement(TenantScoped, Base):
    """One version of a customer's data processing agreement (Art. 28(3)). The annexes are frozen
    as they stood at the signature; a later version supersedes an earlier one."""

    __tablename__ = "records_agreements"
    __table_args__ = (UniqueConstraint("org_id", "version"),)

    id: Mapped[str] = id_column()
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    document_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    signer_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    annex_subprocessors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    annex_measures: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    annex_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DocumentVersion(TenantScoped, Base):
    """One published version of a generated document, as rendered then (both languages);
    never changed afterwards."""

    __tablename__ = "records_documents"
    __table_args__ = (UniqueConstraint("org_id", "kind", "version"),)

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    html_nb: Mapped[str] = mapped_column(Text)
    html_en: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Announcement(TenantScoped, Base):
    """That a published document version was announced to the people it concerns: one row per
    version, written in the transaction that queues its mail, so a version is announced once."""

    __tablename__ = "records_announcements"
    __table_args__ = (UniqueConstraint("document_id"),)

    id: Mapped[str] = id_column()
    document_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
