"""``vern rights …``: file, follow, approve and run data subject requests; replay the erasure
ledger after a product database is restored from a backup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind, Perm, Role, permissions
from vern.core.cliutil import show_table
from vern.core.config import get_settings
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.notify import service as notify
from vern.rights import external, ledger, runtime, service
from vern.rights.models import Part, RightsRequest
from vern.rights.runtime import secret
from vern.rights.service import _published_map

app = typer.Typer(
    help="Data subject requests: access, erasure, rectification and more.", no_args_is_help=True
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
MAX_PAGE = 1000


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _database() -> Any:
    # Looked up on the module at call time, so the database can be swapped (tests use their own).
    return runtime.vern_database()


def _org_id(slug: str) -> str:


    with _database().transaction(Scope.system("cli rights org")) as session:
        found = accounts.org_id_by_slug(session, slug)
    if found is None:
        _fail(f"org: no organisation with slug {slug!r}")
    return str(found)


def _person(org_id: str, email: str, perm: Any, option: str = "--by") -> str:
    """The id of the person ``email`` names: a member of ``org_id`` whose role there holds
    ``perm`` (the CLI acts for a named person wherever four-eyes applies)."""

    with _database().transaction(Scope.system("cli person")) as session:
        user = accounts.find_user_by_email(session, get_settings(), email)
        found = [] if user is None or user.disabled_at is not None else [
            (m, o) for m, o in accounts.memberships_of(session, user.id) if o.id == org_id]
        allowed = bool(found) and perm in permissions(
            Role(found[0][0].role), org_kind=OrgKind(found[0][1].kind), home=True)
        user_id = user.id if user is not None else ""
    if not allowed:
        _fail(f"{option}: no member of this organisation with that address may do this")
    return user_id


def _urls(pairs: list[str] | None) -> dict[str, str]:
    found = {}
    for pair in pairs or []:
        name, sep, url = pair.partition("=")
        if not sep:
            _fail(f"--url: expected NAME=URL, got {pair!r}", 2)
        found[name] = url
    return found


@app.command("list")
def list_command(
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    status: Annotated[str, typer.Option(help="open, all, or one status.")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many (the next page: offset + limit).")] = 0,
) -> None:
    """List requests with their deadlines, newest first, a page at a time."""

    if not 1 <= limit <= MAX_PAGE:
        _fail(f"--limit: must be between 1 and {MAX_PAGE}", 2)
    if offset < 0:
        _fail("--offset: must be 0 or more", 2)
    org_id = _org_id(org)
    table = Table("id", "kind", "status", "received", "deadline", "due", "progress")
    with _database().transaction(Scope.tenant(org_id)) as session:
        rows = service.list_requests(
            session, status=None if status == "all" else status, limit=limit + 1, offset=offset
        )
        more = len(rows) > limit
        for req in rows[:limit]:
            due = service.due_state(req)
            style = {"overdue": "bold red", "due_soon": "yellow"}.get(due, "")
            table.add_row(
                req.id,
                req.kind,
                req.status,
                req.received_at.strftime("%Y-%m-%d"),
                req.deadline.strftime("%Y-%m-%d"),
                f"[{style}]{due}[/]" if style else due,
                f"{req.progress_done}/{req.progress_total}",
            )
    show_table(console, table)
    if more:
        console.print(f"more: --offset {offset + limit}")


@app.command("file")
def file_command(  # noqa: PLR0917 - a command's options
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    kind: Annotated[
        str,
        typer.Option(
            help="access, portability, rectification, erasure, restriction, objection or withdrawal."
        ),
    ],
    email: Annotated[str | None, typer.Option(help="The person's e-mail.")] = None,
    phone: Annotated[str | None, typer.Option(help="The person's phone number.")] = None,
    national_id: Annotated[str | None, typer.Option(help="National identity or D-number.")] = None,
    user_id: Annotated[str | None, typer.Option(help="The person's user id in the product.")] = None,
    attested: Annotated[str | None, typer.Option(help="How staff checked identity (no code sent).")] = None,
    correct: Annotated[
        list[str] | None, typer.Option(help="CATEGORY_OR_TABLE.FIELD=VALUE (rectification).")
    ] = None,
    locale: Annotated[str, typer.Option(help="nb or en.")] = "nb",
    by: Annotated[str | None, typer.Option(
        "--by", help="E-mail of the staff member filing (required with --attested).")] = None,
) -> None:
    """Register a request on behalf of a person (staff channel)."""

    org_id = _org_id(org)
    if attested and not by:
        _fail("--by: say who attests the person's identity (their e-mail)", 2)
    filer = _person(org_id, by, Perm.RIGHTS_MANAGE) if by else None
    identities = {
        k: v
        for k, v in {"email": email, "phone": phone, "national_id": national_id, "user_id": user_id}.items()
        if v
    }
    details: dict[str, Any] = {"note": attested} if attested else {}
    if correct:
        details["corrections"] = dict(c.split("=", 1) for c in correct if "=" in c)
    try:
        with _database().transaction(Scope.tenant(org_id)) as session:
            req = service.create_request(
                session,
                org_id=org_id,
                kind=kind,
                identities=identities,
                channel="staff",
                locale=locale,
                details=details,
                verified_by="attested" if attested else None,
                person_id=filer,
            )
            if not attested:
                service.send_code(session, req.id)
            request_id, status = req.id, req.status
    except VernError as exc:
        _fail(str(exc))
    notify.deliver_pending(_database())
    console.print(f"request {request_id} is {status}")


@app.command("approve")
def approve_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    by: Annotated[str, typer.Option(
        "--by", help="E-mail of the approving person: not who filed or attested the request.")],
) -> None:
    """Approve an erasure or rectification (four-eyes: a second person)."""

    with _database().transaction(Scope.system("cli rights approve")) as session:
        org_id = session.scalar(select(RightsRequest.org_id).where(RightsRequest.id == request_id))
    if org_id is None:
        _fail("request_id: no such request")
    approver = _person(str(org_id), by, Perm.RIGHTS_APPROVE)
    try:
        with _database().transaction(Scope.system("cli rights approve")) as session:
            req = service.approve(session, request_id, actor_user_id=approver)
            status = req.status
    except VernError as exc:
        _fail(str(exc))
    console.print(f"request {request_id} is {status}")


@app.command("verify")
def verify_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    code: Annotated[str, typer.Argument(help="The six-digit code the person received.")],
) -> None:
    """Enter the one-time code the person read out or forwarded (as the console's form does)."""

    try:
        with _database().transaction(Scope.system("cli rights verify")) as session:
            req = service.get_request(session, request_id)
        with _database().transaction(Scope.tenant(req.org_id)) as session:
            result = service.check_code(session, request_id, code.strip())
            status = service.get_request(session, request_id).status
    except VernError as exc:
        _fail(str(exc))
    if result is not service.CodeResult.OK:
        _fail(f"code: {service.code_error(result)}")
    console.print(f"request {request_id} is {status}")


@app.command("package")
def package_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The file to write the zip to.")],
    force: Annotated[bool, typer.Option(help="Overwrite the file if it exists.")] = False,
) -> None:
    """Download the answer of an access or portability request to a file (audited)."""
    from pathlib import Path


    target = Path(output)
    if target.exists() and not force:
        _fail(f"--output: {target} exists (use --force to overwrite)", 2)
    try:
        with _database().transaction(Scope.system("cli rights package")) as session:
            org_id = service.get_request(session, request_id).org_id
        with _database().transaction(Scope.tenant(org_id)) as session:
            body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    except VernError as exc:
        _fail(str(exc))
    try:
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(body)
        tmp.replace(target)  # a complete file or none
    except OSError as exc:
        _fail(f"--output: cannot write {target}: {exc.strerror}")
    console.print(f"wrote {len(body)} bytes to {target}")


