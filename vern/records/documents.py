"""The generated documents: record of processing, privacy statement, DPA with its annexes and the
cookie/tracking policy, each in bokmål and English, rendered from the records as they stand.

Publishing keeps a version (never changed afterwards). A new DPA version becomes a new agreement
for the customer, announced to its administrators through the outbox. A new privacy statement is
announced through the outbox to the people it concerns (``announce_pending``), once per version.
A new privacy statement or cookie policy is also published as the consent domain's notice of
that kind; where the banner asks for consent, a new cookie policy version makes it ask again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.consent import service as consent
from vern.consent.texts import bases
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import format_day, gettext
from vern.datamap import service as datamap
from vern.datamap.categories import CATEGORIES
from vern.records import registry, render, service
from vern.records.models import DOCUMENT_KINDS, Agreement, DocumentVersion

log = logging.getLogger("vern.records")

LOCALES = ("nb", "en")
TITLES = {"privacy": "Privacy statement", "dpa": "Data processing agreement",
          "record": "Record of processing activities", "cookie": "Cookie and tracking policy"}


def _common(locale: str) -> dict[str, Any]:
    return {"bases": bases(locale), "subjects": {k: gettext(locale, v) for k, v in service.SUBJECTS.items()},
            "category": lambda c: CATEGORIES.get(c, c),
            "generated": format_day(utcnow(), locale)}


def render_both(template: str, context: dict[str, Any]) -> tuple[str, str]:
    nb, en = (render.render_html(template, {**context, **_common(loc)}, loc) for loc in LOCALES)
    return nb, en


def record_html(*, controller: dict[str, Any] | None, processor: dict[str, Any] | None,
                locale: str) -> str:
    officers = (controller or processor or {}).get("officers", {})
    return render.render_html("records/doc_record.html", {
        "controller": controller, "processor": processor, "officers": officers,
        **_common(locale)}, locale)


def full_record(database: Database, vendor_org_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The controller record (in the vendor's scope) and the processor record for every customer
    (the list of customers read across organisations)."""
    with database.transaction(Scope.tenant(vendor_org_id)) as session:
        controller = service.controller_record(session, org_id=vendor_org_id)
    with database.transaction(Scope.system("records: every customer's record")) as session:
        processor = service.processor_record(session, vendor_org_id=vendor_org_id,
                                             customers=service.customers(session))
    return controller, processor


def customer_record(database: Database, vendor_org_id: str, org_id: str) -> dict[str, Any]:
    """The processor record for one customer (what that controller may be given)."""
    with database.transaction(Scope.system("records: one customer's record")) as session:
        org = accounts.get_organisation(session, org_id)
        if org.kind != "tenant":
            raise NotFound()
        return service.processor_record(session, vendor_org_id=vendor_org_id,
                                        customers=[(org.id, org.name, org.org_number or "")])


def privacy_html(session: Session, vendor_org_id: str) -> tuple[str, str]:
    controller = service.controller_record(session, org_id=vendor_org_id)
    return render_both("records/doc_privacy.html", {"controller": controller,
                                                    "officers": controller["officers"]})


def cookie_html(session: Session) -> tuple[str, str]:
    """Generated from the organisation's consent purposes, as the consent domain's cookie
    declaration is."""
    purposes = [consent.purpose_view(p) for p in consent.list_purposes(session)
                if p.cookies or p.in_banner or p.scripts]
    return render_both("records/doc_cookie.html", {"purposes": purposes,
                                                   "officers": registry.officers(session)})


def dpa_html(session: Session, *, org_id: str, version: int,
             signed: Agreement | None = None) -> tuple[str, str]:
    """The customer's DPA: clauses (a)-(h), the processing from the product map, and the annexes -
    as signed when ``signed`` is given, else as the registry stands now."""
    customer = accounts.get_organisation(session, org_id)
    vendor = accounts.vendor_org(session)
    subs, measures = ((signed.annex_subprocessors or [], signed.annex_measures or []) if signed
                      else (registry.subprocessors(session, org_id), registry.measures(session)))
    return render_both("records/doc_dpa.html", {
        "customer": customer, "vendor": vendor, "version": version, "signed": signed,
        "categories": service.processing_categories(datamap.current_map(session)),
        "subprocessors": subs, "measures": measures, "officers": registry.officers(session)})


