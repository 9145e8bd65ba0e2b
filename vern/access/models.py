"""Access control records: vendor access grants a customer approves, role requests that need a
second person, and access review campaigns with their decisions (kept as evidence)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow


class AccessGrant(TenantScoped, Base):
    """A named vendor account's access to one customer's data (``org_id``: the customer), for a
    stated purpose, from ``starts_at`` until ``ends_at``. In force only when the customer's
    administrator approved it and it was not revoked; checked on every request."""

    __tablename__ = "access_grants"
    __table_args__ = (Index("ix_access_grants_grantee", "grantee_user_id", "org_id"),)

    id: Mapped[str] = id_column()
    grantee_user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(String(16))  # support | incident
    reason: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RoleRequest(TenantScoped, Base):
    """A role asked for with a stated need - by the person themselves (an access request) or by
    an administrator for someone (a privileged role grant). It counts only once another
    authorised person approved it."""

    __tablename__ = "access_role_requests"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    need: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AccessReview(TenantScoped, Base):
    """A review campaign over the privileged accounts of one organisation."""

    __tablename__ = "access_reviews"

    id: Mapped[str] = id_column()
    title: Mapped[str] = mapped_column(String(200))
    opened_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccessReviewItem(TenantScoped, Base):
    """One privileged account in a campaign, as it was when the campaign opened, and the
    reviewer's decision on it."""

    __tablename__ = "access_review_items"

    id: Mapped[str] = id_column()
    review_id: Mapped[str] = mapped_column(String(36), ForeignKey("access_reviews.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(32))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # keep | revoke
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
