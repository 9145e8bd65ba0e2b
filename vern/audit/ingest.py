"""Records sent by the vendor's own product (``POST /api/v1/audit/events``, the Python client in
``vern.sdk``): validated whole, idempotent on the client's event id per organisation, stored all
or nothing in one append (same tree, same files, same checkpoints as Vern's own records)."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vern.audit.chain import (
    AuditLog,
    Keys,
    anon_key_subject,
    canonical_details,
    datetime_to_us,
    log_for,
    now_us,
    resolve_keys,
)
from vern.audit.models import AuditEvent
from vern.core.config import Settings, audit_settings
from vern.core.db import Database
from vern.core.errors import FieldError, InvalidInput
from vern.core.inputs import AwareMoment
from vern.core.quarantine import storable

ACTION_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_CLOCK_SKEW = timedelta(minutes=5)


class IngestEvent(BaseModel):
    """One record from the vendor's product."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, description="Client event id (idempotency)")
    time: AwareMoment
    action: str = Field(min_length=1, max_length=64)
    actor: str | None = Field(default=None, max_length=128)
    actor_name: str | None = Field(default=None, max_length=200)
    resource: str | None = Field(default=None, max_length=200)
    outcome: Literal["success", "failure", "denied", "error"] = "success"
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=512)
    request_id: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_RE.match(value):
            raise ValueError("letters, digits and . _ : - only")
        return value

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if not ACTION_RE.match(value):
            raise ValueError("lowercase letters, digits and . _ : - only")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (use UTC, e.g. 2026-01-31T12:00:00Z)")
        value = value.astimezone(UTC)
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("is in the future")
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError as exc:
            raise ValueError("not an IP address") from exc

    @field_validator("details")
    @classmethod
    def _details(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            size = len(json.dumps(value, separators=(",", ":")).encode())
            if size > audit_settings().ingest_max_details_bytes:
                raise ValueError(
                    f"too large ({size} bytes, at most {audit_settings().ingest_max_details_bytes})")
        return value


class IngestBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[IngestEvent] = Field(min_length=1)

    @field_validator("events")
    @classmethod
    def _count(cls, value: list[IngestEvent]) -> list[IngestEvent]:
        limit = audit_settings().ingest_max_events
        if len(value) > limit:
            raise ValueError(f"at most {limit} events per batch")
        return value


Subject = tuple[str, ...]


def _scan(events: list[IngestEvent], org_id: str, anon: Subject, received: int,
          ) -> tuple[bool, datetime | None, dict[Subject, int]]:
    """One pass over the batch: whether its ids are distinct, its earliest time, and the key
    subject of each event with personal data (``("a", org, actor)``, else ``anon``) mapped to
    ``received``."""
    subjects: dict[Subject, int] = {
        ("a", org_id, actor) if (actor := ev.actor) else anon: received
        for ev in events if ev.ip or ev.user_agent or ev.actor_name}
    return *_distinct_and_earliest(events), subjects


def _distinct_and_earliest(events: list[IngestEvent]) -> tuple[bool, datetime | None]:
    return (len({ev.id for ev in events}) == len(events),
            min((ev.time for ev in events), default=None))


def check_batch(events: list[IngestEvent], settings: Settings,
                scanned: tuple[bool, datetime | None] | None = None) -> None:
    """Rules across events: no id twice in a batch, nothing older than retention (``scanned``:
    ``_scan``'s answer for these events, when made already)."""
    oldest = datetime.now(UTC) - timedelta(days=settings.audit_retention_days)
    distinct, earliest = scanned if scanned is not None else _distinct_and_earliest(events)
    if not events or (distinct and earliest is not None and earliest >= oldest):
        return  # the usual case; else the first bad event is named
    seen: dict[str, int] = {}
    for i, ev in enumerate(events):
        if ev.id in seen:
            raise InvalidInput(
                detail=f"events.{i}.id: the same id as event {seen[ev.id]}",
                errors=[FieldError(f"events.{i}.id", f"the same id as event {seen[ev.id]}")])
        seen[ev.id] = i
        if ev.time < oldest:
            raise InvalidInput(
                detail=f"events.{i}.time: older than the retention period",
                errors=[FieldError(f"events.{i}.time", "older than the retention period")])


def ingest(database: Database, settings: Settings, *, org_id: str, token_id: str | None,
           events: list[IngestEvent]) -> dict[str, int]:
    """Store the batch (all or nothing); events whose id was stored before are skipped."""
    received = now_us()
    anon = anon_key_subject(received)
    events = storable_events(events)
    distinct, earliest, subjects = _scan(events, org_id, anon, received)
    check_batch(events, settings, (distinct, earliest))
    log = log_for(database, settings)
    fresh = events
    for attempt in range(3):
        # Optimistic: the unique index (org, client event id) refuses a batch with an id stored
        # before; only then are the stored ids looked up and left out (a client's resend).
        drafts, keys = drafts_of(database, log, org_id, token_id, fresh,
                                 (received, anon, subjects) if fresh is events else None)
        try:
            log.append_drafts(drafts, keys, count=len(fresh))
        except IntegrityError:
            if attempt == 2:
                raise
            known = _stored_ids(database, org_id, [e.id for e in events])
            fresh = [e for e in events if e.id not in known]
            if not fresh:
                return {"accepted": 0, "duplicates": len(events)}
            continue
        return {"accepted": len(fresh), "duplicates": len(events) - len(fresh)}
    raise AssertionError("unreachable")


_TEXT_FIELDS = ("actor", "resource", "request_id")


def storable_events(events: list[IngestEvent]) -> list[IngestEvent]:
    """The events with the text that goes into the trail in clear made storable (a NUL or a lone
    surrogate percent-escaped, ``vern.core.quarantine.storable``); the same list when none had any.
    (The sealed fields and ``details`` are ASCII JSON already.)"""
    out: list[IngestEvent] | None = None
    for i, ev in enumerate(events):
        fields: dict[str, str] = {}
        for name in _TEXT_FIELDS:
            value = getattr(ev, name)
            if value is not None and (clean := storable(value)) is not value:
                fields[name] = clean
        if fields:
            if out is None:
                out = list(events)
            out[i] = ev.model_copy(update=fields)
    return out if out is not None else events


def _stored_ids(database: Database, org_id: str, ids: list[str]) -> set[str]:
    known: set[str] = set()
    with database.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            known.update(s for s in conn.scalars(select(AuditEvent.client_event_id).where(
                AuditEvent.org_id == org_id, AuditEvent.client_event_id.in_(ids[i:i + 500])))
                if s is not None)
    return known


def drafts_of(  # noqa: PLR0917 - internal
    database: Database, log: AuditLog, org_id: str, token_id: str | None,
    events: list[IngestEvent], scanned: tuple[int, Subject, dict[Subject, int]] | None = None,
) -> tuple[Iterator[tuple[Any, ...]], Keys]:
    """The batch as drafts for ``AuditLog.append_drafts``: each actor's key is looked up (or
    made) now, the month's key for events without an actor; the drafts themselves are made
    as the log consumes them (blind indexes of the address, ``details`` as canonical JSON).
    ``scanned``: the time received, the month's subject and ``_scan``'s subjects, when made
    for these events already."""
    if scanned is None:
        received = now_us()
        anon: Subject = anon_key_subject(received)
        subjects = _scan(events, org_id, anon, received)[2]
    else:
        received, anon, subjects = scanned
    keys = resolve_keys(log.sealer, database, subjects)
    return _drafts(log, org_id, token_id, events, keys, anon), keys


def _drafts(  # noqa: PLR0917 - internal
    log: AuditLog, org_id: str, token_id: str | None, events: list[IngestEvent],
    keys: Keys, anon: Subject,
) -> Iterator[tuple[Any, ...]]:
    payloads, payload, by_subject = keys.payloads, keys.payload, keys.by_subject
    ips, indexes = log.sealer._ips, log.sealer.indexes
    none3: tuple[Any, Any, Any] = (None, None, None)
    plain: bytes | None
    ip_index: str | None
    net_index: str | None
    for ev in events:
        ip, ua, name = ev.ip, ev.user_agent, ev.actor_name
        if ip or ua or name:
            plain = payloads.get((ip, ua, name)) or payload(ip, ua, name)
            key: tuple[Any, Any, Any] = by_subject[("a", org_id, ev.actor) if ev.actor else anon]
            key_id, aead, kid = key
            ip_index, net_index = (ips.get(ip) or indexes(ip)) if ip else (None, None)
        else:
            plain = ip_index = net_index = None
            key_id, aead, kid = none3
        yield (
            datetime_to_us(ev.time), "ingest", org_id, None, token_id, ev.actor, key_id, plain,
            ip_index, net_index, ev.action, ev.resource, ev.outcome, ev.request_id, ev.id,
            canonical_details(ev.details), aead, kid,
        )
