"""``vern stats …``: expire raw data, print a report."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.config import stats_settings
from vern.core.db import Scope, utcnow
from vern.stats import report
from vern.stats.ingest import ingestor_for, purge
from vern.stats.models import StatsSite

app = typer.Typer(help="Privacy-friendly statistics: retention and reports.", no_args_is_help=True)
out = Console(soft_wrap=True)


@app.command("purge")
def purge_command() -> None:
    """Delete raw events and visits older than VERN_STATS_RAW_DAYS and salts older than 48 h."""

    database = open_database(settings_or_exit())
    result = purge(database, ingestor_for(database).salts, stats_settings())
    out.print(f"deleted {result['events']} events, {result['visits']} visits, {result['salts']} salts")


@app.command("report")
def report_command(
    site: Annotated[str, typer.Argument(help="Site id (from the console or the API)")],
    days: Annotated[int, typer.Option(help="Days back from today")] = 30,
    interval: Annotated[str, typer.Option(help="day, week or month")] = "day",
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
) -> None:
    """Print a site's report from the roll-ups."""

    if interval not in ("day", "week", "month"):
        fail("--interval: give day, week or month")
    if not 1 <= days <= report.MAX_DAYS:
        fail(f"--days: give 1-{report.MAX_DAYS}")
    database = open_database(settings_or_exit())
    with database.transaction(Scope.system("cli stats report")) as session:
        found = session.get(StatsSite, site)
        if found is None:
            fail("site: no such site")
        end = utcnow().date()
        rep = report.build(session, found.id, end - timedelta(days=days - 1), end,
                           interval)  # type: ignore[arg-type]
    if csv:
        typer.echo(report.to_csv(rep), nl=False)
        return
    t = rep.totals
    out.print(f"{found.name} ({found.domain}) {rep.start} – {rep.end}")
    out.print(f"page views {t.pageviews}  visitors {t.visitors}  visits {t.visits}  "
              f"bounce {t.bounce_rate:.0%}  average visit {t.avg_duration_s:.0f} s")
    for dim, rows in rep.top.items():
        out.print(f"[bold]{dim}[/]: " + ", ".join(f"{v} ({n})" for v, n in rows[:5]))