@app.command("tasks")
def tasks_command(
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    all_: Annotated[bool, typer.Option("--all", help="Confirmed tasks too.")] = False,
) -> None:
    """Manual tasks in systems outside SQL (and HTTP steps), open ones first."""

    org_id = _org_id(org)
    table = Table("task", "request", "system", "via", "operation", "status", "owner", "note")
    with _database().transaction(Scope.tenant(org_id)) as session:
        for step in external.tenant_steps(session, open_only=not all_):
            table.add_row(step.id, step.request_id, step.system, step.via, step.operation, step.status,
                          step.owner or "", step.note or step.error or "")
    show_table(console, table)


@app.command("confirm")
def confirm_command(
    task_id: Annotated[str, typer.Argument(help="Task id (vern rights tasks).")],
    note: Annotated[str, typer.Option(help="What was done.")],
) -> None:
    """Confirm a manual task; the request goes on once all its tasks are confirmed."""

    try:
        with _database().transaction(Scope.system("cli rights confirm")) as session:
            org_id = external.task_org(session, task_id)
        with _database().transaction(Scope.tenant(org_id)) as session:
            step = external.confirm_task(session, task_id, note=note, actor_user_id=None)
            request_id = step.request_id
    except VernError as exc:
        _fail(str(exc))
    console.print(f"task {task_id} confirmed")
    _show(request_id)


