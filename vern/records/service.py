"""Records of processing (Art. 30), agreements (Art. 28) and published document versions.

The record is assembled when it is read: the vendor's processing entries name consent purposes
(purposes, legal bases, retention), data map systems and Vern's own tables (data categories,
retention) and sub-processors (recipients, locations, transfer mechanisms) of the vendor registry;
the processor record per customer takes its categories of processing from the product data map.

The announcing of a new privacy statement lives in ``vern.records.announcements`` and is imported
back here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.consent import service as consent
from vern.core.config import get_settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.datamap import service as datamap
from vern.datamap.categories import CATEGORIES, RETENTION_RULES, is_personal
from vern.datamap.model import DataMap
from vern.datamap.own import load_own_map
from vern.notify import service as notify
from vern.records import registry
from vern.records.announcements import (
    ANNOUNCED_KINDS,
    CUSTOMER_SUBJECTS,
    PRIVACY_MAIL,
    SUBSCRIBER_FOOTER,
    Person,
    announce,
    announcement,
    announcements,
    audience,
    concerns_customers,
    unannounced,
)
from vern.records.models import Agreement, DocumentVersion, ProcessingEntry

# The announcements (vern.records.announcements) are imported back and listed with the rest.
__all__ = [
    "AGREEMENT_MAIL", "ANNOUNCED_KINDS", "CUSTOMER_SUBJECTS", "KEY", "PRIVACY_MAIL", "SUBJECTS",
    "SUBSCRIBER_FOOTER", "EntryInput", "Missing", "Person", "agreement_status", "agreement_view",
    "annexes", "announce", "announcement", "announcements", "audience", "check_controller",
    "check_processor", "concerns_customers", "controller_record", "create_entry", "customers",
    "data_category_label", "digest", "document_version", "document_versions", "entry_view",
    "get_agreement", "get_document", "get_entry", "issue_agreement", "latest_agreement",
    "latest_document", "list_agreements", "list_entries", "processing_categories",
    "processor_record", "retire_entry", "sign_agreement", "store_document", "unannounced",
]

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Categories of data subjects an entry may name (Art. 30(1)(c)); labels read in either language.
SUBJECTS: dict[str, str] = {
    "website_visitors": N_("Visitors to the website"),
    "newsletter_subscribers": N_("Newsletter subscribers"),
    "customer_contacts": N_("Contact persons at customers"),
    "prospects": N_("Prospective customers"),
    "support_requesters": N_("People asking for support"),
    "job_applicants": N_("Job applicants"),
    "employees": N_("Employees"),
    "end_users": N_("Users of the service"),
    "children": N_("Children"),
    "parents": N_("Parents and guardians"),
}


# -- processing entries (the vendor as controller) ------------------------------------------------


@dataclass(frozen=True)
class EntryInput:
    key: str
    name_nb: str
    name_en: str
    purpose_keys: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    own_tables: tuple[str, ...] = ()
    subprocessors: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()


def _validate_entry(session: Session, data: EntryInput) -> None:
    if not KEY.match(data.key):
        raise InvalidInput.on("key", "lower-case letters, digits, - and _ (at most 40)")
    for name in ("name_nb", "name_en"):
        value = getattr(data, name).strip()
        if not value or len(value) > 200:
            raise InvalidInput.on(name, "give a name of 1-200 characters")
    for i, subject in enumerate(data.subjects):
        if subject not in SUBJECTS:
            raise InvalidInput.on(f"subjects.{i}", "one of %(values)s", values=", ".join(SUBJECTS))
    for i, text in enumerate(data.recipients):
        if not text.strip() or len(text) > 200:
            raise InvalidInput.on(f"recipients.{i}", "give a category of recipients of 1-200 characters")
    _validate_references(session, data)


def _validate_references(session: Session, data: EntryInput) -> None:
    """Every key an entry names exists where it is kept (consent, data maps, vendor registry)."""
    dm = datamap.current_map(session)
    known: list[tuple[str, tuple[str, ...], set[str], str]] = [
        ("purpose_keys", data.purpose_keys, {p.key for p in consent.list_purposes(session)},
         "no such purpose in the consent register"),
        ("systems", data.systems, set(dm.systems) if dm else set(),
         "no such system in the product data map"),
        ("own_tables", data.own_tables, set(load_own_map()), "no such table in Vern's own data map"),
        ("subprocessors", data.subprocessors, {s["id"] for s in registry.subprocessors(session)},
         "no such sub-processor in the registry"),
    ]
    for field, given, found, message in known:
        for i, value in enumerate(given):
            if value not in found:
                raise InvalidInput.on(f"{field}.{i}", message)


def create_entry(session: Session, *, org_id: str, data: EntryInput,
                 actor_user_id: str | None) -> ProcessingEntry:
    _validate_entry(session, data)
    if session.scalar(select(ProcessingEntry.id).where(ProcessingEntry.key == data.key)):
        raise Conflict(detail="entry %(key)s exists already", params={"key": repr(data.key)})
    entry = ProcessingEntry(
        org_id=org_id, key=data.key, name_nb=data.name_nb.strip(), name_en=data.name_en.strip(),
        purpose_keys=list(data.purpose_keys), subjects=list(data.subjects),
        systems=list(data.systems), own_tables=list(data.own_tables),
        subprocessors=list(data.subprocessors), recipients=[r.strip() for r in data.recipients])
    session.add(entry)
    session.flush()
    audit(session, "records.entry_created", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"records_entry:{entry.key}", details={"new": entry_view(entry)})
    return entry


def retire_entry(session: Session, *, key: str, actor_user_id: str | None) -> ProcessingEntry:
    entry = get_entry(session, key)
    if entry.retired_at is None:
        entry.retired_at = utcnow()
        audit(session, "records.entry_retired", org_id=entry.org_id, actor_user_id=actor_user_id,
              resource=f"records_entry:{key}", details={"old": {"retired": False},
                                                         "new": {"retired": True}})
    return entry


def get_entry(session: Session, key: str) -> ProcessingEntry:
    entry = session.scalar(select(ProcessingEntry).where(ProcessingEntry.key == key))
    if entry is None:
        raise NotFound(detail="no such processing entry")
    return entry


def list_entries(session: Session, *, include_retired: bool = False) -> list[ProcessingEntry]:
    query = select(ProcessingEntry).order_by(ProcessingEntry.key)
    if not include_retired:
        query = query.where(ProcessingEntry.retired_at.is_(None))
    return list(session.scalars(query))


def entry_view(e: ProcessingEntry) -> dict[str, Any]:
    return {"key": e.key, "name_nb": e.name_nb, "name_en": e.name_en,
            "purpose_keys": e.purpose_keys, "subjects": e.subjects, "systems": e.systems,
            "own_tables": e.own_tables, "subprocessors": e.subprocessors,
            "recipients": e.recipients, "retired": e.retired_at is not None}


# -- the record, assembled ----------------------------------------------------------------------


def _transfers(subs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"recipient": s["name"], "countries": s["outside_eea"],
             "safeguard": s["transfer_mechanism"]} for s in subs if s["outside_eea"]]


def _system_facts(dm: DataMap | None, names: list[str]) -> tuple[set[str], list[str], set[str]]:
    """Personal data categories, retention texts and recipients of the named product systems."""
    categories: set[str] = set()
    retention: list[str] = []
    recipients: set[str] = set()
    for name in names:
        system = dm.systems.get(name) if dm else None
        if system is None:
            continue
        recipients.update(system.recipients)
        for db in system.databases.values():
            for table in db.tables.values():
                personal = {f.category for f in table.personal_fields()}
                categories |= personal
                if personal and table.retention:
                    retention.append(f"{name}.{table.name}: {table.retention_text}")
    return categories, retention, recipients


def _activity(entry: ProcessingEntry, purposes: dict[str, Any], dm: DataMap | None,
              own: dict[str, Any], subs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    chosen = [purposes[k] for k in entry.purpose_keys if k in purposes]
    categories, retention, recipients = _system_facts(dm, entry.systems)
    for t in entry.own_tables:
        table = own.get(t)
        if table is None:
            continue
        personal = {c.category for c in table.columns.values() if is_personal(c.category)}
        categories |= personal
        if personal:
            retention.append(f"{t}: {RETENTION_RULES.get(table.retention, table.retention)}")
    for p in chosen:
        categories.update(p.data_categories)
        if p.retention:
            retention.append(f"{p.key}: {p.retention}")
    used = [subs[s] for s in entry.subprocessors if s in subs]
    return {
        "key": entry.key, "name_nb": entry.name_nb, "name_en": entry.name_en,
        "purposes": [{"key": p.key, "name_nb": p.name_nb, "name_en": p.name_en,
                      "legal_basis": p.legal_basis, "description_nb": p.description_nb,
                      "description_en": p.description_en} for p in chosen],
        "unknown_purposes": [k for k in entry.purpose_keys if k not in purposes],
        "subjects": list(entry.subjects),
        "data_categories": sorted(categories),
        "recipients": sorted(recipients | set(entry.recipients)),
        "subprocessors": [s["name"] for s in used],
        "transfers": _transfers(used),
        "retention": retention,
    }


def controller_record(session: Session, *, org_id: str) -> dict[str, Any]:
    """Art. 30(1): the vendor as controller. ``session`` is scoped to the vendor's organisation."""
    org = accounts.get_organisation(session, org_id)
    purposes = {p.key: p for p in consent.list_purposes(session, include_retired=True)}
    dm = datamap.current_map(session)
    own = load_own_map()
    subs = {s["id"]: s for s in registry.subprocessors(session)}
    return {
        "record": "controller", "article": "30(1)",
        "controller": {"name": org.name, "org_number": org.org_number or ""},
        "officers": registry.officers(session),
        "activities": [_activity(e, purposes, dm, own, subs) for e in list_entries(session)],
        "measures": registry.measures(session),
        "generated_at": utcnow().isoformat(),
    }


