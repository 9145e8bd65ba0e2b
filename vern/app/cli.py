"""The ``vern`` command. Each domain adds its own group from ``vern/<domain>/cli.py``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from vern.accounts import flows, service
from vern.accounts.models import Organisation as Org
from vern.accounts.pages import add_person
from vern.accounts.roles import OrgKind, Perm, Role, permissions
from vern.accounts.service import Actor
from vern.app import demo as demo_data
from vern.app.migrate import current_heads, expected_heads, upgrade
from vern.core.cliutil import (
    close_databases,
    err,
    fail,
    open_database,
    settings_or_exit,
    show_table,
    when_database_opens,
)
from vern.core.config import ROOT, Settings, forget_settings
from vern.core.db import Scope
from vern.core.discover import domain_modules
from vern.core.errors import VernError
from vern.core.worker import discover_jobs, run_due, run_forever
from vern.datamap.own import problems, schema_tables
from vern.notify import service as notify
from vern.notify import service as notify_service
from vern.notify import sink as mail_sink
from vern.notify.service import mailer_for
from vern.notify.transport import SmtpMailer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from vern.accounts.models import Organisation

app = typer.Typer(help="Vern: privacy and security backbone for SaaS vendors.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tenant_app = typer.Typer(help="Manage customer organisations (tenants).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(tenant_app, name="tenant")
console = Console(soft_wrap=True)


# Opening the database for a command also installs the mail transport `vern serve` and
# `vern worker` use.
when_database_opens(notify_service.configure)


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # The databases a command opened are closed when it ends, whatever its outcome.
    ctx.call_on_close(close_databases)


@app.command()
def init() -> None:
    """Create or upgrade the database to the newest schema."""

    settings = settings_or_exit()
    try:
        upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - shown to the operator, with its type
        fail(f"VERN_DATABASE_URL: cannot upgrade the database ({type(exc).__name__}: {exc})")
    console.print("[green]database is at the newest schema[/]")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (VERN_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (VERN_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the console, API, portal and scripts."""
    import uvicorn

    settings = settings_or_exit()
    host = host or settings.host
    port = port or settings.port
    uvicorn.run("vern.app.web:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=False, server_header=False, access_log=False)


@app.command()
def check() -> None:
    """Validate configuration, database, migrations and Vern's own data map."""
    from sqlalchemy import text


    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported to the operator
        fail(f"VERN_DATABASE_URL: database not reachable ({type(exc).__name__})")
    if current_heads(settings.database_url) != expected_heads(settings.database_url):
        fail("database: schema is not at the newest migration; run `vern init`")
    found = problems(schema_tables())
    if found:
        fail("data map: " + "; ".join(found))
    mail = _check_mail(settings)
    console.print(f"[green]ok[/] environment={settings.env} database={database.engine.dialect.name} "
                  f"mail={mail}")


def _check_mail(settings: Settings) -> str:
    """Connect to the mail server (and sign in) as delivery would; say what mail does."""
    import smtplib


    chosen = mailer_for(settings)
    if not isinstance(chosen, SmtpMailer):
        err.print("[yellow]warning:[/] VERN_SMTP_URL is not set: mail stays in the outbox, unsent "
                  "(production refuses to start without it)")
        return "none (mail waits in the outbox)"
    try:
        chosen.check()
    except (OSError, smtplib.SMTPException) as exc:
        fail(f"VERN_SMTP_URL: cannot reach the mail server {chosen.target.describe()} "
             f"({type(exc).__name__}: {exc})")
    return f"{chosen.target.describe()} from {chosen.sender}"


_BY_HELP = ("E-mail of the administrator of the organisation who adds the person. Required "
            "for a privileged role once the organisation has a privileged member: the role "
            "then waits for a second administrator (vern access approve-request).")
_NEED_HELP = "Why the person needs the privileged role (with --by)."


def _adder(session: Session, settings: Settings, email: str, org: Organisation) -> Actor:
    """The administrator ``--by`` names, acting in ``org`` with their role there."""

    user = service.find_user_by_email(session, settings, email)
    membership = next((m for m, o in service.memberships_of(session, user.id) if o.id == org.id),
                      None) if user is not None and user.disabled_at is None else None
    if user is None or membership is None:
        fail("--by: no active member of the organisation with that address")
    role, kind = Role(membership.role), OrgKind(org.kind)
    actor = Actor(org_id=org.id, org_kind=kind, role=role,
                  perms=permissions(role, org_kind=kind, home=True), user_id=user.id,
                  person_id=user.id)
    if not actor.can(Perm.USERS_MANAGE):
        fail("--by: that person may not add people to the organisation")
    return actor


def _add_user(
    settings: Settings, *, email: str, name: str, org: str, role: str, password: str | None,
    by: str | None, need: str, lang: str | None, label: str,
) -> None:
    """Add a person as the commands do: with ``--by``, as that administrator (a privileged role
    waits for a second one); without, as the operator setting up an organisation, which may
    give a privileged role only to its very first privileged member."""

    database = open_database(settings)
    try:
        with database.transaction(Scope.system(f"cli user {label}")) as session:
            organisation = _org_by_slug(session, org)
            if by is None:
                if service.role_waits(session, org_id=organisation.id, role=role):
                    fail(f"--by: {organisation.slug} already has a privileged member, so "
                         f"{role} needs a second person's approval; add the person with --by "
                         f"ADMIN_EMAIL --need TEXT and have another administrator approve it")
                if password is None:
                    user = flows.invite_user(session, settings, email=email, name=name,
                                             org_id=organisation.id, role=role, actor=None,
                                             locale=lang)
                else:
                    user = service.create_user(session, settings, email=email, name=name,
                                               org_id=organisation.id, role=role,
                                               password=password, actor=None)
                pending = None
            else:
                actor = _adder(session, settings, by, organisation)
                user, _membership, pending = add_person(
                    session, settings, actor=actor, email=email, name=name, role=role,
                    password=password, need=need, locale=lang, on_adding=False)
            done = "invited" if password is None else "created"
            if pending is not None:
                console.print(f"{done} user {user.id} in {organisation.slug}; the role {role} "
                              f"waits for a second administrator: request {pending}")
            elif password is None:
                console.print(f"{done} user {user.id} to {organisation.slug} as {role}; the "
                              f"link is valid for {settings.invitation_valid_hours} hours")
            else:
                console.print(f"{done} user {user.id} in {organisation.slug} as {role}")
    except VernError as exc:
        fail(str(exc))
    notify.deliver_pending(database)


@user_app.command("create")
def user_create(  # noqa: PLR0917 - the command's options
    email: Annotated[str, typer.Option(help="E-mail address (the sign-in name).")],
    name: Annotated[str, typer.Option(help="Full name.")],
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    role: Annotated[str, typer.Option(help="Role in the organisation.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")]
    = False,
    by: Annotated[str | None, typer.Option(help=_BY_HELP)] = None,
    need: Annotated[str, typer.Option(help=_NEED_HELP)] = "",
) -> None:
    """Create a user with a role in one organisation (asks for the password)."""

    settings = settings_or_exit()
    password = (sys.stdin.readline().rstrip("\n") if password_stdin
                else getpass.getpass(f"Password (at least {settings.password_min_length} characters): "))
    _add_user(settings, email=email, name=name, org=org, role=role, password=password, by=by,
              need=need, lang=None, label="create")


@user_app.command("invite")
def user_invite(  # noqa: PLR0917 - the command's options
    email: Annotated[str, typer.Option(help="E-mail address (the sign-in name).")],
    name: Annotated[str, typer.Option(help="Full name.")],
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    role: Annotated[str, typer.Option(help="Role in the organisation.")],
    lang: Annotated[str, typer.Option(help="Language of the mail: nb or en.")] = "nb",
    by: Annotated[str | None, typer.Option(help=_BY_HELP)] = None,
    need: Annotated[str, typer.Option(help=_NEED_HELP)] = "",
) -> None:
    """Create a user without a password and mail them a single-use link to choose one."""

    settings = settings_or_exit()
    if lang not in ("nb", "en"):
        fail("lang: use nb or en")
    _add_user(settings, email=email, name=name, org=org, role=role, password=None, by=by,
              need=need, lang=lang, label="invite")


@user_app.command("list")
def user_list(org: Annotated[str, typer.Option(help="Organisation slug.")]) -> None:
    """List the users of one organisation."""

    settings = settings_or_exit()
    database = open_database(settings)
    with database.transaction(Scope.system("cli user list")) as session:
        organisation = _org_by_slug(session, org)
    with database.transaction(Scope.tenant(organisation.id)) as session:
        table = Table("id", "name", "e-mail", "role", "MFA", "disabled")
        for user, membership in service.list_members(session):
            table.add_row(user.id, str(user.name), str(user.email), membership.role,
                          "yes" if user.mfa_enabled_at else "no",
                          "yes" if user.disabled_at else "")
    show_table(console, table)


@user_app.command("disable")
def user_disable(
    email: Annotated[str, typer.Option(help="E-mail address of the user.")],
    org: Annotated[str, typer.Option(help="Organisation slug.")],
) -> None:
    """Disable a user: every session ends and sign-in is refused."""

    settings = settings_or_exit()
    database = open_database(settings)
    with database.transaction(Scope.system("cli user disable")) as session:
        organisation = _org_by_slug(session, org)
        user = service.find_user_by_email(session, settings, email)
    if user is None:
        fail(f"email: no user with the address {email!r}")
    try:
        with database.transaction(Scope.tenant(organisation.id)) as session:
            service.disable_user(session, user_id=user.id, actor=None)
    except VernError as exc:
        fail(str(exc))
    console.print(f"disabled {email}")


@user_app.command("erase")
def user_erase(
    email: Annotated[str, typer.Option(help="E-mail address of the user.")],
    org: Annotated[str, typer.Option(help="Organisation slug.")],
) -> None:
    """Erase a user's account: its data key is destroyed, sessions and memberships deleted."""

    settings = settings_or_exit()
    database = open_database(settings)
    with database.transaction(Scope.system("cli user erase")) as session:
        organisation = _org_by_slug(session, org)
        user = service.find_user_by_email(session, settings, email)
    if user is None:
        fail(f"email: no user with the address {email!r}")
    try:
        with database.transaction(Scope.tenant(organisation.id)) as session:
            service.erase_user(session, user_id=user.id, actor=None)
    except VernError as exc:
        fail(str(exc))
    console.print("erased the account")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="Name of the customer organisation.")],
    slug: Annotated[str, typer.Option(help="Short name used in addresses (a-z, 0-9, -).")],
    org_number: Annotated[str | None, typer.Option(
        help="Organisation number (9 digits, the last a mod-11 check digit).")]
    = None,
) -> None:
    """Create a customer organisation (tenant)."""

    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with database.transaction(Scope.system("cli tenant create")) as session:
            org = service.create_organisation(session, name=name, slug=slug,
                                              kind=OrgKind.TENANT, actor=None,
                                              org_number=org_number)
            console.print(f"created tenant {org.slug} ({org.id})")
    except VernError as exc:
        fail(str(exc))


