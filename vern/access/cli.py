"""``vern access …``: vendor access grants, role requests and access reviews from the shell.

Every command that decides something acts for a named person (``--by EMAIL``), with that
person's role in their own organisation: the same four-eyes rules as the console and the API.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from vern.access import service
from vern.accounts import service as accounts
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Role, permissions
from vern.core.cliutil import open_database, settings_or_exit, show_table
from vern.core.config import get_settings
from vern.core.db import Scope
from vern.core.errors import VernError

app = typer.Typer(help="Access control: vendor access grants, role requests, access reviews.",
                  no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _database() -> Any:

    return open_database(settings_or_exit())


def _org_id(database: Any, slug: str) -> str:
    from sqlalchemy import select


    with database.transaction(Scope.system("cli access org")) as session:
        found = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    if found is None:
        _fail(f"--org: no organisation with slug {slug!r}")
    return str(found)


def _actor(database: Any, email: str) -> Any:
    """The person ``email`` names, acting in their own organisation with their role there."""

    with database.transaction(Scope.system("cli access person")) as session:
        user = accounts.find_user_by_email(session, get_settings(), email)
        if user is None or user.disabled_at is not None:
            _fail("--by: no active account with that address")
        memberships = accounts.memberships_of(session, user.id)
        if not memberships:
            _fail("--by: the account belongs to no organisation")
        membership, org = memberships[0]  # the vendor's organisation first, as at sign-in
        role, kind = Role(membership.role), OrgKind(org.kind)
        return accounts.Actor(org_id=org.id, org_kind=kind, role=role,
                              perms=permissions(role, org_kind=kind, home=True),
                              user_id=user.id, person_id=user.id)


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: give a date and time (ISO 8601, e.g. 2026-12-24T16:00+01:00)", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(database: Any, org_id: str, work: Any) -> Any:

    try:
        with database.transaction(Scope.tenant(org_id)) as session:
            return work(session)
    except VernError as exc:
        _fail(str(exc))


@app.command("request-grant")
def request_grant(  # noqa: PLR0917 - a command's options
    org: Annotated[str, typer.Option(help="The customer's slug.")],
    by: Annotated[str, typer.Option("--by", help="E-mail of the vendor staff member.")],
    reason: Annotated[str, typer.Option(help="Why access is needed.")],
    until: Annotated[str, typer.Option(help="Until when (ISO 8601; at most 30 days).")],
    purpose: Annotated[str, typer.Option(help="support or incident.")] = "support",
    start: Annotated[str | None, typer.Option("--from", help="From when (default now).")] = None,
) -> None:
    """Vendor staff ask a customer for access to its data."""

    database = _database()
    org_id, actor = _org_id(database, org), _actor(database, by)
    grant = _run(database, org_id, lambda s: service.grant_view(service.request_grant(
        s, actor=actor, org_id=org_id, purpose=purpose, reason=reason,
        starts_at=_moment(start, "--from"), ends_at=_moment(until, "--until"))))
    console.print(f"grant {grant['id']} is {grant['state']}")


def _decide(grant_id: str, org: str, by: str, verb: str, note: str = "") -> None:

    database = _database()
    org_id, actor = _org_id(database, org), _actor(database, by)
    if actor.org_id != org_id:
        _fail("--by: only an administrator of the customer decides its grants")

    def work(session: Any) -> dict[str, Any]:
        if verb == "revoke":
            return service.grant_view(service.revoke_grant(session, grant_id, actor=actor))
        return service.grant_view(service.decide_grant(
            session, grant_id, approve=verb == "approve", actor=actor, note=note))

    grant = _run(database, org_id, work)
    console.print(f"grant {grant['id']} is {grant['state']}")


@app.command("approve-grant")
def approve_grant(
    grant_id: Annotated[str, typer.Argument(help="Grant id.")],
    org: Annotated[str, typer.Option(help="The customer's slug.")],
    by: Annotated[str, typer.Option("--by", help="E-mail of the customer's administrator.")],
) -> None:
    """The customer's administrator approves a grant."""
    _decide(grant_id, org, by, "approve")


