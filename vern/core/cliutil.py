"""What every command of the CLI shares: failing with a message that names the setting or the
argument, the process's settings, and the database with its key ring. The application wiring
(``vern.app.cli``) adds what opening the database brings along (the mail transport)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from vern.core.config import ConfigError, Settings, get_settings
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database

err = Console(stderr=True, soft_wrap=True)
_on_open: list[Callable[[Settings], None]] = []
_opened: list[Database] = []


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def show_table(console: Console, table: Table) -> None:
    """Print ``table`` on ``console``. On a terminal Rich fits it to the window; into a pipe, a file
    or a script it is printed whole, so that no id or address is cut to an ellipsis there."""
    if console.is_terminal:
        console.print(table)
        return
    whole = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(file=console.file, width=max(console.width, whole), highlight=False).print(table)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        fail(str(exc), 2)


def when_database_opens(step: Callable[[Settings], None]) -> None:
    """Run ``step(settings)`` each time a command opens the database (once per step)."""
    if step not in _on_open:
        _on_open.append(step)


def open_database(settings: Settings) -> Database:
    try:
        database = Database(settings.database_url)
        install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    except ConfigError as exc:
        fail(str(exc), 2)
    for step in _on_open:
        step(settings)
    _opened.append(database)
    return database


def command_database() -> Database:
    """The database this command opened first, opening it from the settings if none is open."""
    return _opened[0] if _opened else open_database(settings_or_exit())


def close_databases() -> None:
    """Close every database the command opened; the application calls this as a command ends."""
    while _opened:
        _opened.pop().dispose()