@app.command("confirm-nobody-found")
def confirm_nobody_found_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    note: Annotated[str, typer.Option(help="What was checked beyond the search shown.")] = "",
) -> None:
    """Confirm that a request which matched no one is answered "no data held" (the person is told)."""

    try:
        with _database().transaction(Scope.system("cli rights confirm-nobody-found")) as session:
            req = service.confirm_nobody_found(session, request_id, actor_user_id=None, note=note)
            status = req.status
    except VernError as exc:
        _fail(str(exc))
    console.print(f"request {request_id} is {status}")


@app.command("run")
def run_command(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    url: Annotated[list[str] | None, typer.Option(help="NAME=URL to use for a database.")] = None,
    resume: Annotated[bool, typer.Option(help="Take over a request whose runner died.")] = False,
) -> None:
    """Carry out a verified (and approved) request now, with progress."""

    with _progress() as progress:
        task = progress.add_task("rows", total=None)

        def moved(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def step(name: str) -> None:
            progress.update(task, description=name.split(":", maxsplit=1)[0])

        try:
            status = service.run(
                _database(), request_id, urls=_urls(url), on_step=step, on_progress=moved, resume=resume
            )
        except VernError as exc:
            _fail(str(exc))
    notify.deliver_pending(_database())
    _show(request_id)
    if status == "nobody_found":
        console.print(
            "nobody was found: check what was searched, then answer the person with "
            f"`vern rights confirm-nobody-found {request_id}`"
        )
        return
    if status != "done":
        raise typer.Exit(1)


@app.command("show")
def show_command(request_id: Annotated[str, typer.Argument(help="Request id.")]) -> None:
    """Status of a request and of each database part."""
    _show(request_id)


def _show(request_id: str) -> None:
    from sqlalchemy import select


    with _database().transaction(Scope.system("cli rights show")) as session:
        req = session.get(RightsRequest, request_id)
        if req is None:
            _fail(f"request_id: no request {request_id}")
        console.print(
            f"[bold]{req.kind}[/] {req.id}: [bold]{req.status}[/] (deadline {req.deadline:%Y-%m-%d})"
        )
        if req.error:
            console.print(f"[red]{req.error}[/]")
        if req.summary and req.summary.get("note"):
            console.print(f"[yellow]{req.summary['note']}[/]")
        for database, tables in sorted(((req.summary or {}).get("searched") or {}).items()):
            for tname, columns in sorted(tables.items()):
                console.print(f"searched {database}.{tname}: {', '.join(columns)}")
        for database, kept in sorted(((req.summary or {}).get("kept") or {}).items()):
            for item in kept:
                console.print(f"kept {database}.{item['table']}: {item['reason']}; {item['link']}")
        table = Table("database", "status", "rows found", "rows done", "error")
        for part in session.scalars(select(Part).where(Part.request_id == request_id)):
            table.add_row(
                part.database, part.status, str(part.rows_found), str(part.rows_done), part.error or ""
            )
        show_table(console, table)


@app.command("replay")
def replay_command(
    database: Annotated[str, typer.Option("--database", help="Database name in the map (e.g. main).")],
    since: Annotated[str, typer.Option("--since", help="ISO time of the backup that was restored.")],
    url: Annotated[list[str] | None, typer.Option(help="NAME=URL to use for a database.")] = None,
) -> None:
    """Re-apply every erasure since TIME to a product database restored from a backup."""

    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        _fail(f"--since: not an ISO time: {since!r}", 2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    data_map = _published_map(_database())
    try:
        data_map.database(database)
    except KeyError:
        _fail(f"--database: {database!r} is not in the published map", 2)
    with _progress() as progress:
        task = progress.add_task("tables", total=None)

        def table_done(name: str, rows: int) -> None:
            progress.update(task, advance=1, description=f"{name}: {rows} rows")

        result = ledger.replay(
            _database(), data_map, database, moment, secret=secret(), urls=_urls(url), on_table=table_done
        )
    console.print(
        f"replayed {result.entries} ledger entries on {result.database}: {result.rows} rows erased again"
    )
    for name, rows in sorted(result.tables.items()):
        console.print(f"  {name}: {rows}")


@app.command("work")
def work_command() -> None:
    """Run every queued request once (what the worker does every 30 seconds)."""

    for request_id, status in service.run_pending(_database()):
        console.print(f"{request_id}: {status}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
