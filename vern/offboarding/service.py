"""The end of a customer's contract (GDPR Art. 28(3)(g)): requested by one of the vendor's staff,
approved by another, the customer's data exported, a notice period, then every row of the
customer deleted - in Vern (every tenant-scoped table) and in the product databases through the
published map - in bounded, resumable steps, and a certificate of deletion signed with the audit
trail's checkpoint key, kept after the customer is gone.

Nothing of another customer is touched: Vern's rows are chosen by ``org_id``; a product's rows by
the customer's product key through the rights domain's connections (its tenancy model: a column,
a schema or a database per customer, or a database of that customer alone).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from vern.accounts.roles import OrgKind
from vern.accounts.service import accounts_of, active_admins, erase_user, get_organisation
from vern.audit.chain import Signer
from vern.audit.note import Note, NoteError, Verifier
from vern.audit.service import record
from vern.audit.witness import origin
from vern.core.config import Settings
from vern.core.crypto import PII
from vern.core.db import Base, Database, Scope, TenantScoped, import_models, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, gettext
from vern.datamap.model import DataMap
from vern.notify import service as notify
from vern.offboarding.exportmap import VERN_SYSTEM, vern_map, with_every_column
from vern.offboarding.models import Offboarding
from vern.rights.connectors import coerce, product_db
from vern.rights.service import build_export_package, policy_for, published_map_or_none

# The states an offboarding passes through, as the console names them.
STATUSES = [N_("requested"), N_("approved"), N_("deleting"), N_("deleted"), N_("cancelled")]
CERTIFICATE_HEADER = "vern certificate of deletion v1"
MAX_NOTICE_DAYS = 365
ACCOUNTS_STEP = "accounts:erase"  # the deletion's first step: the accounts of the customer alone
_CUSTOMER_REF = uuid.UUID("6f1d2c4e-0b5a-5e3d-9a7c-3f8e2b1d4c60")  # namespace of customer_ref
_WHY = "offboarding: the rows of the customer whose contract ended"
EXPORT_READY_MAIL = (
    N_("The export of %(org)s's data is ready"),
    N_("The vendor has made the export of every record of %(org)s before the contract ends: "
       "data.json, one CSV file per table and a readable summary. An administrator of %(org)s can "
       "download it in Vern under End of contract (%(url)s) until the data is deleted; the notice "
       "period ends %(ends)s."),
)
KEPT = [
    "audit records of the customer's organisation, until the audit retention period ends",
    "this offboarding record with its certificate of deletion (legal-5y)",
    "the organisation's row (id and name), so that the certificate can name it",
    "the erased accounts' rows as tombstones without name, e-mail address or password "
    "(the audit trail refers to their ids); accounts also used by another organisation, "
    "without this customer's membership",
]


def export_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "offboarding"


def _get(session: Session, offboarding_id: str) -> Offboarding:
    found = session.get(Offboarding, offboarding_id)
    if found is None:
        raise NotFound(detail="no such offboarding")
    return found


def get(session: Session, offboarding_id: str) -> Offboarding:
    return _get(session, offboarding_id)


def list_all(session: Session) -> list[Offboarding]:
    return list(session.scalars(select(Offboarding).order_by(Offboarding.requested_at.desc())))


def open_for(session: Session, org_id: str) -> Offboarding | None:
    """The customer's offboarding in progress (not cancelled, not finished), if any."""
    return session.scalar(select(Offboarding).where(
        Offboarding.customer_org_id == org_id,
        Offboarding.status.in_(("requested", "approved", "deleting"))))


def _audit(session: Session, action: str, ob: Offboarding, actor_user_id: str | None,
           details: dict[str, Any] | None = None) -> None:
    # Recorded under the vendor (org_id None): the customer's own trail goes with the customer.
    record(session, f"offboarding.{action}", org_id=None, actor_user_id=actor_user_id,
           resource=f"offboarding:{ob.id}",
           details={"customer_org_id": ob.customer_org_id, **(details or {})})


