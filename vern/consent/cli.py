"""``vern consent …``: ask what the product may do for a subject, and show the proof."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from vern.accounts import service as accounts
from vern.consent import service
from vern.core.cliutil import fail, open_database, settings_or_exit
from vern.core.db import Scope
from vern.core.errors import InvalidInput

app = typer.Typer(help="Consent records: decisions and history.", no_args_is_help=True)
out = Console(soft_wrap=True)


def _org_id(session: object, slug: str) -> str:
    from sqlalchemy.orm import Session


    assert isinstance(session, Session)
    found = accounts.org_id_by_slug(session, slug)
    if found is None:
        fail("org: no organisation with that slug")
    return found


@app.command("check")
def check_command(
    org: Annotated[str, typer.Argument(help="Organisation slug")],
    subject: Annotated[str, typer.Argument(help="Subject id")],
) -> None:
    """Print, per purpose, whether the product may use it for the subject."""

    database = open_database(settings_or_exit())
    with database.transaction(Scope.system("cli consent org")) as session:
        org_id = _org_id(session, org)
    try:
        service.check_subject(subject)
    except InvalidInput as exc:
        fail(str(exc))
    with database.transaction(Scope.tenant(org_id)) as session:
        for key, d in service.decisions(session, subject).items():
            out.print(f"{key:24} {'allowed' if d['allowed'] else 'not allowed':12} "
                      f"basis {d['legal_basis']}  {d['choice'] or '-'}  {d['recorded_at'] or ''}")
        for r in service.history(session, subject):
            out.print(f"  {r.recorded_at.isoformat(timespec='seconds')} {r.purpose_key} {r.choice} "
                      f"{r.method} notice {r.notice_version or '-'} ip {r.ip_truncated or '-'}")
