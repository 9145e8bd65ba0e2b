"""``vern retention …``: the rules, a dry run, a run, periods and legal holds."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vern.core.cliutil import fail, open_database, settings_or_exit, show_table
from vern.core.db import Scope
from vern.core.errors import VernError
from vern.retention import service

app = typer.Typer(help="Retention of Vern's own data and of the product map's tables: rules, plan, run, "
                  "legal holds.",
                  no_args_is_help=True)
out = Console(soft_wrap=True)


def _database() -> Any:

    settings = settings_or_exit()
    return open_database(settings), settings


def _guard(call: Any) -> Any:

    try:
        return call()
    except VernError as exc:
        fail(str(exc))


@app.command("rules")
def rules_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Every rule: period, action, legal reason, legal minimum."""

    database, _settings = _database()
    with database.transaction(Scope.system("retention rules")) as session:
        views = [r.view() for r in service.rules(session)]
    if as_json:
        out.print_json(json.dumps(views))
        return
    table = Table("rule", "days", "from", "action", "legal minimum", "legal reason")
    for v in views:
        table.add_row(v["rule"], str(v["days"] or v["enforced_by"] or "-"), v["counted_from"] or "",
                      v["action"], str(v["legal_minimum_days"]), v["legal_reason"])
    show_table(out, table)


@app.command("plan")
def plan_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Dry run: what each rule would remove now, with counts. Nothing is changed."""

    database, _settings = _database()
    items = service.plan(database)
    if as_json:
        out.print_json(json.dumps(items))
        return
    table = Table("rule", "action", "days", "due now", "held", "per customer")
    for item in items:
        if "due" in item:
            due = str(item["due"]) if item["due"] is not None else str(item.get("error") or "-")
            tenants = ", ".join(f"{k}: {n}" for k, n in (item.get("due_by_tenant") or {}).items())
            tenants += "".join(f"; {k}: {why}" for k, why in (item.get("errors_by_tenant") or {}).items())
            table.add_row(item["rule"], item["action"], str(item["days"]), due, str(item["held"]),
                          tenants)
    show_table(out, table)


@app.command("run")
def run_command(
    batch: Annotated[int, typer.Option(help="Rows per transaction (1-100000)")] = 50_000,
) -> None:
    """Apply every rule now, in batches; a run stopped half-way is taken up again."""

    database, settings = _database()
    run = _guard(lambda: service.run(database, settings, trigger="cli", batch=batch))
    out.print(f"run {run.id}: {run.status}")
    for rule, counts in sorted((run.counts or {}).items()):
        if counts.get("done"):
            out.print(f"  {rule}: {counts['done']} {counts.get('action', 'delete')}d")
        if counts.get("error"):
            out.print(f"  {rule}: not applied: {counts['error']}")
        for customer, why in (counts.get("errors_by_tenant") or {}).items():
            out.print(f"  {rule}: not applied for customer {customer}: {why}")


@app.command("runs")
def runs_command() -> None:
    """The latest runs (evidence), with counts per rule."""

    database, _settings = _database()
    with database.transaction(Scope.system("retention runs")) as session:
        views = [service.run_view(r) for r in service.list_runs(session)]
    out.print_json(json.dumps(views))


@app.command("set-period")
def set_period_command(
    rule: Annotated[str, typer.Argument(help="The rule's key (see `vern retention rules`)")],
    days: Annotated[int, typer.Option(help="Days kept")],
    reason: Annotated[str, typer.Option(help="Why this period")],
) -> None:
    """Set a rule's period; shorter than its legal minimum is refused with the reason."""

    database, _settings = _database()

    def call() -> Any:
        with database.transaction(Scope.system("retention period")) as session:
            return service.set_period(session, rule_key=rule, days=days, reason=reason,
                                      actor_user_id=None).view()

    view = _guard(call)
    out.print(f"{view['rule']}: {view['days']} days")


@app.command("hold")
def hold_command(
    rule: Annotated[str, typer.Argument(help="The rule's key, or * for every rule")],
    reason: Annotated[str, typer.Option(help="The legal reason")],
    record: Annotated[str | None, typer.Option(help="A record's id")] = None,
    user: Annotated[str | None, typer.Option(help="A Vern account's id")] = None,
    email: Annotated[str | None, typer.Option(help="A person's e-mail address")] = None,
) -> None:
    """Place a legal hold: the rule leaves that record, account or person alone."""

    database, _settings = _database()

    def call() -> Any:
        with database.transaction(Scope.system("retention hold")) as session:
            return service.create_hold(session, rule_key=rule, reason=reason, record_id=record,
                                       user_id=user, identities={"email": email} if email else None,
                                       actor_user_id=None).id

    out.print(f"hold {_guard(call)}")


@app.command("release")
def release_command(hold: Annotated[str, typer.Argument(help="The hold's id")]) -> None:
    """Release a legal hold."""

    database, _settings = _database()

    def call() -> Any:
        with database.transaction(Scope.system("retention hold")) as session:
            return service.release_hold(session, hold, actor_user_id=None).id

    out.print(f"released {_guard(call)}")
