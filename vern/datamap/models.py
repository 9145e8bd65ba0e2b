"""The product data map in use, stored in Vern's database so every process reads the same one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, UTCDateTime, id_column, utcnow


class ProductMap(Base):
    """One published version of the vendor's product data map (vendor-wide, not per tenant)."""

    __tablename__ = "product_maps"

    id: Mapped[str] = id_column()
    version: Mapped[int] = mapped_column(Integer, unique=True)
    source: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