def request(session: Session, *, org_id: str, notice_days: int, reason: str,
            actor_user_id: str | None) -> Offboarding:
    """Ask to end a customer's contract. Another person must approve it."""

    if not 0 <= notice_days <= MAX_NOTICE_DAYS:
        raise InvalidInput.on("notice_days", "give 0-%(n)s days", n=MAX_NOTICE_DAYS)
    reason = reason.strip()
    if len(reason) > 500:
        raise InvalidInput.on("reason", "at most 500 characters")
    try:
        org = get_organisation(session, org_id)
    except NotFound as exc:
        raise InvalidInput.on("org_id", "no such customer organisation") from exc
    if org.kind != OrgKind.TENANT:
        raise InvalidInput.on("org_id", "only a customer organisation can be offboarded")
    if open_for(session, org_id) is not None:
        raise Conflict(detail="this customer's offboarding is already under way")
    ob = Offboarding(customer_org_id=org_id, customer_name=org.name, notice_days=notice_days,
                     reason=reason, requested_by=actor_user_id, status="requested")
    session.add(ob)
    session.flush()
    _audit(session, "requested", ob, actor_user_id, {"notice_days": notice_days})
    return ob


def approve(session: Session, offboarding_id: str, *, actor_user_id: str | None,
            now: datetime | None = None) -> Offboarding:
    """The second person's approval; the notice period starts now."""
    ob = _get(session, offboarding_id)
    if ob.status != "requested":
        raise Conflict(detail="only a requested offboarding can be approved (it is %(status)s)",
                       params={"status": ob.status})
    if actor_user_id is None or actor_user_id == ob.requested_by:
        raise Conflict(detail="refused: the person who asked to end the contract cannot approve it; "
                              "another member of staff must")
    moment = now or utcnow()
    ob.status, ob.approved_by, ob.approved_at = "approved", actor_user_id, moment
    ob.notice_ends_at = moment + timedelta(days=ob.notice_days)
    _audit(session, "approved", ob, actor_user_id, {"notice_ends_at": ob.notice_ends_at.isoformat()})
    return ob


def cancel(session: Session, offboarding_id: str, *, actor_user_id: str | None) -> Offboarding:
    ob = _get(session, offboarding_id)
    if ob.status not in ("requested", "approved"):
        raise Conflict(detail="only an offboarding not yet deleting can be cancelled")
    ob.status = "cancelled"
    _audit(session, "cancelled", ob, actor_user_id)
    return ob


def confirm_early(session: Session, *, org_id: str, actor_user_id: str | None) -> Offboarding:
    """The customer's administrator agrees to deletion before the notice period ends."""
    ob = open_for(session, org_id)
    if ob is None or ob.status != "approved":
        raise Conflict(detail="there is no approved end of contract for this organisation to confirm")
    ob.confirmed_by, ob.confirmed_at = actor_user_id, utcnow()
    _audit(session, "confirmed_early", ob, actor_user_id)
    return ob


def for_customer(session: Session, org_id: str) -> Offboarding | None:
    """The end of contract a customer's administrator sees: approved or deleting (the notice
    period has started), newest first; None when there is none."""
    return session.scalars(select(Offboarding).where(
        Offboarding.customer_org_id == org_id,
        Offboarding.status.in_(("approved", "deleting")))
        .order_by(Offboarding.requested_at.desc())).first()


def customer_ref(ob: Offboarding) -> str:
    """The end of contract's id on the customer's side (the download's address): derived from
    the offboarding's id, so the vendor's id of it never doubles as the customer's."""
    return str(uuid.uuid5(_CUSTOMER_REF, ob.id))


def download_export(session: Session, ref: str, *, org_id: str,
                    actor_user_id: str | None, actor_token_id: str | None = None
                    ) -> tuple[bytes, str]:
    """The customer's own export (``ref``: ``customer_ref``), for its administrator, from
    approval until the deletion ends. Another organisation's end of contract is not found (404);
    every download is recorded in the customer's audit trail."""
    ob = next((found for found in session.scalars(select(Offboarding).where(
        Offboarding.customer_org_id == org_id)) if customer_ref(found) == ref), None)
    if ob is None:
        raise NotFound(detail="no such offboarding")
    if ob.status not in ("approved", "deleting") or not ob.export_path:
        raise Conflict(detail="there is no export to download (the vendor makes it after approval)")
    path = Path(ob.export_path)
    try:
        body = path.read_bytes()
    except FileNotFoundError as exc:
        raise Conflict(detail="there is no export to download (the vendor makes it after approval)") from exc
    if hashlib.sha256(body).hexdigest() != ob.export_sha256:
        raise Conflict(detail="the export file does not match its recorded SHA-256; ask the vendor "
                              "to make it again")
    record(session, "offboarding.export_downloaded", org_id=org_id, actor_user_id=actor_user_id,
           actor_token_id=actor_token_id, resource=f"offboarding:{ob.id}",
           details={"sha256": ob.export_sha256, "size": len(body)})
    return body, path.name