@tenant_app.command("list")
def tenant_list() -> None:
    """List customer organisations."""

    settings = settings_or_exit()
    database = open_database(settings)
    table = Table("slug", "name", "org. number", "id")
    with database.transaction(Scope.system("cli tenant list")) as session:
        for org in service.list_tenants(session):
            table.add_row(org.slug, org.name, org.org_number or "", org.id)
    show_table(console, table)


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve afterwards.")]
    = True,
    port: Annotated[int | None, typer.Option(help="Port to serve on (VERN_PORT, 8000).")] = None,
) -> None:
    """Create the database, load the demo vendor and customers, and serve the console.

    Writes the demo's settings to <VERN_DATA_DIR>/demo.env, which every later `vern` command
    reads when VERN_ENV is not set; serving also starts the demo's mail server on loopback."""

    os.environ.setdefault("VERN_ENV", "demo")
    if port is not None:
        os.environ["VERN_PORT"] = str(port)
    forget_settings()
    settings = settings_or_exit()
    if settings.is_production:
        fail("VERN_ENV: the demo needs VERN_ENV=demo (it uses known passwords)")
    made_before = demo_data.made_with_earlier_keys(settings)
    if made_before is not None:
        fail(f"{made_before} was made with the earlier built-in development keys, which Vern no "
             f"longer has; delete {settings.data_dir} (`make clean`) and run the demo again")
    upgrade(settings.database_url)
    database = open_database(settings)
    info = demo_data.load(database, settings)
    written = demo_data.write_settings(settings)
    demo_data.print_sign_in(console, info, settings, written)
    if not serve_after:
        return
    sink = None
    if settings.smtp_url == demo_data.sink_url(settings):
        try:
            sink = mail_sink.MailSink(port=demo_data.sink_port(settings)).start()
        except (OSError, RuntimeError) as exc:
            fail(f"VERN_PORT: the demo's mail server cannot listen on 127.0.0.1:"
                 f"{demo_data.sink_port(settings)} ({exc}); choose another VERN_PORT")
        mail_sink.install(sink)
    try:
        serve(host=settings.host, port=settings.port, workers=1)
    finally:
        if sink is not None:
            mail_sink.install(None)
            sink.stop()


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Run the due jobs once and exit.")] = False,
    tick: Annotated[float, typer.Option(help="Seconds between rounds.")] = 5.0,
) -> None:
    """Run scheduled work (deadlines, retention, roll-ups, mail) until stopped."""

    settings = settings_or_exit()
    database = open_database(settings)
    if once:
        ran = run_due(database, settings)
        console.print(f"ran {len(ran)} of {len(discover_jobs())} jobs: {', '.join(ran) or '-'}")
        return
    run_forever(database, settings, tick=tick)


