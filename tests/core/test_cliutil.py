"""Tables the CLI prints keep every id whole when the output goes to a pipe or a file, however
narrow the console thinks it is; on a terminal Rich fits them to the window."""

from __future__ import annotations

import io
import uuid

from rich.console import Console
from rich.table import Table

from vern.core.cliutil import show_table


def _table(ids: list[str]) -> Table:
    table = Table("task", "request", "system", "owner")
    for i, ident in enumerate(ids):
        table.add_row(ident, str(uuid.uuid4()), "brukerstøtte", f"kari.nordmann.{i}@fjellheim.example.com")
    return table


def test_a_piped_table_keeps_every_id_whole_at_any_width() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for width in (40, 80):
        out = io.StringIO()
        show_table(Console(file=out, width=width), _table(ids))
        text = out.getvalue()
        assert all(ident in text for ident in ids), text
        assert "…" not in text
        assert "kari.nordmann.2@fjellheim.example.com" in text


def test_on_a_terminal_the_table_is_fitted_to_the_window() -> None:
    ids = [str(uuid.uuid4())]
    out = io.StringIO()
    show_table(Console(file=out, width=40, force_terminal=True, color_system=None), _table(ids))
    lines = out.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= 40
    assert ids[0] not in out.getvalue()  # cut to fit, as Rich does on a screen
