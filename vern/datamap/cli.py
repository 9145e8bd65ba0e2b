"""``vern datamap …``: scan a product database, check and publish the product map, check Vern's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vern.core.cliutil import open_database, settings_or_exit
from vern.core.db import Scope
from vern.datamap.check import check_map
from vern.datamap.connect import NoConnection, engine_for
from vern.datamap.loader import MapError, load_map_file
from vern.datamap.model import DataMap
from vern.datamap.own import load_own_map, problems, schema_tables
from vern.datamap.scan import draft_yaml, scan
from vern.datamap.service import current_map, publish_map

app = typer.Typer(help="The data map: where personal data lives, in the product and in Vern.")
console = Console(stderr=True, soft_wrap=True)


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            console.print(f"[red]--url: expected NAME=URL, got {pair!r}[/red]")
            raise typer.Exit(2)
        found[name] = url
    return found


@app.command("scan")
def scan_command(
    url: Annotated[str, typer.Argument(help="Database URL (sqlite:///…, postgresql://…, mysql://…)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the draft here")] = None,
    sample: Annotated[int, typer.Option(help="Values sampled per table")] = 200,
    system: Annotated[str, typer.Option(help="Name of the system in the draft")] = "product",
) -> None:
    """Reflect a live database and write a draft map with proposed categories."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = engine_for(url)
        draft = scan(engine, sample=sample, system=system)
    except (NoConnection, SQLAlchemyError) as exc:
        console.print(f"[red]URL: cannot scan: {exc}[/red]")
        raise typer.Exit(1) from exc
    source = engine.url.render_as_string(hide_password=True)
    text = draft_yaml(draft, source)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        tables = len(next(iter(draft["systems"].values()))["databases"]["main"]["tables"])
        console.print(f"wrote a draft of {tables} tables to {out}")


def _load(path: Path | None) -> DataMap:
    if path is not None:
        return load_map_file(path)

    with open_database(settings_or_exit()).transaction(Scope.system("read product map")) as session:
        found = current_map(session)
    if found is None:
        console.print("[red]FILE: no map given and none published (vern datamap publish FILE)[/red]")
        raise typer.Exit(2)
    return found


@app.command("check")
def check_command(
    path: Annotated[Path | None, typer.Argument(help="Map file (default: the published map)")] = None,
    url: Annotated[list[str] | None, typer.Option(help="NAME=URL to use for a database")] = None,
) -> None:
    """Compare the map with the live schema; exit 1 on any problem (for CI)."""
    try:
        data_map = _load(path)
    except MapError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    findings = check_map(data_map, _overrides(url))
    for finding in findings:
        console.print(f"[red]✗[/red] {finding}")
    if findings:
        console.print(f"{len(findings)} problem(s)")
        raise typer.Exit(1)
    tables = sum(len(db.tables) for db in data_map.databases())
    console.print(
        f"[green]✓[/green] the map matches {len(data_map.databases())} database(s), {tables} tables"
    )


@app.command("publish")
def publish_command(path: Annotated[Path, typer.Argument(help="Map file to put in use")]) -> None:
    """Validate a map and store it as the version in use for data subject requests."""

    try:
        text = path.read_text(encoding="utf-8")
        with open_database(settings_or_exit()).transaction(Scope.system("publish product map")) as session:
            row = publish_map(session, text, source=str(path))
            version = row.version
    except OSError as exc:
        console.print(f"[red]FILE: cannot read {path}: {exc.strerror}[/red]")
        raise typer.Exit(2) from exc
    except MapError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"published {path} as version {version}")


@app.command("own")
def own_command(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if Vern's schema is not fully mapped")
    ] = False,
) -> None:
    """Vern's own data map (every table and column of Vern's database)."""

    found = problems(schema_tables())
    for line in found:
        console.print(f"[red]✗[/red] {line}")
    if not found:
        own = load_own_map()
        console.print(f"[green]✓[/green] {len(own)} tables mapped")
    if check and found:
        raise typer.Exit(1)