def processing_categories(dm: DataMap | None) -> list[dict[str, Any]]:
    """Art. 30(2)(b): what the product does with each customer's data, from the product map."""
    out = []
    for system in (dm.systems.values() if dm else ()):
        for db in system.databases.values():
            for table in db.tables.values():
                personal = sorted({f.category for f in table.personal_fields()})
                if personal:
                    out.append({"system": system.name, "title": system.title,
                                "table": table.name, "purpose": table.purpose,
                                "data_categories": personal, "retention": table.retention_text})
    return out


def processor_record(session: Session, *, vendor_org_id: str,
                     customers: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Art. 30(2): the vendor as processor for each ``(org id, name, org number)`` customer.
    The categories of processing are the product's, the same for every customer; each customer's
    contacts and sub-processors come from the vendor registry."""
    vendor = accounts.get_organisation(session, vendor_org_id)
    subs = registry.subprocessors(session)
    ids = [c[0] for c in customers]
    serving = registry.subprocessors_serving(session, ids)
    # The privacy contacts each customer registered with the vendor, else its administrators
    # (whom notices reach then), read for all customers at once.
    contacts = registry.privacy_contacts(session, ids)
    contracts = registry.contracts(session, ids)
    controllers = [{"org_id": org_id, "name": name, "org_number": number,
                    "contacts": {"privacy": contacts[org_id]} if contacts.get(org_id) else {},
                    "contract_start": contracts[org_id]["start"],
                    "contract_end": contracts[org_id]["end"],
                    "subprocessors": serving[org_id]} for org_id, name, number in customers]
    return {
        "record": "processor", "article": "30(2)",
        "processor": {"name": vendor.name, "org_number": vendor.org_number or ""},
        "officers": registry.officers(session),
        "controllers": controllers,
        "categories": processing_categories(datamap.current_map(session)),
        "subprocessors": subs,
        "transfers": _transfers(subs),
        "measures": registry.measures(session),
        "generated_at": utcnow().isoformat(),
    }


def customers(session: Session) -> list[tuple[str, str, str]]:
    """Every customer organisation (a system scope: it crosses organisations)."""
    return [(o.id, o.name, o.org_number or "") for o in accounts.list_tenants(session)]


# -- completeness (Art. 30(1) and 30(2)) ------------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    record: str
    where: str
    field: str

    def line(self) -> str:
        return f"{self.record}: {self.where}: {self.field}"


def _dpo_missing(record: dict[str, Any]) -> bool:
    dpo = record.get("officers", {}).get("dpo")
    return not dpo or not any(str(v).strip() for v in (dpo.values() if isinstance(dpo, dict) else [dpo]))


def check_controller(rec: dict[str, Any]) -> list[Missing]:
    name = "controller record"
    out = []
    if not rec["controller"]["name"]:
        out.append(Missing(name, "controller", N_("30(1)(a) name of the controller")))
    if _dpo_missing(rec):
        out.append(Missing(name, "controller", N_("30(1)(a) contact details of the data protection officer")))
    if not rec["activities"]:
        out.append(Missing(name, "activities", N_("30(1)(b) at least one processing activity")))
    for a in rec["activities"]:
        where = f"activity {a['key']}"
        if not a["purposes"]:
            out.append(Missing(name, where, N_("30(1)(b) purposes of the processing")))
        for k in a["unknown_purposes"]:
            out.append(Missing(name, where, f"30(1)(b) purpose {k} is not in the consent register"))
        if not a["subjects"]:
            out.append(Missing(name, where, N_("30(1)(c) categories of data subjects")))
        if not a["data_categories"]:
            out.append(Missing(name, where, N_("30(1)(c) categories of personal data")))
        for t in a["transfers"]:
            if not t["safeguard"]:
                out.append(Missing(name, where, f"30(1)(e) safeguard for the transfer to {t['recipient']}"))
        if not a["retention"]:
            out.append(Missing(name, where, N_("30(1)(f) time limits for erasure")))
    if not rec["measures"]:
        out.append(Missing(name, "measures", N_("30(1)(g) technical and organisational measures")))
    return out


def check_processor(rec: dict[str, Any]) -> list[Missing]:
    name = "processor record"
    out = []
    if _dpo_missing(rec):
        out.append(Missing(name, "processor", N_("30(2)(a) contact details of the data protection officer")))
    for c in rec["controllers"]:
        if not c["name"]:
            out.append(Missing(name, f"customer {c['org_id']}", N_("30(2)(a) name of the controller")))
        if not c["contacts"]:
            out.append(Missing(name, f"customer {c['name']}",
                               N_("30(2)(a) contact details of the controller")))
    if not rec["categories"]:
        out.append(Missing(name, "categories",
                           N_("30(2)(b) categories of processing (publish the product data map)")))
    for t in rec["transfers"]:
        if not t["safeguard"]:
            out.append(Missing(name, "transfers", f"30(2)(c) safeguard for the transfer to {t['recipient']}"))
    if not rec["measures"]:
        out.append(Missing(name, "measures", N_("30(2)(d) technical and organisational measures")))
    return out


# -- agreements (Art. 28(3)) ------------------------------------------------------------------------


def latest_agreement(session: Session) -> Agreement | None:
    return session.scalar(select(Agreement).order_by(Agreement.version.desc()).limit(1))


def list_agreements(session: Session) -> list[Agreement]:
    return list(session.scalars(select(Agreement).order_by(Agreement.version.desc())))


def get_agreement(session: Session, agreement_id: str) -> Agreement:
    row = session.get(Agreement, agreement_id)
    if row is None:
        raise NotFound(detail="no such agreement")
    return row


def agreement_view(a: Agreement) -> dict[str, Any]:
    return {"id": a.id, "version": a.version, "status": a.status,
            "document_id": a.document_id,
            "sent_at": a.sent_at.isoformat() if a.sent_at else None,
            "signed_at": a.signed_at.isoformat() if a.signed_at else None,
            "signer_name": a.signer_name, "signer_user_id": a.signer_user_id,
            "annex_subprocessors": a.annex_subprocessors, "annex_measures": a.annex_measures,
            "annex_sha256": a.annex_sha256}


def issue_agreement(session: Session, *, org_id: str, document: DocumentVersion,
                    actor_user_id: str | None) -> Agreement:
    """A new version of the customer's agreement, sent to its administrators through the outbox;
    an unsigned earlier version is superseded at once, a signed one when this one is signed."""
    for old in list_agreements(session):
        if old.status in ("draft", "sent"):
            old.status = "superseded"
    version = (session.scalar(select(func.max(Agreement.version))) or 0) + 1
    row = Agreement(org_id=org_id, version=version, status="sent", document_id=document.id,
                    created_by=actor_user_id, sent_at=utcnow())
    session.add(row)
    session.flush()
    _tell_admins(session, org_id, version)
    audit(session, "records.agreement_sent", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"agreement:{row.id}", details={"new": {"version": version, "status": "sent",
                                                           "document": document.id}})
    return row


AGREEMENT_MAIL = (N_("A new data processing agreement from %(vendor)s"),
                  N_("Version %(version)s of the data processing agreement between %(vendor)s and "
                     "%(org)s is ready. An administrator of %(org)s can read and sign it in Vern "
                     "under Trust: %(url)s"))


def _tell_admins(session: Session, org_id: str, version: int) -> None:
    """The customer's administrators (who sign) and its registered privacy contacts."""

    org = accounts.get_organisation(session, org_id)
    vendor = accounts.vendor_org(session)
    params = {"vendor": vendor.name if vendor else "", "org": org.name, "version": version,
              "url": f"{get_settings().base_url}/trust"}
    people = {u.email.value: (u.key_id, u.locale or "nb") for u in accounts.active_admins(session, org_id)
              if u.email is not None and u.email.value}
    for r in registry.notice_recipients(session, org_id, "privacy"):
        people.setdefault(r.email, (r.key_id, r.locale))
    for address, (key_id, locale) in sorted(people.items()):
        notify.queue(session, key_id=key_id, to=address,
                     subject=gettext(locale, AGREEMENT_MAIL[0], **params),
                     body=gettext(locale, AGREEMENT_MAIL[1], **params),
                     kind="records.agreement_sent", org_id=org_id)


def annexes(session: Session, org_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The sub-processors serving the customer and the measures, as they stand now."""
    subs, measures = registry.subprocessors(session, org_id), registry.measures(session)
    frozen = hashlib.sha256(json.dumps([subs, measures], sort_keys=True).encode()).hexdigest()
    return subs, measures, frozen


def sign_agreement(session: Session, *, agreement_id: str, signer_name: str | None,
                   signed_on: date | None, actor_user_id: str | None) -> Agreement:
    """Mark an agreement signed: refused without the signer's name and the date. The
    sub-processor and measures annexes are frozen as they stand at this moment."""
    if not (signer_name or "").strip():
        raise InvalidInput.on("signer_name", "an agreement cannot be marked signed without the signer's name")
    if signed_on is None:
        raise InvalidInput.on("signed_on", "an agreement cannot be marked signed without the date")
    if signed_on > utcnow().date():
        raise InvalidInput.on("signed_on", "the date of signature cannot be in the future")
    row = get_agreement(session, agreement_id)
    if row.status != "sent":
        raise Conflict(detail="only a sent agreement can be signed (this one is %(status)s)",
                       params={"status": row.status})
    subs, measures, frozen = annexes(session, row.org_id)
    row.status, row.signer_name = "signed", signer_name.strip()[:200]  # type: ignore[union-attr]
    row.signer_user_id = actor_user_id
    row.signed_at = datetime.combine(signed_on, time(12, 0), tzinfo=UTC)
    row.annex_subprocessors, row.annex_measures, row.annex_sha256 = subs, measures, frozen
    for old in list_agreements(session):
        if old.id != row.id and old.status == "signed":
            old.status = "superseded"
    audit(session, "records.agreement_signed", org_id=row.org_id, actor_user_id=actor_user_id,
          resource=f"agreement:{row.id}",
          details={"old": {"status": "sent"},
                   "new": {"status": "signed", "signed_on": signed_on.isoformat(),
                           "annex_sha256": frozen}})
    return row


def agreement_status(session: Session) -> dict[str, Any]:
    """The customer's agreement at a glance (the trust page, the record)."""
    rows = list_agreements(session)
    signed = next((a for a in rows if a.status == "signed"), None)
    pending = next((a for a in rows if a.status == "sent"), None)
    return {"signed": agreement_view(signed) if signed else None,
            "pending": agreement_view(pending) if pending else None}


# -- published documents ------------------------------------------------------------------------------


def latest_document(session: Session, kind: str) -> DocumentVersion | None:
    return session.scalar(select(DocumentVersion).where(DocumentVersion.kind == kind)
                          .order_by(DocumentVersion.version.desc()).limit(1))


def document_versions(session: Session, kind: str) -> list[DocumentVersion]:
    return list(session.scalars(select(DocumentVersion).where(DocumentVersion.kind == kind)
                                .order_by(DocumentVersion.version.desc())))


def document_version(session: Session, kind: str, version: int) -> DocumentVersion:
    row = session.scalar(select(DocumentVersion).where(DocumentVersion.kind == kind,
                                                       DocumentVersion.version == version))
    if row is None:
        raise NotFound(detail="no such document version")
    return row


def get_document(session: Session, document_id: str) -> DocumentVersion:
    row = session.get(DocumentVersion, document_id)
    if row is None:
        raise NotFound(detail="no such document version")
    return row


def store_document(session: Session, *, org_id: str, kind: str, html_nb: str, html_en: str,
                   actor_user_id: str | None) -> tuple[DocumentVersion, bool]:
    """Keep a published version; ``(latest, False)`` when nothing changed since the last one."""
    digest_ = digest(html_nb, html_en)
    latest = latest_document(session, kind)
    if latest is not None and latest.sha256 == digest_:
        return latest, False
    row = DocumentVersion(org_id=org_id, kind=kind, version=(latest.version if latest else 0) + 1,
                          html_nb=html_nb, html_en=html_en, sha256=digest_,
                          published_by=actor_user_id)
    session.add(row)
    session.flush()
    audit(session, "records.document_published", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"document:{kind}:{row.version}",
          details={"new": {"kind": kind, "version": row.version, "sha256": digest_}})
    return row, True


def digest(html_nb: str, html_en: str) -> str:
    return hashlib.sha256((html_nb + "\0" + html_en).encode()).hexdigest()


def data_category_label(category: str) -> str:
    return CATEGORIES.get(category, category)
