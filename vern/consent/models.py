"""Purposes, versioned notices, consent records (append-only) and newsletter subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow

LEGAL_BASES = ("a", "b", "c", "d", "e", "f")  # GDPR Art. 6(1)(a)–(f)
KINDS = ("necessary", "preferences", "statistics", "marketing", "other")
NOTICE_KINDS = ("privacy", "cookie")
CHOICES = ("granted", "denied", "withdrawn", "objected", "legitimate-interest")
METHODS = ("banner-accept", "banner-reject", "banner-save", "banner-withdraw", "gpc", "form",
           "double-opt-in", "api", "opt-out-link", "customer-relationship")


class Purpose(TenantScoped, Base):
    """Why an organisation processes personal data, on which legal basis, and with which cookies."""

    __tablename__ = "consent_purposes"
    __table_args__ = (UniqueConstraint("org_id", "key"),)

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(String(1))
    name_nb: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    description_nb: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention: Mapped[str] = mapped_column(String(300), default="")
    cookies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    scripts: Mapped[list[str]] = mapped_column(JSON, default=list)
    in_banner: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def name(self, locale: str) -> str:
        return self.name_nb if locale == "nb" else self.name_en

    def description(self, locale: str) -> str:
        return self.description_nb if locale == "nb" else self.description_en


class Notice(TenantScoped, Base):
    """One published version of a privacy notice or cookie policy; never edited afterwards."""

    __tablename__ = "consent_notices"
    __table_args__ = (UniqueConstraint("org_id", "kind", "version"),)

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    title_nb: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    body_nb: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class ConsentRecord(TenantScoped, Base):
    """Proof of one choice (Art. 7(1)). Append-only: a later choice is a new row."""

    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_lookup", "org_id", "subject", "purpose_key", "recorded_at"),
    )

    id: Mapped[str] = id_column()
    subject: Mapped[str] = mapped_column(String(80))
    subject_kind: Mapped[str] = mapped_column(String(16))  # "pseudonymous" | "verified"
    purpose_key: Mapped[str] = mapped_column(String(40))
    notice_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    choice: Mapped[str] = mapped_column(String(24))
    legal_basis: Mapped[str] = mapped_column(String(1))
    method: Mapped[str] = mapped_column(String(24))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ip_truncated: Mapped[str | None] = mapped_column(String(45), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)


class NewsletterSubscriber(TenantScoped, Base):
    """A newsletter address: confirmed by double opt-in (consent) or a customer (legitimate
    interest). The address is sealed under the subscriber's data key."""

    __tablename__ = "consent_newsletter"
    __table_args__ = (UniqueConstraint("org_id", "email_index"),)

    id: Mapped[str] = id_column()
    key_id: Mapped[str] = mapped_column(String(36))
    email: Mapped[PII] = mapped_column(Encrypted("consent_newsletter.email"))
    email_index: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(80))
    customer: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # pending | active | unsubscribed
    confirm_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    unsubscribe_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The language the subscriber signed up in (nb | en); None before it was kept (read as nb).
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)


class HistoryRewrite(RuntimeError):
    """Something tried to change or delete a consent record."""


@event.listens_for(Session, "before_flush")
def _no_rewrites(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ConsentRecord) and (obj in session.deleted or session.is_modified(obj)):
            raise HistoryRewrite("consent records are append-only; record a new choice instead")


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_rewrites(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        m.class_ is ConsentRecord for m in state.all_mappers
    ):
        raise HistoryRewrite("consent records are append-only; record a new choice instead")