@app.command("demo-code")
def demo_code(email: Annotated[str, typer.Argument(help="E-mail of a demo user.")]) -> None:
    """Print the current MFA code of a demo user (demo mode only)."""

    settings = settings_or_exit()
    if settings.is_production:
        fail("VERN_ENV: only in demo mode (run `vern demo` first, or set VERN_ENV=demo)")
    code = demo_data.current_code(settings, email)
    if code is None:
        fail(f"email: {email!r} is not a demo user")
    console.print(code)


def _org_by_slug(session: Session, slug: str) -> Organisation:
    from sqlalchemy import select


    org = session.scalar(select(Org).where(Org.slug == slug))
    if org is None:
        fail(f"org: no organisation with slug {slug!r}")
    return org


def _mount_domains() -> None:
    for module in domain_modules("cli"):
        sub = getattr(module, "app", None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=module.__name__.split(".")[1])


_mount_domains()


def load_demo_settings() -> Path | None:
    """When VERN_ENV is not set and ``vern demo`` left its settings file, use it (variables
    already set win). Returns the file used."""
    if os.environ.get("VERN_ENV"):
        return None
    path = Path(os.environ.get("VERN_DATA_DIR") or ROOT / "var") / "demo.env"
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.startswith("VERN_"):
            os.environ.setdefault(name, value)
    forget_settings()
    return path


def main() -> None:
    found = load_demo_settings()
    if found is not None:
        err.print(f"[dim]VERN_ENV is not set: using the demo's settings from {found}[/]")
    app()


if __name__ == "__main__":
    main()
