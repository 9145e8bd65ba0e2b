"""What the background writers share: storable text, bad records set aside, counted losses.

Every background writer (the audit trail's request records, the statistics buffer, the outbox,
the worker's jobs) follows the same rules:

* text is made storable at the writer's boundary (``storable``): NUL and lone surrogates, which
  PostgreSQL (NUL) or every database driver (surrogates) refuses, are percent-escaped - the value
  stays readable and faithful, ordinary text is left byte for byte as it was;
* a record the database refuses for what it holds (``is_bad_record``) is isolated from its batch
  and set aside in ``write_quarantine`` with the reason (``quarantine``); the rest of the batch is
  written. A failure of the database itself (down, read-only) is not the record's fault: the
  batch is kept and tried again, within the writer's bound;
* what a writer drops (a full buffer, a full queue) is counted (``count``), exported on
  ``/metrics`` as ``vern_writer_dropped_total`` / ``vern_writer_quarantined_total``
  (``WriterCollector``) and logged without personal data.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, Database, Scope, UTCDateTime, id_column, utcnow

log = logging.getLogger("vern.writers")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def storable(value: str) -> str:
    """``value`` with NUL and lone surrogates percent-escaped (``\\x00`` -> ``%00``, ``\\ud800``
    -> ``%ED%A0%80``, the bytes a client would have sent); any other text is returned as it is."""
    if value.isascii() and "\x00" not in value:
        return value
    return _UNSTORABLE.sub(_escape, value)


def storable_or_none(value: str | None) -> str | None:
    return None if value is None else storable(value)


def is_bad_record(exc: BaseException) -> bool:
    """Whether ``exc`` says the database refused the *data* (a value it cannot hold, an encoding
    error) rather than failed itself (down, read-only, locked): such a record is set aside, the
    rest of its batch is written. Looks through SQLAlchemy's wrapper and the ``__cause__``."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ValueError | TypeError):  # UnicodeEncodeError is a ValueError
            return True
        if any(c.__name__ == "DataError" for c in type(seen).__mro__):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def reason_of(exc: BaseException) -> str:
    """A short reason without the refused value (it may hold personal data): the error's class
    and, from PostgreSQL, its SQLSTATE."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    state = getattr(inner, "sqlstate", None)
    name = type(inner).__name__
    return f"{name} ({state})" if state else name


# -- counts -------------------------------------------------------------------------------------

_counts: Counter[tuple[str, str]] = Counter()
_counts_lock = threading.Lock()


def count(writer: str, what: str, n: int = 1) -> None:
    """Count ``n`` records a writer ``dropped`` or ``quarantined`` (``what``)."""
    with _counts_lock:
        _counts[(writer, what)] += n


def counted(writer: str, what: str) -> int:
    with _counts_lock:
        return _counts[(writer, what)]


class WriterCollector(Collector):
    """The writers' counts for a Prometheus registry (the app's ``/metrics``)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        with _counts_lock:
            items = sorted(_counts.items())
        dropped = CounterMetricFamily("vern_writer_dropped", "Records a background writer dropped "
                                      "(full queue or buffer, unwritable at shutdown)",
                                      labels=["writer"])
        quarantined = CounterMetricFamily("vern_writer_quarantined", "Records a background "
                                          "writer set aside as unstorable", labels=["writer"])
        for (writer, what), n in items:
            if what == "dropped":
                dropped.add_metric([writer], n)
            elif what == "quarantined":
                quarantined.add_metric([writer], n)
        yield dropped
        yield quarantined


# -- the quarantine -----------------------------------------------------------------------------


class WriteQuarantine(Base):
    """A record a background writer could not store, with the reason; the rest of its batch was
    written. Holds no address or user agent (the audit trail's keep only their blind index)."""

    __tablename__ = "write_quarantine"

    id: Mapped[str] = id_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    writer: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(String(200))
    record: Mapped[str] = mapped_column(Text)


def record_json(record: dict[str, Any]) -> str:
    """The quarantined record as ASCII JSON, its text made storable."""
    clean = {k: storable(v) if isinstance(v, str) else v for k, v in record.items()}
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), default=str)


def quarantine(database: Database, writer: str, reason: str, record: dict[str, Any], *,
               org_id: str | None = None) -> bool:
    """Set one record aside (its own transaction); counted and logged without its content.
    Returns False when even that could not be stored (logged)."""
    count(writer, "quarantined")
    log.warning("%s: a record was set aside as unstorable (%s)", writer, reason)
    try:
        with database.transaction(Scope.system(f"{writer} quarantine")) as session:
            session.add(WriteQuarantine(writer=writer[:32], org_id=org_id, reason=reason[:200],
                                        record=record_json(record)))
    except Exception:
        log.exception("%s: the quarantined record could not be stored either", writer)
        return False
    return True


def purge_quarantine(database: Database, before: datetime) -> int:
    """Delete quarantined records made before ``before`` (the audit retention job)."""
    with database.transaction(Scope.system("quarantine retention")) as session:
        result = session.execute(delete(WriteQuarantine).where(WriteQuarantine.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
