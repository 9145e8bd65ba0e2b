"""``vern vendor …``: the vendor's registry - sub-processors (with Art. 28(2) notices),
systems, measures, officers, customer profiles and contacts, maintenance notices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from vern.accounts import service as accounts
from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.notify import service as notify
from vern.vendor import service

app = typer.Typer(help="The vendor's registry: sub-processors, systems, measures, officers, "
                       "customers and maintenance notices.", no_args_is_help=True)
out = Console(soft_wrap=True)


@contextmanager
def _session(why: str) -> Iterator[Any]:
    """A system-scoped transaction (the registry reaches every customer's notices); a refusal
    is printed naming the field, and nothing is written."""

    database = open_database(settings_or_exit())
    try:
        with database.transaction(Scope.system(f"cli vendor {why}")) as session:
            yield session
    except VernError as exc:
        fail(str(exc))
    notify.deliver_pending(database)


def _tenant(session: Any, slug: str) -> str:

    for org in accounts.list_tenants(session):
        if org.slug == slug:
            return str(org.id)
    fail(f"customer: no customer with slug {slug!r}")


def _day(name: str, value: str | None) -> date | None:

    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name}: a date such as 2026-12-24")


def _moment(name: str, value: str) -> datetime:

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name}: a time with its offset, such as 2026-12-24T22:00+01:00")
    if moment.tzinfo is None:
        fail(f"{name}: give the time with its offset, such as 2026-12-24T22:00+01:00")
    return moment


def _places(locations: Any) -> str:
    return ", ".join(loc.country + ("" if loc.in_eea else " (outside EU/EEA)")
                     for loc in locations) or "-"


@app.command("seed")
def seed_command() -> None:
    """Add the measures the seed privacy statements promise (kept as they are if present)."""

    with _session("seed") as session:
        added = service.seed_measures(session, actor_user_id=None)
    out.print(f"{added} measures added")


@app.command("measures")
def measures_command() -> None:
    """The technical and organisational measures catalogue."""

    with _session("measures") as session:
        for m in service.list_measures(session, include_retired=True):
            out.print(f"{m.key:28} {m.category:15} {m.status:9} {m.owner or '-':20} "
                      f"{m.title_en}  [{len(m.evidence)} evidence]")


@app.command("subprocessors")
def subprocessors_command() -> None:
    """Every sub-processor with its locations and transfer mechanism."""

    with _session("subprocessors") as session:
        for s in service.list_subprocessors(session, include_retired=True):
            out.print(f"{s.key:20} {s.name:28} {s.status:8} v{s.version}  storage "
                      f"{_places(s.storage_locations)}; processing "
                      f"{_places(s.processing_locations)}; mechanism "
                      f"{s.transfer_mechanism or '-'}; audit "
                      f"{s.last_audit_date or '-'} {s.last_audit_result or ''}")


@app.command("subprocessor")
def subprocessor_command(  # noqa: PLR0917 - a command's options
    key: Annotated[str, typer.Argument(help="Key (lower-case letters, digits, - and _)")],
    name: Annotated[str, typer.Option(help="Company name.")],
    service_text: Annotated[str, typer.Option("--service", help="What it does for the vendor.")],
    category: Annotated[list[str], typer.Option(help="Data category (repeat).")],
    storage: Annotated[list[str], typer.Option(help="Storage country code (repeat).")],
    processing: Annotated[list[str] | None, typer.Option(help="Processing country (repeat).")] = None,
    mechanism: Annotated[str | None, typer.Option(help="Transfer mechanism outside the EU/EEA: "
                                                       "adequacy, scc, bcr, ...")] = None,
    agreement_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    status: Annotated[str, typer.Option(help="planned or active.")] = "planned",
    customer: Annotated[list[str] | None, typer.Option(help="Customer slug it serves (repeat; "
                                                             "none: every customer).")] = None,
    objection_days: Annotated[int, typer.Option(help="Days customers have to object.")] = 30,
) -> None:
    """Add or change a sub-processor; a new one or a notifiable change notifies its customers."""

    with _session("subprocessor") as session:
        tenants = tuple(_tenant(session, slug) for slug in customer or ())
        view, told = service.save_subprocessor(session, service.SubprocessorInput(
            key=key, name=name, service=service_text, data_categories=tuple(category),
            storage_locations=tuple(storage), processing_locations=tuple(processing or ()),
            transfer_mechanism=mechanism, agreement_date=_day("agreement_date", agreement_date),
            status=status, all_customers=not tenants, customer_ids=tenants),
            actor_user_id=None, objection_days=objection_days)
    out.print(f"{view.key} saved (version {view.version}); {told} customers notified")


@app.command("objections")
def objections_command() -> None:
    """Customers' objections to sub-processor notices."""

    with _session("objections") as session:
        names = {s.id: s.key for s in service.list_subprocessors(session, include_retired=True)}
        for n, customer in service.notices_for_vendor(session, objected_only=True):
            stamp = n.objected_at.isoformat(timespec="minutes") if n.objected_at else ""
            out.print(f"{stamp} {customer}: {names.get(n.subprocessor_id, '?')} "
                      f"v{n.version}: {n.objection_reason}")


@app.command("windows")
def windows_command(
    close: Annotated[bool, typer.Option(help="Record the closing of every window that has passed "
                                             "and mail the summaries now (as the worker does).")]
    = False,
) -> None:
    """Art. 28(2) objection windows: one line per sub-processor version - open or closed, how
    many customers were told and how many objected."""

    with _session("windows") as session:
        if close:
            for w in service.close_windows(session):
                out.print(f"closed now: {w.key} v{w.version}: {len(w.objections)} objection(s)")
        names = {s.id: s.key for s in service.list_subprocessors(session, include_retired=True)}
        windows: dict[tuple[str, int], list[service.NoticeView]] = {}
        for n, _customer in service.notices_for_vendor(session):
            windows.setdefault((n.subprocessor_id, n.version), []).append(n)
        for (sub_id, version), notices in windows.items():
            closes = max(n.closes_at for n in notices).isoformat(timespec="minutes")
            status = "closed" if any(n.status == "closed" for n in notices) else "open"
            objected = sum(n.objected_at is not None for n in notices)
            out.print(f"{names.get(sub_id, '?')} v{version}: {status}, closes {closes}; "
                      f"{len(notices)} customer(s), {objected} objection(s)")


@app.command("systems")
def systems_command() -> None:
    """The vendor's systems and where they keep and process data."""

    with _session("systems") as session:
        for s in service.list_systems(session, include_retired=True):
            out.print(f"{s.key:20} {s.name:28} storage {_places(s.storage_locations)}; "
                      f"processing {_places(s.processing_locations)}; mechanism "
                      f"{s.transfer_mechanism or '-'}")


@app.command("system")
def system_command(
    key: Annotated[str, typer.Argument(help="Key")],
    name: Annotated[str, typer.Option(help="Name.")],
    storage: Annotated[list[str], typer.Option(help="Storage country code (repeat).")],
    processing: Annotated[list[str] | None, typer.Option(help="Processing country (repeat).")] = None,
    mechanism: Annotated[str | None, typer.Option(help="Transfer mechanism outside the EU/EEA.")] = None,
) -> None:
    """Add or change a system and its locations."""

    with _session("system") as session:
        service.save_system(session, service.SystemInput(
            key=key, name=name, storage_locations=tuple(storage),
            processing_locations=tuple(processing or ()), transfer_mechanism=mechanism),
            actor_user_id=None)
    out.print(f"{key} saved")


@app.command("officer")
def officer_command(
    role: Annotated[str, typer.Argument(help="dpo or security")],
    name: Annotated[str, typer.Option(help="Name (published).")],
    email: Annotated[str, typer.Option(help="E-mail (published).")],
    phone: Annotated[str, typer.Option(help="Phone (published).")] = "",
) -> None:
    """Set the data protection officer or the security officer."""

    with _session("officer") as session:
        service.set_officer(session, role=role, name=name, email=email, phone=phone,
                            actor_user_id=None)
    out.print(f"{role} set")


@app.command("customer")
def customer_command(
    slug: Annotated[str, typer.Argument(help="Customer slug")],
    org_number: Annotated[str | None, typer.Option(help="Organisation number (9 digits).")] = None,
    contract_start: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    contract_end: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    breach_hours: Annotated[int | None, typer.Option(help="Breach notice within hours.")] = None,
) -> None:
    """Show a customer's profile; with options, change it first."""

    with _session("customer") as session:
        tenant_id = _tenant(session, slug)
        profile = service.customer_profile(session, tenant_id)
        if any(v is not None for v in (org_number, contract_start, contract_end, breach_hours)):
            profile = service.set_customer_profile(
                session, tenant_id,
                org_number=org_number if org_number is not None else profile.org_number,
                contract_start=_day("contract_start", contract_start) or profile.contract_start,
                contract_end=_day("contract_end", contract_end) or profile.contract_end,
                breach_notice_hours=breach_hours or profile.breach_notice_hours)
        out.print(f"{profile.name}  org {profile.org_number or '-'}  contract "
                  f"{profile.contract_start or '-'} - {profile.contract_end or '-'}  breach notice "
                  f"within {profile.breach_notice_hours} h")
        for kind, people in profile.contacts.items():
            out.print(f"  {kind:12} {', '.join(r.email for r in people) or '(administrators)'}")


@app.command("contact")
def contact_command(
    slug: Annotated[str, typer.Argument(help="Customer slug")],
    kind: Annotated[str, typer.Option(help="privacy, security, breach or maintenance.")],
    name: Annotated[str, typer.Option(help="Name.")],
    email: Annotated[str, typer.Option(help="E-mail.")],
    locale: Annotated[str, typer.Option(help="nb or en.")] = "nb",
) -> None:
    """Name a customer's contact for one kind of notice."""

    with _session("contact") as session:
        service.add_contact(session, _tenant(session, slug), kind=kind, name=name, email=email,
                            locale=locale, actor_user_id=None)
    out.print("contact added")


@app.command("maintenance")
def maintenance_command(  # noqa: PLR0917 - a command's options
    title_nb: Annotated[str, typer.Option(help="Title in bokmål.")],
    title_en: Annotated[str, typer.Option(help="Title in English.")],
    starts: Annotated[str, typer.Option(help="Start with offset, e.g. 2026-12-24T22:00+01:00.")],
    ends: Annotated[str, typer.Option(help="End with offset.")],
    body_nb: Annotated[str, typer.Option(help="Text in bokmål.")] = "",
    body_en: Annotated[str, typer.Option(help="Text in English.")] = "",
    emergency_reason: Annotated[str | None, typer.Option(
        help="Less than 24 hours ahead: an emergency, and why.")] = None,
    customer: Annotated[list[str] | None, typer.Option(help="Customer slug (repeat; none: all).")] = None,
) -> None:
    """Announce maintenance to the customers' maintenance contacts (or administrators)."""

    with _session("maintenance") as session:
        tenants = tuple(_tenant(session, slug) for slug in customer or ())
        view, sent = service.schedule_maintenance(session, service.MaintenanceInput(
            title_nb=title_nb, title_en=title_en, body_nb=body_nb, body_en=body_en,
            starts_at=_moment("starts", starts), ends_at=_moment("ends", ends),
            emergency=emergency_reason is not None, emergency_reason=emergency_reason or "",
            all_customers=not tenants, customer_ids=tenants), actor_user_id=None)
    out.print(f"maintenance {view.id} announced to {sent} recipients")