# -- export -------------------------------------------------------------------------------------


def tenant_tables() -> list[Table]:
    """Every tenant-scoped table of Vern, in the order rows can be deleted (referring first)."""
    import_models()
    scoped = {str(getattr(m.local_table, "name", "")) for m in Base.registry.mappers
              if issubclass(m.class_, TenantScoped)}
    return [t for t in reversed(Base.metadata.sorted_tables) if t.name in scoped]


def _plain(value: Any) -> Any:

    if isinstance(value, PII):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _product_targets(database: Database, org_id: str) -> tuple[str | None, list[str]]:
    """The customer's product key and the product tables to empty (``system.db:table``), from
    the published map; ``(None, [])`` when no map is published."""

    data_map = published_map_or_none(database)
    if data_map is None:
        return None, []
    with database.transaction(Scope.tenant(org_id)) as session:
        key = policy_for(session, org_id).product_tenant_key
    targets = []
    for definition in data_map.databases():
        if not definition.tenancy.owns(key):
            continue
        targets += [f"{definition.qualified}:{name}" for name in definition.erasure_order()]
    return key, targets


def _product(database: Database, qualified: str, key: str) -> Any:

    data_map = published_map_or_none(database)
    if data_map is None:
        raise Conflict(detail="the product map is no longer published")
    definition = next(d for d in data_map.databases() if d.qualified == qualified)
    return definition, product_db(definition, None, key)


