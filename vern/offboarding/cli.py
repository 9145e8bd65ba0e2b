"""``vern offboarding …``: end a customer's contract from the command line (two people:
``--by`` names the member of staff), and check a certificate of deletion."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vern.accounts.service import find_user_by_email
from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.offboarding import service

app = typer.Typer(help="End a customer's contract: export, notice, deletion, certificate.",
                  no_args_is_help=True)
out = Console(soft_wrap=True)

By = Annotated[str, typer.Option("--by", help="E-mail address of the member of staff doing this")]


def _staff(database: Any, settings: Any, email: str) -> str:

    with database.transaction(Scope.system("cli offboarding actor")) as session:
        user = find_user_by_email(session, settings, email)
        if user is None:
            fail("--by: no such user")
        return str(user.id)


def _open() -> Any:

    settings = settings_or_exit()
    return open_database(settings), settings


def _conflict(exc: Exception) -> None:

    if isinstance(exc, VernError):
        where = f"{exc.errors[0].field}: " if exc.errors else ""
        fail(f"{where}{exc.errors[0].message if exc.errors else exc.detail}")
    raise exc


@app.command("request")
def request_command(org: Annotated[str, typer.Option(help="The customer's organisation id")],
                    notice_days: Annotated[int, typer.Option(help="Days of notice before deletion")],
                    by: By, reason: Annotated[str, typer.Option(help="Why the contract ends")] = "") -> None:
    """Ask to end a customer's contract."""

    database, settings = _open()
    actor = _staff(database, settings, by)
    try:
        with database.transaction(Scope.system("cli offboarding")) as session:
            ob = service.request(session, org_id=org, notice_days=notice_days, reason=reason,
                                 actor_user_id=actor)
            out.print(f"offboarding {ob.id} asked for {ob.customer_name}; another member of staff approves")
    except VernError as exc:
        _conflict(exc)


@app.command("approve")
def approve_command(offboarding: Annotated[str, typer.Argument(help="Offboarding id")], by: By) -> None:
    """Approve (not by the person who asked); the notice period starts."""

    database, settings = _open()
    actor = _staff(database, settings, by)
    try:
        with database.transaction(Scope.system("cli offboarding")) as session:
            ob = service.approve(session, offboarding, actor_user_id=actor)
            out.print(f"approved; the notice period ends {ob.notice_ends_at:%Y-%m-%d %H:%M} UTC")
    except VernError as exc:
        _conflict(exc)


@app.command("export")
def export_command(offboarding: Annotated[str, typer.Argument(help="Offboarding id")], by: By) -> None:
    """Write the customer's export (the access package's formats: data.json, CSV, summary) and
    print where."""

    database, settings = _open()
    actor = _staff(database, settings, by)
    try:
        path = service.export(database, settings, offboarding, actor_user_id=actor)
    except VernError as exc:
        _conflict(exc)
    out.print(f"export written to {path}")


@app.command("delete")
def delete_command(offboarding: Annotated[str, typer.Argument(help="Offboarding id")], by: By,
                   batch: Annotated[int, typer.Option(min=1, max=100_000,
                                                      help="Rows per step")] = 1000) -> None:
    """Start (or resume) the deletion and run it to the end; print the certificate."""

    database, settings = _open()
    actor = _staff(database, settings, by)
    try:
        service.start_deletion(database, offboarding, actor_user_id=actor)
        service.run_deletion(database, settings, offboarding, batch=batch)
    except VernError as exc:
        _conflict(exc)
    with database.transaction(Scope.system("cli offboarding")) as session:
        typer.echo(service.get(session, offboarding).certificate or "", nl=False)


@app.command("list")
def list_command() -> None:
    """Every end of contract and where it stands."""

    database, _settings = _open()
    with database.transaction(Scope.system("cli offboarding")) as session:
        for ob in service.list_all(session):
            out.print(f"{ob.id}  {ob.customer_name}  {ob.status}  notice {ob.notice_days} days")


@app.command("verify-certificate")
def verify_certificate_command(
        file: Annotated[Path, typer.Argument(
            help="The certificate (signed note) to check; - reads standard input")]) -> None:
    """Check that this Vern signed a certificate of deletion, and print what it says."""
    settings = settings_or_exit()
    text = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        body = service.verify_certificate(text, settings)
    except ValueError as exc:
        fail(f"certificate: not valid: {exc}")
    out.print("certificate valid: signed by this Vern's signing key")
    typer.echo(json.dumps(body, indent=1, ensure_ascii=False))
