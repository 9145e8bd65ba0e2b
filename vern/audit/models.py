"""The audit trail's tables. Records are append-only: no interface updates or deletes them, except
sealing (a record written inside another domain's transaction gets its place ``seq`` in the tree
once, afterwards) and retention (whole prefixes of the tree up to a checkpoint).

Every record's canonical form (see ``vern.audit.chain.canonical``) is a leaf of an RFC 9162 Merkle
tree; the tree's root is signed (Ed25519) in ``audit_checkpoints`` every N records or T seconds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, UTCDateTime, id_column, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[str] = id_column()
    # Position in the Merkle tree; NULL until sealed (records written in a caller's transaction).
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    ts: Mapped[int] = mapped_column(BigInteger)  # UTC, microseconds since the epoch
    source: Mapped[str] = mapped_column(String(8), default="vern")  # vern | request | ingest
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)  # ingest: host's id
    key_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # seals ``personal``
    personal: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # ip, ua, name
    ip_index: Mapped[str | None] = mapped_column(String(32), nullable=True)
    net_index: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON text
    # Not part of the canonical form. ``mac``: HMAC-SHA256 (hex) of a pending record's canonical
    # form, made by the writing process with a key derived from the secret key (never stored);
    # ``quarantine``: why sealing refused the record (it stays out of the tree).
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    quarantine: Mapped[str | None] = mapped_column(String(200), nullable=True)

    __table_args__ = (
        Index("ix_audit_events_resource_ts", "resource", "ts"),
        Index("ix_audit_events_org_ts", "org_id", "ts"),
        Index("ix_audit_events_actor_ts", "actor_user_id", "ts"),
        Index("ix_audit_events_actor_ref_ts", "actor_ref", "ts"),
        Index("ix_audit_events_ip_ts", "ip_index", "ts"),
        Index("ix_audit_events_action_ts", "action", "ts"),
        Index("uq_audit_events_client_event", "org_id", "client_event_id", unique=True),
    )


class AuditHead(Base):
    """The one row that sequences appends: its update is the lock every writer takes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpoint_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    alert_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Retention removed every record before this position (a checkpoint's size).
    retained_from: Mapped[int] = mapped_column(BigInteger, default=0)
    lock_n: Mapped[int] = mapped_column(BigInteger, default=0)
    # The newest time of a record sealed from the pending queue: sealing refuses earlier times
    # beyond ``VERN_AUDIT_SEAL_SKEW_SECONDS``.
    sealed_ts: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class AuditCheckpoint(Base):
    """A signed tree head: size, root, time, and the frontier that lets verification start here
    after retention removed the records before it."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    ts: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    frontier: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class AuditTile(Base):
    """Hashes of complete perfect subtrees (2^8 and 2^16 leaves) so that proofs stay cheap."""

    __tablename__ = "audit_tiles"

    height: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditAlert(Base):
    """A suspicious pattern found in the trail; shown in the console and mailed."""

    __tablename__ = "audit_alerts"

    id: Mapped[str] = id_column()
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(80))  # user id or a blind index of a source
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
