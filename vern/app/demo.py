"""Demo data: the vendor "Solstrand Læring AS", two customers and their people (all fictional).

Loading is idempotent. Demo users have known passwords and MFA secrets derived from the
installation's secret key (made at random into the data directory on first use), so that
``vern demo-code EMAIL`` can print the current code. ``write_settings`` leaves the demo's settings
in ``<VERN_DATA_DIR>/demo.env`` for the CLI to find. Each domain may add its own
demo data in ``vern/<domain>/demo.py`` with ``load_demo(database, orgs)``, where ``orgs`` maps
the slugs ``solstrand``, ``fjellheim`` and ``havbris`` to organisation ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from vern.accounts import security, service
from vern.accounts.models import Organisation, User
from vern.accounts.roles import OrgKind
from vern.core.config import DEV_KEYS_FILE, Settings, demo_sink_port
from vern.core.crypto import PII
from vern.core.db import Database, Scope, utcnow
from vern.core.discover import domain_modules

DEMO_PASSWORD = "Nordlys over Lofoten 2026"  # noqa: S105 - demo only, printed for the user

ORGS = [
    ("solstrand", "Solstrand Læring AS", OrgKind.VENDOR, "912345688"),
    ("fjellheim", "Fjellheim barnehage", OrgKind.TENANT, "923456783"),
    ("havbris", "Havbris skole", OrgKind.TENANT, "934567897"),
]

PEOPLE = [
    ("solveig.berg@solstrand.example.com", "Solveig Berg", "solstrand", "owner"),
    ("dag.eriksen@solstrand.example.com", "Dag Eriksen", "solstrand", "security_officer"),
    ("eli.haugen@solstrand.example.com", "Eli Haugen", "solstrand", "privacy_officer"),
    ("stian.dahl@solstrand.example.com", "Stian Dahl", "solstrand", "support"),
    ("anne.lunde@fjellheim.example.com", "Anne Lunde", "fjellheim", "tenant_admin"),
    ("bjorn.moe@fjellheim.example.com", "Bjørn Moe", "fjellheim", "member"),
    ("camilla.strand@havbris.example.com", "Camilla Strand", "havbris", "tenant_admin"),
    ("henrik.vik@havbris.example.com", "Henrik Vik", "havbris", "member"),
]


@dataclass(frozen=True)
class DemoInfo:
    orgs: dict[str, str]
    users: list[tuple[str, str, str, str]]


def demo_totp_secret(settings: Settings, email: str) -> str:
    digest = hmac.new(settings.secret_bytes, f"demo:totp:{email}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:20]).decode().rstrip("=")


def current_code(settings: Settings, email: str) -> str | None:
    if email not in {p[0] for p in PEOPLE}:
        return None
    return security.totp_now(demo_totp_secret(settings, email))


def sink_port(settings: Settings) -> int:
    return demo_sink_port(settings.port)


def sink_url(settings: Settings) -> str:
    """The address of the demo's own mail server; ``VERN_SMTP_URL`` defaults to it in the demo."""
    return f"smtp://127.0.0.1:{sink_port(settings)}"


# Settings the demo's file keeps when they were set for `vern demo` (never a secret itself).
_KEPT = ("VERN_DATABASE_URL", "VERN_AUDIT_LOG_DIR", "VERN_HOST", "VERN_BASE_URL", "VERN_SMTP_URL",
         "VERN_SMTP_PASSWORD_FILE", "VERN_MAIL_FROM", "VERN_DEFAULT_LOCALE",
         "VERN_SECRET_KEY_FILE", "VERN_MASTER_KEY_FILE")


def made_with_earlier_keys(settings: Settings) -> Path | None:
    """The demo's SQLite database when it exists but this installation has no generated keys
    yet (and none are given): its data is sealed under keys Vern no longer has."""
    from sqlalchemy.engine import make_url


    if settings.master_key or settings.master_key_file or not settings.is_sqlite:
        return None
    if (settings.data_dir / DEV_KEYS_FILE).exists():
        return None
    name = make_url(settings.database_url).database
    found = Path(name) if name else None
    if found is None or not found.is_file():
        return None
    with sqlite3.connect(f"{found.resolve().as_uri()}?mode=ro", uri=True) as conn:
        try:
            keys = conn.execute("SELECT count(*) FROM data_keys").fetchone()[0]
        except sqlite3.Error:
            return None  # no schema yet
    return found if keys else None


def write_settings(settings: Settings) -> Path:
    """``<data_dir>/demo.env``: what every `vern` command needs to work on this demo when
    VERN_ENV is not set (derived values such as the base URL are left to be derived again)."""
    lines = ["# The demo's settings, written by `vern demo`; read by `vern` when VERN_ENV is unset.",
             "VERN_ENV=demo", f"VERN_DATA_DIR={settings.data_dir.resolve()}",
             f"VERN_PORT={settings.port}"]
    lines += [f"{name}={os.environ[name]}" for name in _KEPT if os.environ.get(name)]
    path = settings.data_dir / "demo.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(database: Database, settings: Settings) -> DemoInfo:
    orgs: dict[str, str] = {}
    with database.transaction(Scope.system("demo data")) as session:
        for slug, name, kind, number in ORGS:
            org = session.scalar(select(Organisation).where(Organisation.slug == slug))
            if org is None:
                org = service.create_organisation(session, name=name, slug=slug, kind=kind,
                                                  actor=None, org_number=number)
            orgs[slug] = org.id
        for email, name, slug, role in PEOPLE:
            user = service.find_user_by_email(session, settings, email)
            if user is None:
                user = service.create_user(session, settings, email=email, name=name,
                                           org_id=orgs[slug], role=role,
                                           password=DEMO_PASSWORD, actor=None)
            if role != "member" and user.mfa_enabled_at is None:
                _enrol(settings, user, email)
    for module in _demo_modules():
        module.load_demo(database, orgs)
    return DemoInfo(orgs, PEOPLE)


def _enrol(settings: Settings, user: User, email: str) -> None:
    user.mfa_secret = PII(user.key_id, demo_totp_secret(settings, email))
    user.mfa_enabled_at = utcnow()


def _demo_modules() -> list[Any]:
    return [m for m in domain_modules("demo") if hasattr(m, "load_demo")]


def print_sign_in(console: Console, info: DemoInfo, settings: Settings, written: Path) -> None:
    base = settings.base_url.rstrip("/")
    console.print()
    console.print(f"[bold]Vern demo[/] - open [link]{base}/login[/link]")
    console.print(f"Every demo user's password: [bold]{DEMO_PASSWORD}[/]")
    console.print("Users with two-step sign-in get their current code from:")
    console.print("    [bold].venv/bin/vern demo-code EMAIL[/]  (or add the secret to an authenticator)")
    if settings.smtp_url == sink_url(settings):
        console.print(f"Mail goes to the demo's mail server on 127.0.0.1:{sink_port(settings)}; "
                      f"vendor staff read it at [link]{base}/console/mail[/link]", soft_wrap=True)
    console.print(f"Settings for every `vern` command: {written} (read when VERN_ENV is not set)",
                  soft_wrap=True)
    for email, name, slug, role in info.users:
        mfa = "" if role == "member" else f"  MFA secret {demo_totp_secret(settings, email)}"
        # soft_wrap: one user per line, also when the output goes to a narrow log.
        console.print(f"  {email:40} {name:16} {slug:10} {role:17}{mfa}", soft_wrap=True)
    console.print()