def publish(database: Database, *, kind: str, vendor_org_id: str, actor_user_id: str | None,
            org_id: str | None = None) -> DocumentVersion | None:
    """Publish the vendor's privacy statement, cookie policy or record of processing, or (with
    ``org_id``) a customer's DPA. ``None`` when nothing changed since the latest version."""
    if kind not in DOCUMENT_KINDS:
        raise InvalidInput.on("kind", "one of %(values)s", values=", ".join(DOCUMENT_KINDS))
    if kind == "dpa":
        if org_id is None:
            raise InvalidInput.on("org_id", "a DPA is published for one customer")
        return publish_dpa(database, org_id=org_id, actor_user_id=actor_user_id)
    if kind == "record":
        controller, processor = full_record(database, vendor_org_id)
        nb, en = (record_html(controller=controller, processor=processor, locale=loc)
                  for loc in LOCALES)
    with database.transaction(Scope.tenant(vendor_org_id)) as session:
        if kind == "privacy":
            nb, en = privacy_html(session, vendor_org_id)
        elif kind == "cookie":
            nb, en = cookie_html(session)
        row, new = service.store_document(session, org_id=vendor_org_id, kind=kind, html_nb=nb,
                                          html_en=en, actor_user_id=actor_user_id)
        if new and kind in ("privacy", "cookie"):
            _bump_consent_notice(session, vendor_org_id, kind, row, actor_user_id)
    if new and kind in service.ANNOUNCED_KINDS:
        try:
            announce_pending(database)
        except SQLAlchemyError:
            # The version is published; the worker's ``records.announce`` announces it later.
            log.exception("records: announcing version %s of the %s left to the worker",
                          row.version, kind)
    return row if new else None


def announce_pending(database: Database) -> int:
    """Announce every published version not announced yet (right after publishing, and by the
    worker after a crash in between). Each version in its own transaction; a version another
    process announced meanwhile is left to it. Returns how many mails were queued."""
    with database.transaction(Scope.system("records: versions to announce")) as session:
        ids = [row.id for row in service.unannounced(session)]
    queued = 0
    for document_id in ids:
        try:
            with database.transaction(Scope.system("records: announce a new version")) as session:
                if service.announcement(session, document_id) is None:
                    queued += service.announce(session, service.get_document(session, document_id))
        except IntegrityError:
            continue  # announced by another process at the same moment
    return queued


def _bump_consent_notice(session: Session, org_id: str, kind: str, row: DocumentVersion,
                         actor_user_id: str | None) -> None:
    """The consent domain keeps the notice the banner and its records refer to: a new privacy
    statement or cookie policy is published there too. A privacy statement that consent depends
    on (a purpose in the banner on consent) also publishes the cookie policy again, so that the
    banner asks again."""
    title = TITLES[kind]
    consent.publish_notice(session, org_id=org_id, kind=kind, title_nb=gettext("nb", title),
                           title_en=title, body_nb="\n".join(render.text_lines(row.html_nb)),
                           body_en="\n".join(render.text_lines(row.html_en)),
                           actor_user_id=actor_user_id)
    asks = any(p.in_banner and p.legal_basis == "a" for p in consent.list_purposes(session))
    if kind == "privacy" and asks:
        nb, en = cookie_html(session)
        cookie_row, _ = service.store_document(session, org_id=org_id, kind="cookie", html_nb=nb,
                                               html_en=en, actor_user_id=actor_user_id)
        title = TITLES["cookie"]
        consent.publish_notice(session, org_id=org_id, kind="cookie",
                               title_nb=gettext("nb", title), title_en=title,
                               body_nb="\n".join(render.text_lines(cookie_row.html_nb)),
                               body_en="\n".join(render.text_lines(cookie_row.html_en)),
                               actor_user_id=actor_user_id)