@app.command("refuse-grant")
def refuse_grant(
    grant_id: Annotated[str, typer.Argument(help="Grant id.")],
    org: Annotated[str, typer.Option(help="The customer's slug.")],
    by: Annotated[str, typer.Option("--by", help="E-mail of the customer's administrator.")],
    note: Annotated[str, typer.Option(help="Why it is refused.")] = "",
) -> None:
    """The customer's administrator refuses a grant."""
    _decide(grant_id, org, by, "refuse", note)


@app.command("revoke-grant")
def revoke_grant(
    grant_id: Annotated[str, typer.Argument(help="Grant id.")],
    org: Annotated[str, typer.Option(help="The customer's slug.")],
    by: Annotated[str, typer.Option("--by", help="E-mail of the customer's administrator.")],
) -> None:
    """End a grant at once."""
    _decide(grant_id, org, by, "revoke")


@app.command("grants")
def list_grants(org: Annotated[str, typer.Option(help="The customer's slug.")]) -> None:
    """A customer's grants and their state now."""

    database = _database()
    org_id = _org_id(database, org)
    rows = _run(database, org_id, lambda s: [service.grant_view(g)
                                              for g in service.list_grants(s)])
    table = Table("id", "grantee", "purpose", "from", "until", "state")
    for g in rows:
        table.add_row(g["id"], g["grantee_user_id"], g["purpose"], g["starts_at"][:16],
                      g["ends_at"][:16], g["state"])
    show_table(console, table)


def _request_org(database: Any, actor: Any, request_id: str) -> str:
    """Where a role request is decided: in the actor's own organisation, or - for the vendor's
    staff who administer customers - in the customer's the request belongs to."""
    if not service.tenant_administrator(actor):
        return str(actor.org_id)
    try:
        with database.transaction(Scope.system("cli access request org")) as session:
            return service.customer_request_org(session, request_id)
    except VernError:
        return str(actor.org_id)  # not a customer's: decided (or not found) in one's own


def _decide_request(request_id: str, by: str, approve: bool, note: str = "") -> None:
    database = _database()
    actor = _actor(database, by)
    org_id = _request_org(database, actor, request_id)
    row = _run(database, org_id, lambda s: service.role_request_view(
        service.decide_role_request(s, request_id, approve=approve, actor=actor, note=note)))
    console.print(f"request {row['id']} is {row['status']}")


@app.command("approve-request")
def approve_request(
    request_id: Annotated[str, typer.Argument(help="Role request id.")],
    by: Annotated[str, typer.Option("--by", help=(
        "E-mail of the approving administrator, or - for a customer's request - of the "
        "vendor's staff member who administers customers."))],
) -> None:
    """A second person approves a role request (never one they asked for or that is for them)."""
    _decide_request(request_id, by, approve=True)


@app.command("refuse-request")
def refuse_request(
    request_id: Annotated[str, typer.Argument(help="Role request id.")],
    by: Annotated[str, typer.Option("--by", help=(
        "E-mail of the administrator, or - for a customer's request - of the vendor's staff "
        "member who administers customers."))],
    note: Annotated[str, typer.Option(help="Why it is refused.")] = "",
) -> None:
    """Refuse a role request, with a note."""
    _decide_request(request_id, by, approve=False, note=note)


@app.command("requests")
def list_requests(
    by: Annotated[str, typer.Option("--by", help=(
        "E-mail of the vendor's staff member who administers customers."))],
) -> None:
    """Customers' pending role requests (for the vendor's staff who administer customers)."""

    database = _database()
    actor = _actor(database, by)
    try:
        with database.transaction(Scope.system("cli access customer requests")) as session:
            rows = service.customer_role_requests(session, actor=actor)
    except VernError as exc:
        _fail(f"--by: {exc}")
    table = Table("id", "customer", "for", "role", "need", "asked by")
    for r in rows:
        table.add_row(r["id"], r["org_slug"], r["for_name"] or "", r["role"], r["need"],
                      r["requested_by_name"] or "")
    show_table(console, table)


@app.command("review-export")
def review_export(
    review_id: Annotated[str, typer.Argument(help="Review id.")],
    org: Annotated[str, typer.Option(help="The organisation's slug.")],
) -> None:
    """Print a review's result as JSON (the evidence to keep)."""

    database = _database()
    org_id = _org_id(database, org)
    body = _run(database, org_id, lambda s: service.review_evidence(s, review_id))
    typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
