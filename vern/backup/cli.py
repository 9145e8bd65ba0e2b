"""``vern backup …``: take, list, verify (restore drill) and restore backups of Vern's database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vern.backup import pgbackrest, service
from vern.core.cliutil import fail, open_database, settings_or_exit, show_table
from vern.core.config import backup_settings
from vern.core.errors import Conflict

app = typer.Typer(help="Backups of Vern's own database: run, list, verify, restore.",
                  no_args_is_help=True)
out = Console(soft_wrap=True)


def _open() -> Any:

    settings = settings_or_exit()
    return open_database(settings), settings


@app.command("configure")
def configure_command() -> None:
    """PostgreSQL: write pgbackrest.conf and print the archive settings for postgresql.conf."""

    _database, settings = _open()
    bs = backup_settings()
    try:
        path = pgbackrest.write_config(bs, settings)
    except (pgbackrest.BackupError, OSError) as exc:
        fail(str(exc))
    out.print(f"wrote {path}")
    try:
        pgbackrest.run(bs, settings, "stanza-create")
        out.print(f"stanza {bs.stanza} ready in both repositories")
    except pgbackrest.BackupError as exc:
        out.print(f"stanza not created yet (is PostgreSQL running?): {exc}", markup=False)
    out.print("put these in postgresql.conf and restart PostgreSQL, then run `vern backup run`:")
    out.print("  archive_mode = on\n  wal_level = replica")
    out.print(f"  archive_command = '{pgbackrest.archive_command(bs, settings)}'", markup=False)


@app.command("run")
def run_command(
    full: Annotated[bool, typer.Option(
        "--full", help="PostgreSQL: a full backup, not a differential one")] = False,
) -> None:
    """Back up Vern's database to both repositories, then its data keys; apply retention."""

    database, settings = _open()
    try:
        run = service.run_backup(database, settings, full=True if full else None)
    except service.BackupError as exc:
        fail(f"backup failed (recorded): {exc}")
    out.print(f"backup {run.label}: {run.engine}, {run.size_bytes / 1048576:.1f} MiB, "
              f"{run.copies} copies, recovery point {run.recovery_point:%Y-%m-%d %H:%M:%S} UTC")


@app.command("list")
def list_command() -> None:
    """The backups that can be restored, newest first, and the recovery window."""

    database, settings = _open()
    try:
        found = service.backups(database, settings)
    except service.BackupError as exc:
        fail(str(exc))
    table = Table("label", "type", "recovery point (UTC)", "MiB", "copies")
    for b in found:
        table.add_row(b.label, b.type, f"{b.recovery_point:%Y-%m-%d %H:%M:%S}",
                      f"{b.size_bytes / 1048576:.1f}", ", ".join(b.copies))
    show_table(out, table)
    state = service.status(database)
    if state["window_start"] is not None:
        out.print(f"recovery window: {state['window_start']:%Y-%m-%d %H:%M} – "
                  f"{state['window_end']:%Y-%m-%d %H:%M} UTC")
    if state["last_verified"] is not None:
        out.print(f"last verified restore: {state['last_verified'].at:%Y-%m-%d %H:%M} UTC "
                  f"({state['last_verified'].label})")


def _replay_options(replay: list[str] | None, replay_since: str | None,
                    url: list[str] | None) -> tuple[datetime | None, dict[str, str]]:
    since = None
    if replay_since is not None:
        if not replay:
            fail("--replay-since: name the product database with --replay", 2)
        try:
            since = datetime.fromisoformat(replay_since)
        except ValueError:
            fail(f"--replay-since: not an ISO time: {replay_since!r}", 2)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    urls: dict[str, str] = {}
    for pair in url or []:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            fail(f"--url: expected NAME=URL, got {pair!r}", 2)
        urls[name] = value
    return since, urls


@app.command("verify")
def verify_command(
    label: Annotated[str | None, typer.Option(help="The backup to check (default: the newest)")] = None,
    replay: Annotated[list[str] | None, typer.Option(
        "--replay", help="A product system or database (NAME in the map) restored from a backup of its own: "
                         "the drill runs `vern rights replay` on it and records the result; "
                         "repeat for several")] = None,
    replay_since: Annotated[str | None, typer.Option(
        "--replay-since", help="ISO time of the product database's backup that was restored "
                               "(default: the recovery point of Vern's backup verified)")] = None,
    url: Annotated[list[str] | None, typer.Option(
        "--url", help="NAME=URL of a product database to replay into (default: the map's)")] = None,
) -> None:
    """Restore drill: restore into a scratch database, check the audit trail and the rows per
    table, replay erasures into restored product databases (--replay), record the result as
    evidence."""

    since, urls = _replay_options(replay, replay_since, url)
    database, settings = _open()
    result = service.verify(database, settings, label=label, replay=replay or None,
                            replay_since=since, replay_urls=urls or None)
    out.print(f"restore drill of {result.label or '-'}: {'passed' if result.ok else 'FAILED'} "
              f"in {result.seconds:.1f} s; audit trail {'verified' if result.audit_ok else 'NOT verified'}")
    for name, n in sorted(result.counts.items()):
        out.print(f"  {name}: {n['restored']} rows (at backup: {n['backup']})")
    if result.keys:
        out.print(f"  data keys: {result.keys['destroyed']} destroyed again, "
                  f"{result.keys['added']} added, {result.keys['kept']} kept")
    for r in result.replays:
        if r["ok"]:
            out.print(f"  replay of {r['database']} since {r['since']}: {r['entries']} ledger "
                      f"entries, {r['rows']} rows erased again", markup=False)
        else:
            out.print(f"  {r['problem']}", markup=False)
    if not result.replays:
        out.print(result.hint, markup=False)
    if not result.ok:
        fail(f"the drill failed (recorded): {result.problem}")


@app.command("restore")
def restore_command(
    label: Annotated[str | None, typer.Option(help="The backup to restore (default: the newest)")] = None,
    at: Annotated[str | None, typer.Option(help="Point in time (ISO, UTC when no offset is given)")] = None,
    target: Annotated[Path | None, typer.Option(
        help="SQLite: the file to write; PostgreSQL: the data directory (default: the live one)")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite the live database (stop Vern first)")] = False,
) -> None:
    """Restore a backup; the data keys are brought to their newest state (no erased person comes back)."""

    moment = None
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at: not an ISO time: {at!r}", 2)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    database, settings = _open()
    try:
        done = service.restore(database, settings, label=label, at=moment, target=target, force=force)
    except Conflict as exc:
        fail(f"--force: {exc.detail}", 2)
    except service.BackupError as exc:
        fail(str(exc))
    out.print(f"restored {done.label} into {done.target}; data keys from {done.key_source}: "
              f"{done.keys.get('destroyed', 0)} destroyed again, {done.keys.get('added', 0)} added")
    out.print(service.REPLAY_HINT, markup=False)
