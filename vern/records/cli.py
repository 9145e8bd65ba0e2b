"""``vern records …``: the completeness check and the export of the record of processing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vern.accounts.models import Organisation
from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.records import documents

app = typer.Typer(help="Records of processing (Art. 30): check and export.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("check")
def check_command() -> None:
    """List every missing mandatory field of Art. 30(1) and 30(2); exit code 1 when any."""

    database = open_database(settings_or_exit())
    try:
        missing = documents.check(database)
    except VernError as exc:
        fail(str(exc))
    for m in missing:
        out.print(f"missing: {m.line()}", markup=False, highlight=False)
    if missing:
        fail(f"{len(missing)} mandatory fields missing")
    out.print("the record of processing is complete")


@app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="json, csv, html or pdf")] = "json",
    controller: Annotated[str, typer.Option(help="vendor, customers (JSON) or a customer's slug")] = "vendor",
    lang: Annotated[str, typer.Option(help="nb or en")] = "nb",
    output: Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")] = None,
) -> None:
    """Write the record of processing for one controller, ready for Datatilsynet."""
    import sys

    from sqlalchemy import select


    if lang not in ("nb", "en"):
        fail("lang: nb or en")
    database = open_database(settings_or_exit())
    which = controller
    if controller not in ("vendor", "customers"):
        with database.transaction(Scope.system("cli records customer")) as session:
            found = session.scalar(select(Organisation.id).where(Organisation.slug == controller))
        if found is None:
            fail("controller: no customer with that slug")
        which = found
    try:
        data = documents.export(database, controller=which, fmt=fmt, locale=lang)
    except VernError as exc:
        fail(str(exc))
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        out.print(f"wrote {output} ({len(data)} bytes)")
