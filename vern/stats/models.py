"""Statistics tables: sites, daily salts, raw events and visits (short-lived), and roll-ups.

No table holds an IP address or a user agent. A visitor is a keyed hash of (daily salt, truncated
IP, user agent, site); once the day's salt is deleted (48 hours) the hash links to nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow


class StatsSite(TenantScoped, Base):
    """A website counted by the beacon; its id is the public site key in the script tag."""

    __tablename__ = "stats_sites"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatsSalt(Base):
    """The secret of one UTC day for visitor hashes; deleted 48 hours after it was made."""

    __tablename__ = "stats_salts"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatsVisit(TenantScoped, Base):
    """One visit: page views from one visitor hash with no gap longer than the visit gap."""

    __tablename__ = "stats_visits"
    __table_args__ = (Index("ix_stats_visits_lookup", "site_id", "day", "visitor"),)

    id: Mapped[str] = id_column()
    site_id: Mapped[str] = mapped_column(String(36))
    day: Mapped[str] = mapped_column(String(10), index=True)
    visitor: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pageviews: Mapped[int] = mapped_column(Integer, default=1)


class StatsEvent(TenantScoped, Base):
    """One page view as received (path without query, referrer host, browser class)."""

    __tablename__ = "stats_events"
    __table_args__ = (Index("ix_stats_events_site_at", "site_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    visit_id: Mapped[str] = mapped_column(String(36))
    path: Mapped[str] = mapped_column(String(300))
    referrer: Mapped[str] = mapped_column(String(253))
    browser: Mapped[str] = mapped_column(String(32))
    os: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(16))


class StatsDaily(TenantScoped, Base):
    """Totals of one site on one UTC day."""

    __tablename__ = "stats_daily"
    __table_args__ = (UniqueConstraint("site_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(36))
    day: Mapped[str] = mapped_column(String(10))
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    visitors: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[int] = mapped_column(Integer, default=0)


class StatsDailyDim(TenantScoped, Base):
    """Counts of one value of one dimension (page, referrer, browser, os, device) on one day."""

    __tablename__ = "stats_daily_dims"
    # Reports read one dimension of one site over a range of days: that order, so each query
    # touches only its own dimension's rows.
    __table_args__ = (UniqueConstraint("site_id", "dim", "day", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(36))
    day: Mapped[str] = mapped_column(String(10))
    dim: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(300))
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)


class PublicReject(Base):
    """Refused public input (beacons, banner posts) counted per day, endpoint and reason."""

    __tablename__ = "public_rejects"
    __table_args__ = (UniqueConstraint("day", "endpoint", "reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10))
    endpoint: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=0)