def _read_vern_rows(database: Database, org_id: str, tables: list[Table], counts: dict[str, int],
                    rows: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """The customer's rows of each of Vern's tenant-scoped ``tables`` (personal fields opened),
    added to ``rows`` under Vern's own system, with their counts."""
    with database.transaction(Scope.system("offboarding export")) as session:
        for table in tables:
            found = [{k: _plain(v) for k, v in r._mapping.items()} for r in session.execute(
                select(table).where(table.c.org_id == org_id)
                .execution_options(cross_tenant=_WHY))]
            counts[f"vern.{table.name}"] = len(found)
            rows.setdefault(f"{VERN_SYSTEM}.{VERN_SYSTEM}", {})[table.name] = found


def _read_product_rows(database: Database, org_id: str, counts: dict[str, int],
                       rows: dict[str, dict[str, list[dict[str, Any]]]]) -> DataMap | None:
    """The customer's rows of every mapped product table, added to ``rows`` under their
    database, with their counts; returns the published product map (None without targets)."""
    key, targets = _product_targets(database, org_id)
    product_map = published_map_or_none(database) if targets else None
    for target in targets:
        qualified, name = target.split(":", 1)
        definition, pdb = _product(database, qualified, key or "")
        mt = definition.tables[name]
        table = pdb.table(name)
        with pdb.connect() as conn:
            found = [{k: _plain(v) for k, v in r.items()} for r in conn.execute(
                select(table).where(pdb.tenant_of(table, mt) == coerce(pdb.tenant_of(table, mt), key))
            ).mappings()]
        counts[f"product.{qualified}.{name}"] = len(found)
        rows.setdefault(qualified, {})[name] = found
    return product_map


def _write_private(directory: Path, filename: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/filename`` with mode 0600: to a ``.partial`` file first,
    renamed into place once complete."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    partial.replace(path)
    return path


def export(database: Database, settings: Settings, offboarding_id: str, *,
           actor_user_id: str | None) -> Path:
    """The customer's export in the access package's formats (the rights domain builds it):
    data.json, one CSV per table and a readable summary, over every tenant-scoped table of Vern
    (the customer's rows, personal fields opened) and every mapped product table (the
    customer's rows), with a manifest of row counts. Mode 0600; its SHA-256 is recorded."""
    with database.transaction(Scope.system("offboarding export")) as session:
        ob = _get(session, offboarding_id)
        if ob.status not in ("approved", "deleting"):
            raise Conflict(detail="the export is made after approval")
        org_id, org_name = ob.customer_org_id, ob.customer_name
    counts: dict[str, int] = {}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    tables = list(reversed(tenant_tables()))
    _read_vern_rows(database, org_id, tables, counts, rows)
    product_map = _read_product_rows(database, org_id, counts, rows)
    data_map = vern_map(tables)
    if product_map is not None:
        product_map = with_every_column(product_map, rows)
        data_map = DataMap(systems={**product_map.systems, **data_map.systems})
    moment = utcnow()
    body = build_export_package(data_map, rows, reference=offboarding_id, org_name=org_name,
                                made_at=moment, locale=settings.default_locale)
    buffer = io.BytesIO(body)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({
            "customer_org_id": org_id, "offboarding_id": offboarding_id,
            "made_at": moment.isoformat(), "rows": counts}, indent=1))
    path = _write_private(export_dir(settings), f"offboarding-{offboarding_id}.zip",
                          buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    with database.transaction(Scope.system("offboarding export")) as session:
        ob = _get(session, offboarding_id)
        first = ob.exported_at is None
        ob.export_path, ob.export_sha256, ob.exported_at = str(path), digest, utcnow()
        _audit(session, "exported", ob, actor_user_id, {"sha256": digest, "rows": sum(counts.values())})
        if first:
            _tell_export_ready(session, settings, ob)
    return path


def _tell_export_ready(session: Session, settings: Settings, ob: Offboarding) -> None:
    """The customer's administrators learn that their export can be downloaded (once, with the
    first export; in the same transaction as its record, so a restart neither loses nor repeats
    it)."""
    for admin in active_admins(session, ob.customer_org_id):
        if admin.email is None or not admin.email.value:
            continue
        locale = admin.locale or settings.default_locale
        params = {"org": ob.customer_name, "url": f"{settings.base_url}/console/end-of-contract",
                  "ends": format_day(ob.notice_ends_at, locale) if ob.notice_ends_at else "-"}
        notify.queue(session, key_id=admin.key_id, to=admin.email.value,
                     subject=gettext(locale, EXPORT_READY_MAIL[0], **params),
                     body=gettext(locale, EXPORT_READY_MAIL[1], **params),
                     kind="offboarding.export_ready", org_id=ob.customer_org_id)


# -- deletion -----------------------------------------------------------------------------------


def start_deletion(database: Database, offboarding_id: str, *, actor_user_id: str | None,
                   now: datetime | None = None) -> Offboarding:
    """Begin deleting: only after approval and the export, and when the notice period has ended
    or the customer's administrator confirmed earlier."""
    moment = now or utcnow()
    with database.transaction(Scope.system("offboarding start")) as session:
        ob = _get(session, offboarding_id)
        if ob.status == "deleting":
            return ob
        if ob.status != "approved":
            raise Conflict(detail="only an approved offboarding can be deleted (it is %(status)s)",
                           params={"status": ob.status})
        if ob.exported_at is None:
            raise Conflict(detail="export the customer's data first")
        if ob.confirmed_at is None and ob.notice_ends_at is not None and moment < ob.notice_ends_at:
            raise Conflict(detail="the notice period ends %(day)s; deletion cannot start before then "
                                  "unless the customer's administrator confirms",
                           params={"day": ob.notice_ends_at.date().isoformat()})
        org_id = ob.customer_org_id
    key, targets = _product_targets(database, org_id)
    with database.transaction(Scope.system("offboarding start")) as session:
        ob = _get(session, offboarding_id)
        ob.status, ob.deletion_started_at = "deleting", moment
        # The customer's people: an account used by this customer alone is erased (before the
        # memberships go); one also used by another organisation keeps its account and loses
        # only this membership (with the membership rows).
        alone, shared = accounts_of(session, org_id)
        steps = ([ACCOUNTS_STEP] + [f"vern:{t.name}" for t in tenant_tables()]
                 + [f"product:{t}" for t in targets])
        ob.progress = {"steps": steps, "at": 0, "key": key, "deleted": {},
                       "accounts": alone, "accounts_done": 0, "accounts_kept": len(shared)}
        _audit(session, "deletion_started", ob, actor_user_id, {"steps": len(ob.progress["steps"])})
    return ob


def _delete_vern(database: Database, table: Table, org_id: str, batch: int) -> int:
    pk = list(table.primary_key.columns)
    with database.transaction(Scope.system("offboarding delete")) as session:
        if len(pk) == 1:
            ids = list(session.scalars(select(pk[0]).where(table.c.org_id == org_id).limit(batch)
                                       .execution_options(cross_tenant=_WHY)))
            if not ids:
                return 0
            done = session.execute(delete(table).where(table.c.org_id == org_id, pk[0].in_(ids))
                                   .execution_options(cross_tenant=_WHY))
        else:
            done = session.execute(delete(table).where(table.c.org_id == org_id)
                                   .execution_options(cross_tenant=_WHY))
        return int(getattr(done, "rowcount", 0) or 0)


def _delete_product(database: Database, target: str, key: str, batch: int) -> int:

    qualified, name = target.split(":", 1)
    definition, pdb = _product(database, qualified, key)
    mt = definition.tables[name]
    table = pdb.table(name)
    tenant = pdb.tenant_of(table, mt)
    value = coerce(tenant, key)
    keys = [table.c[k] for k in pdb.key_columns(mt)]
    with pdb.engine.begin() as conn:
        if len(keys) == 1:
            ids = list(conn.scalars(select(keys[0]).where(tenant == value).limit(batch)))
            if not ids:
                return 0
            return int(conn.execute(delete(table).where(tenant == value, keys[0].in_(ids))).rowcount or 0)
        return int(conn.execute(delete(table).where(tenant == value)).rowcount or 0)


def step(database: Database, settings: Settings, offboarding_id: str, *, batch: int = 1000) -> bool:
    """One bounded step of the deletion: at most ``batch`` rows of one table, then the progress
    is saved. True when every table is done and the certificate is written."""
    with database.transaction(Scope.system("offboarding step")) as session:
        ob = _get(session, offboarding_id)
        if ob.status == "deleted":
            return True
        if ob.status != "deleting" or ob.progress is None:
            raise Conflict(detail="the deletion has not started")
        progress = dict(ob.progress)
        org_id = ob.customer_org_id
    steps: list[str] = progress["steps"]
    at = int(progress["at"])
    if at >= len(steps):
        _finish(database, settings, offboarding_id)
        return True
    if steps[at] == ACCOUNTS_STEP:
        _erase_accounts(database, offboarding_id, org_id, batch)
        return False
    kind, name = steps[at].split(":", 1)
    if kind == "vern":
        table = Base.metadata.tables[name]
        n = _delete_vern(database, table, org_id, batch)
        label = f"vern.{name}"
    else:
        n = _delete_product(database, name, progress.get("key") or "", batch)
        label = "product." + name.replace(":", ".")
    with database.transaction(Scope.system("offboarding step")) as session:
        ob = _get(session, offboarding_id)
        progress = dict(ob.progress or {})
        deleted = dict(progress.get("deleted") or {})
        deleted[label] = int(deleted.get(label, 0)) + n
        progress["deleted"] = deleted
        if n < batch:  # the table has no more of the customer's rows
            progress["at"] = at + 1
        ob.progress = progress
    return False


def _erase_accounts(database: Database, offboarding_id: str, org_id: str, batch: int) -> None:
    """Erase at most ``batch`` of the accounts used by this customer alone (the accounts
    domain's erasure: data key destroyed, sessions, links, codes and memberships deleted, the
    row kept as a tombstone), and save how far it got in the same transaction."""
    with database.transaction(Scope.tenant(org_id)) as session:
        ob = _get(session, offboarding_id)
        progress = dict(ob.progress or {})
        accounts: list[str] = list(progress.get("accounts") or [])
        done = int(progress.get("accounts_done") or 0)
        erased = 0
        for user_id in accounts[done:done + batch]:
            try:
                erase_user(session, user_id=user_id, actor=None, org_ending=org_id)
                erased += 1
            except NotFound:  # no longer a member here (erased or removed meanwhile)
                pass
        progress["accounts_done"] = min(done + batch, len(accounts))
        progress["accounts_erased"] = int(progress.get("accounts_erased") or 0) + erased
        if progress["accounts_done"] >= len(accounts):
            progress["at"] = int(progress["at"]) + 1
        ob.progress = progress


def run_deletion(database: Database, settings: Settings, offboarding_id: str, *, batch: int = 1000,
                 max_steps: int | None = None) -> bool:
    """Steps until done (or ``max_steps``); True when the certificate is written."""
    done, count = False, 0
    while not done and (max_steps is None or count < max_steps):
        done = step(database, settings, offboarding_id, batch=batch)
        count += 1
    return done


def _signer(settings: Settings) -> Any:
    return Signer(settings)


def _origin(settings: Settings) -> str:
    return origin(settings)


def _finish(database: Database, settings: Settings, offboarding_id: str) -> None:
    with database.transaction(Scope.system("offboarding certificate")) as session:
        ob = _get(session, offboarding_id)
        if ob.status == "deleted":
            return
        moment = utcnow()
        deleted: dict[str, int] = dict(sorted(((ob.progress or {}).get("deleted") or {}).items()))
        body = {
            "offboarding_id": ob.id, "customer_org_id": ob.customer_org_id,
            "customer_name": ob.customer_name, "requested_by": ob.requested_by,
            "requested_at": ob.requested_at.isoformat(), "approved_by": ob.approved_by,
            "approved_at": ob.approved_at.isoformat() if ob.approved_at else None,
            "notice_days": ob.notice_days,
            "notice_ends_at": ob.notice_ends_at.isoformat() if ob.notice_ends_at else None,
            "confirmed_early_by": ob.confirmed_by, "export_sha256": ob.export_sha256,
            "deletion_started_at": ob.deletion_started_at.isoformat() if ob.deletion_started_at else None,
            "deleted_at": moment.isoformat(),
            "deleted_rows": deleted,
            "accounts": {"erased": int((ob.progress or {}).get("accounts_erased") or 0),
                         "kept_membership_removed": int((ob.progress or {}).get("accounts_kept") or 0)},
            "kept": KEPT,
        }
        text = CERTIFICATE_HEADER + "\n" + json.dumps(body, sort_keys=True, ensure_ascii=False,
                                                      separators=(",", ":")) + "\n"
        ob.certificate = _signer(settings).sign_text(text, _origin(settings))
        ob.status, ob.deleted_at = "deleted", moment
        _audit(session, "deleted", ob, None, {"rows": sum(int(n) for n in deleted.values())})
        # The export was the customer's to take; it goes with the rest.
        if ob.export_path:
            Path(ob.export_path).unlink(missing_ok=True)


def verify_certificate(text: str, settings: Settings) -> dict[str, Any]:
    """The certificate's content when Vern's signing key signed it; ``ValueError`` otherwise."""
    signer = _signer(settings)
    try:
        note = Note.parse(text)
        verifiers = [Verifier.parse(signer.vkey(_origin(settings)))]
        if not any(note.verified_by(v) for v in verifiers):
            raise ValueError("not signed by this Vern's signing key")
    except NoteError as exc:
        raise ValueError(str(exc)) from exc
    header, _, body = note.text.partition("\n")
    if header != CERTIFICATE_HEADER:
        raise ValueError("not a certificate of deletion")
    return dict(json.loads(body))


def due(database: Database, now: datetime | None = None) -> list[str]:
    """Offboardings the worker may take further: deleting, or approved, exported and past the
    notice (or confirmed early)."""
    moment = now or utcnow()
    with database.transaction(Scope.system("offboarding due")) as session:
        rows = session.scalars(select(Offboarding).where(Offboarding.status.in_(("approved", "deleting"))))
        return [ob.id for ob in rows if ob.status == "deleting" or (
            ob.exported_at is not None and (ob.confirmed_at is not None or (
                ob.notice_ends_at is not None and ob.notice_ends_at <= moment)))]


def is_deleting(database: Database, offboarding_id: str) -> bool:
    with database.transaction(Scope.system("offboarding state")) as session:
        return _get(session, offboarding_id).status == "deleting"
