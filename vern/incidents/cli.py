"""``vern incidents …``: the deviation and breach register from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from vern.accounts import service as accounts
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Role, permissions
from vern.accounts.service import Actor
from vern.core.cliutil import command_database as vern_database
from vern.core.cliutil import show_table
from vern.core.config import get_settings
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.incidents import service
from vern.incidents.jobs import raise_warnings
from vern.notify.service import deliver_pending

app = typer.Typer(help="Deviations and personal data breaches: register, clocks, notices.",
                  no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _database() -> Any:

    return vern_database()


def _actor(session: Any, email: str | None) -> Any:
    """The vendor staff member the command acts as (their role in the vendor organisation)."""

    vendor = accounts.vendor_org(session)
    if vendor is None:
        _fail("org: there is no vendor organisation")
    if email is None:
        return Actor(org_id=vendor.id, org_kind=OrgKind.VENDOR, role=Role.OWNER,
                     perms=permissions(Role.OWNER, org_kind=OrgKind.VENDOR, home=True))
    user = accounts.find_user_by_email(session, get_settings(), email)
    if user is None:
        _fail(f"--as: {email!r} is not a member of the vendor organisation")
    role = next((m.role for m, org in accounts.memberships_of(session, user.id)
                 if org.id == vendor.id), None)
    if role is None:
        _fail(f"--as: {email!r} is not a member of the vendor organisation")
    return Actor(org_id=vendor.id, org_kind=OrgKind.VENDOR, role=Role(role), user_id=user.id,
                 perms=permissions(Role(role), org_kind=OrgKind.VENDOR, home=True))


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--{name.replace('_', '-')}: not an ISO time: {value!r}", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _customer_ids(session: Any, slugs: list[str]) -> list[str]:
    from sqlalchemy import select


    ids = []
    for slug in slugs:
        found = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
        if found is None:
            _fail(f"--customer: no organisation with slug {slug!r}", 2)
        ids.append(found)
    return ids


def _run(work: Any) -> Any:

    try:
        with _database().transaction(Scope.system("cli incidents")) as session:
            return work(session)
    except VernError as exc:
        _fail(str(exc), 2)


As = Annotated[str | None, typer.Option("--as", help="E-mail of the vendor staff member acting.")]


@app.command("list")
def list_command(status: Annotated[str, typer.Option(help="open, closed or all.")] = "open",
                 as_: As = None) -> None:
    """The register, newest first."""

    if status not in ("open", "closed", "all"):
        _fail("--status: one of open, closed, all", 2)

    def work(session: Any) -> None:
        table = Table("number", "id", "kind", "risk", "aware", "status", "title")
        for inc in service.list_incidents(session, _actor(session, as_),
                                          status=None if status == "all" else status):
            table.add_row(f"#{inc.number}", inc.id, "breach" if inc.personal_data else "deviation",
                          inc.risk, f"{inc.aware_at:%Y-%m-%d %H:%M}" if inc.aware_at else "",
                          inc.status, inc.title)
        show_table(console, table)

    _run(work)


@app.command("clocks")
def clocks_command(as_: As = None) -> None:
    """Every clock of the open breaches, the most urgent first."""

    def work(session: Any) -> None:
        table = Table("breach", "to", "hours", "deadline", "state")
        for c in service.clocks(session, _actor(session, as_)):
            style = {"overdue": "bold red", "due_soon": "yellow"}.get(c["state"], "")
            table.add_row(f"#{c['number']}", c["customer"], str(c["hours"]),
                          f"{c['due_at']:%Y-%m-%d %H:%M} UTC", f"[{style}]{c['state']}[/]"
                          if style else c["state"])
        show_table(console, table)

    _run(work)


@app.command("show")
def show_command(incident_id: str, as_: As = None) -> None:
    """One incident as JSON: its fields, customers, notices and timeline."""

    def work(session: Any) -> None:
        actor = _actor(session, as_)
        inc = service.get_incident(session, actor, incident_id)
        out = {**service.incident_view(inc),
               "clocks": [service.clock_view(c) for c in
                          service.clocks(session, actor, incident_id=inc.id)],
               "notices": [service.vendor_notice_view(n)
                           for n in service.notices_of_incident(session, inc.id)],
               "timeline": service.full_timeline(session, inc)}
        console.print_json(json.dumps(out, ensure_ascii=False))

    _run(work)


@app.command("new")
def new_command(  # noqa: PLR0917 - a command's options
    title: Annotated[str, typer.Option(help="A short title.")],
    breach: Annotated[bool, typer.Option(help="Personal data is concerned.")] = False,
    aware_at: Annotated[str | None, typer.Option(help="ISO time the vendor became aware.")] = None,
    discovered_at: Annotated[str | None, typer.Option(help="ISO time it was discovered.")] = None,
    risk: Annotated[str, typer.Option(help="none, risk or high.")] = "risk",
    customer: Annotated[list[str] | None, typer.Option(help="Slug of an affected customer.")] = None,
    what: Annotated[str, typer.Option(help="What happened.")] = "",
    controller: Annotated[bool, typer.Option(help="The vendor is itself controller.")] = False,
    as_: As = None,
) -> None:
    """Register a deviation (with --breach, a personal data breach: --aware-at is required)."""

    data = service.IncidentInput(title=title, personal_data=breach, risk=risk,
                                 aware_at=_moment(aware_at, "aware_at"),
                                 discovered_at=_moment(discovered_at, "discovered_at"),
                                 what_happened=what, vendor_is_controller=controller)

    def work(session: Any) -> Any:
        inc = service.register(session, _actor(session, as_), data,
                               _customer_ids(session, customer or []))
        return inc.number, inc.id

    number, inc_id = _run(work)
    console.print(f"registered #{number}: {inc_id}")


@app.command("notify")
def notify_command(incident_id: str,
                   phase: Annotated[str, typer.Option(help="initial, update or final.")] = "initial",
                   customer: Annotated[list[str] | None,
                                       typer.Option(help="Only this customer (slug).")] = None,
                   as_: As = None) -> None:
    """Send the notice (or an update) to the affected customers through the outbox."""

    def work(session: Any) -> Any:
        ids = _customer_ids(session, customer) if customer else None
        return service.send_notices(session, _actor(session, as_), incident_id, phase=phase,
                                    customer_ids=ids, base_url=get_settings().base_url)

    sent = _run(work)
    deliver_pending(_database())
    for item in sent:
        console.print(f"notice {item.notice_id} to {item.customer_id}: {item.recipients} recipients")


@app.command("close")
def close_command(incident_id: str,
                  cause: Annotated[str, typer.Option(help="The cause found.")],
                  lessons: Annotated[str, typer.Option(help="The lessons learned.")],
                  as_: As = None) -> None:
    """The closing review: cause and lessons learned."""

    _run(lambda session: service.close(session, _actor(session, as_), incident_id, cause=cause,
                                       lessons=lessons))
    console.print(f"closed {incident_id}")


@app.command("warn")
def warn_command() -> None:
    """Raise the clocks' warnings now (what the worker does every minute)."""

    console.print(f"raised {raise_warnings(_database(), base_url=get_settings().base_url)}")