def publish_dpa(database: Database, *, org_id: str, actor_user_id: str | None) -> DocumentVersion | None:
    """A new DPA version for one customer: kept, made the customer's new agreement and announced
    to its administrators. ``None`` when the text is the same as the latest version's."""
    with database.transaction(Scope.tenant(org_id)) as session:
        org = accounts.get_organisation(session, org_id)
        if org.kind != "tenant":
            raise InvalidInput.on("org_id", "a DPA is made with a customer organisation")
        latest = service.latest_agreement(session)
        if latest is not None and latest.status in ("sent", "signed"):
            doc = service.latest_document(session, "dpa")
            same = dpa_html(session, org_id=org_id, version=latest.version)
            if doc is not None and doc.sha256 == service.digest(*same):
                return None
        version = (latest.version if latest else 0) + 1
        nb, en = dpa_html(session, org_id=org_id, version=version)
        row, _ = service.store_document(session, org_id=org_id, kind="dpa", html_nb=nb,
                                        html_en=en, actor_user_id=actor_user_id)
        service.issue_agreement(session, org_id=org_id, document=row, actor_user_id=actor_user_id)
        return row


def publish_dpa_all(database: Database, *, actor_user_id: str | None) -> int:
    """Every customer's DPA, each customer in its own transaction (a rerun skips those already
    up to date). Returns how many customers got a new version."""
    with database.transaction(Scope.system("records: list customers")) as session:
        ids = [c[0] for c in service.customers(session)]
    return sum(publish_dpa(database, org_id=i, actor_user_id=actor_user_id) is not None for i in ids)


def signed_dpa_html(session: Session, agreement: Agreement, locale: str) -> str:
    """The signed agreement with its frozen annexes."""
    nb, en = dpa_html(session, org_id=agreement.org_id, version=agreement.version, signed=agreement)
    return nb if locale == "nb" else en


def html_of(row: DocumentVersion, locale: str) -> str:
    return row.html_nb if locale == "nb" else row.html_en


# -- exports (CLI, API and console share these) ---------------------------------------------------------

EXPORT_FORMATS = ("json", "csv", "html", "pdf")
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
         "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def vendor_id(database: Database) -> str:
    with database.transaction(Scope.system("records: the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            raise NotFound(detail="no vendor organisation")
        return vendor.id


def export(database: Database, *, controller: str, fmt: str, locale: str) -> bytes:
    """The record for ``controller``: ``vendor`` (the vendor's own record as controller and as
    processor for every customer), ``customers`` (JSON only: each customer's processor record)
    or one customer's organisation id."""
    import json

    if fmt not in EXPORT_FORMATS:
        raise InvalidInput.on("format", "one of %(values)s", values=", ".join(EXPORT_FORMATS))
    vendor = vendor_id(database)
    if controller == "customers":
        if fmt != "json":
            raise InvalidInput.on("format", "every customer's record is exported as JSON")
        return json.dumps(all_customers(database, vendor), ensure_ascii=False).encode()
    if controller == "vendor":
        ctrl, proc = full_record(database, vendor)
        records = [ctrl, proc]
    else:
        ctrl, proc = None, customer_record(database, vendor, controller)
        records = [proc]
    if fmt == "json":
        return json.dumps({"records": records}, ensure_ascii=False, indent=1).encode()
    if fmt == "csv":
        return render.record_csv(records).encode()
    page = record_html(controller=ctrl, processor=proc, locale=locale)
    return page.encode() if fmt == "html" else render.pdf(page)


def all_customers(database: Database, vendor_org_id: str) -> dict[str, Any]:
    """The processor record for every customer at once (Art. 30(2)): what is the same for all of
    them (processor, officers, categories of processing, sub-processors, transfers, measures) once,
    and per controller its name, organisation number, contacts and the sub-processors
    serving it. One controller's part with the shared part is that customer's whole record."""
    with database.transaction(Scope.system("records: every customer's record")) as session:
        return service.processor_record(session, vendor_org_id=vendor_org_id,
                                        customers=service.customers(session))


def check(database: Database) -> list[service.Missing]:
    vendor = vendor_id(database)
    ctrl, proc = full_record(database, vendor)
    return service.check_controller(ctrl) + service.check_processor(proc)
