"""``vern control …``: control tasks, the catalogue, risks, the personnel export and the media log.

Commands that change something name the staff member acting (``--by`` e-mail address), so that
the audit trail says who did it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.control import service
from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import VernError

app = typer.Typer(help="Internal control: tasks, risks, personnel, media log.",
                  no_args_is_help=True)
tasks_app = typer.Typer(help="Control tasks.", no_args_is_help=True)
personnel_app = typer.Typer(help="Personnel with access.", no_args_is_help=True)
media_app = typer.Typer(help="The media sanitisation log.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(personnel_app, name="personnel")
app.add_typer(media_app, name="media")
out = Console(soft_wrap=True)
T = TypeVar("T")


def _vendor() -> tuple[object, str]:

    database = open_database(settings_or_exit())
    with database.transaction(Scope.system("cli control: find the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            fail("no vendor organisation: run vern init first")
        return database, vendor.id


def _staff_id(session: Session, email: str, option: str) -> str:

    wanted = email.strip().lower()
    for user, _m in service.staff(session):
        if (user.email.value or "").lower() == wanted:
            return str(user.id)
    fail(f"{option}: {email} is not a member of the vendor's staff")


def _run(fn: Callable[[Session, str], T]) -> T:
    """Run ``fn(session)`` in the vendor's scope; service errors are printed naming the field."""

    database, vendor_id = _vendor()
    assert isinstance(database, Database)
    try:
        with database.transaction(Scope.tenant(vendor_id)) as session:
            return fn(session, vendor_id)
    except VernError as exc:
        fail(str(exc))


def _day(text: str | None, option: str) -> date | None:

    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: give a date as YYYY-MM-DD")


@tasks_app.command("list")
def tasks_list(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue tasks")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Control tasks with owner, recurrence and due date."""

    def work(session: Session, _vendor_id: str) -> list[dict[str, Any]]:
        today = utcnow().date()
        names = service.staff_names(session)
        return [({**service.task_view(t, today), "owner": names.get(t.owner_user_id or "", "")})
                for t in service.list_tasks(session, overdue_only=overdue, today=today)]

    rows = _run(work)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        flag = "OVERDUE " if r["overdue"] else ""
        out.print(f"{r['id']}  {flag}{r['due_on'] or 'done':10}  {r['recurrence']:9}  "
                  f"{r['title']}  ({r['owner']})", highlight=False)


@tasks_app.command("complete")
def tasks_complete(
    task_id: Annotated[str, typer.Argument(help="Task id (from tasks list)")],
    *,
    by: Annotated[str, typer.Option("--by", help="E-mail address of the staff member")],
    note: Annotated[str, typer.Option(help="What was done")] = "",
    link: Annotated[str | None, typer.Option(help="A link to the evidence")] = None,
    file: Annotated[Path | None, typer.Option(help="A file as evidence")] = None,
    content_type: Annotated[str | None, typer.Option(help="The file's type (default: by suffix)")]
    = None,
) -> None:
    """Record a completion, with evidence; prints the next due date."""
    import mimetypes


    data = None
    if file is not None:
        if not file.is_file():
            fail(f"--file: {file} is not a file")
        data = file.read_bytes()[: service.MAX_EVIDENCE_BYTES + 1]
        content_type = content_type or mimetypes.guess_type(file.name)[0] or ""

    def work(session: Session, vendor_id: str) -> date | None:
        who = service.By(vendor_id, _staff_id(session, by, "--by"))
        if data is not None and file is not None:
            service.add_file(session, who, task_id, title=file.name, filename=file.name,
                             content_type=content_type or "", data=data)
        if link:
            service.add_link(session, who, task_id, title=link[:200], url=link)
        service.complete_task(session, who, task_id, note=note)
        return service.get_task(session, task_id).due_on

    nxt = _run(work)
    out.print(f"completed; next due {nxt.isoformat() if nxt else 'never (done once)'}")


@app.command("seed")
def seed(
    owner: Annotated[str, typer.Option("--owner", help="E-mail of the staff member who owns the "
                                                       "tasks")],
) -> None:
    """Load the catalogue of control tasks (risk assessment, security audit, management review,
    …); tasks loaded before are left alone."""

    def work(session: Session, vendor_id: str) -> list[tuple[str, str, date | None]]:
        owner_id = _staff_id(session, owner, "--owner")
        made = service.seed(session, service.By(vendor_id, owner_id), owner_user_id=owner_id,
                            today=utcnow().date())
        return [(t.title, t.recurrence, t.due_on) for t in made]

    made = _run(work)
    for title, rec, due in made:
        out.print(f"{title} ({rec}), due {due}", highlight=False)
    out.print(f"{len(made)} task(s) loaded")


@app.command("risks")
def risks(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """The risk register: score before and after measures, and the measures."""

    rows = _run(lambda session, _v: [service.risk_view(session, r)
                                     for r in service.list_risks(session)])
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        after = r["after"]["score"] if r["after"]["score"] is not None else "-"
        out.print(f"{r['before']['score']:>2} → {after:>2}  {r['threat']:20}  {r['asset']}  "
                  f"({len(r['measures'])} measure(s))", highlight=False)


@personnel_app.command("export")
def personnel_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout)")]
    = None,
) -> None:
    """The vendor and supplier staff with access to sensitive data, for a customer's audit."""

    if fmt not in ("csv", "json"):
        fail("--format: give csv or json")
    text, _media = _run(lambda session, vendor_id: service.export_personnel(
        session, service.By(vendor_id), fmt))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"written to {output}")


@media_app.command("log")
def media_log(
    *,
    device: Annotated[str, typer.Option(help="The device, e.g. 'Laptop Dell Latitude 5440 SSD'")],
    serial: Annotated[str, typer.Option(help="Serial number")],
    method: Annotated[str, typer.Option(help="clear, purge or destroy (NIST SP 800-88)")],
    by: Annotated[str, typer.Option("--by", help="E-mail of the staff member who did it")],
    witness: Annotated[str, typer.Option(help="E-mail of the witness (another person)")],
    on: Annotated[str | None, typer.Option(help="Date, YYYY-MM-DD (default today)")] = None,
    note: Annotated[str, typer.Option(help="A note")] = "",
) -> None:
    """Log a wiped or destroyed storage medium."""

    day = _day(on, "--on") or utcnow().date()

    def work(session: Session, vendor_id: str) -> str:
        done_by = _staff_id(session, by, "--by")
        row = service.log_media(session, service.By(vendor_id, done_by), device=device,
                                serial=serial, method=method, done_on=day, done_by=done_by,
                                witness=_staff_id(session, witness, "--witness"), note=note)
        return row.id

    out.print(f"logged {_run(work)}")


@media_app.command("list")
def media_list() -> None:
    """The media sanitisation log, newest first."""

    rows = _run(lambda session, _v: [service.media_view(m) for m in service.list_media(session)])
    for r in rows:
        out.print(f"{r['done_on']}  {r['method']:8}  {r['serial']:20}  {r['device']}",
                  highlight=False)
