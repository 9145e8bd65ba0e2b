"""Demo data: the vendor "Solstrand Læring AS", two customers and their people (all fictional).

Loading is idempotent. Demo users have known passwords and MFA secrets derived from the demo
secret, so that ``vern demo-code EMAIL`` can print the current code. Each domain may add its own
demo data in ``vern/<domain>/demo.py`` with ``load_demo(database, orgs)``, where ``orgs`` maps
the slugs ``solstrand``, ``fjellheim`` and ``havbris`` to organisation ids.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from sqlalchemy import select

import vern
from vern.accounts import security, service
from vern.accounts.models import Organisation, User
from vern.accounts.roles import OrgKind
from vern.config import DEV_SECRET_KEY, Settings
from vern.crypto import PII
from vern.db import Database, Scope, utcnow

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


def demo_totp_secret(email: str) -> str:
    digest = hashlib.sha256(f"{DEV_SECRET_KEY}:totp:{email}".encode()).digest()
    return base64.b32encode(digest[:20]).decode().rstrip("=")


def current_code(email: str) -> str | None:
    if email not in {p[0] for p in PEOPLE}:
        return None
    return security.totp_now(demo_totp_secret(email))


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
                _enrol(user, email)
    for module in _demo_modules():
        module.load_demo(database, orgs)
    return DemoInfo(orgs, PEOPLE)


def _enrol(user: User, email: str) -> None:
    user.mfa_secret = PII(user.key_id, demo_totp_secret(email))
    user.mfa_enabled_at = utcnow()


def _demo_modules() -> list[Any]:
    found: list[Any] = []
    for mod in sorted(pkgutil.iter_modules(vern.__path__), key=lambda m: m.name):
        if not mod.ispkg:
            continue
        try:
            module = importlib.import_module(f"vern.{mod.name}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"vern.{mod.name}.demo":
                raise
            continue
        if hasattr(module, "load_demo"):
            found.append(module)
    return found


def print_sign_in(console: Console, info: DemoInfo, port: int) -> None:
    console.print()
    console.print(f"[bold]Vern demo[/] - open [link]http://127.0.0.1:{port}/login[/link]")
    console.print(f"Every demo user's password: [bold]{DEMO_PASSWORD}[/]")
    console.print("Users with two-step sign-in get their current code from:")
    console.print("    [bold].venv/bin/vern demo-code EMAIL[/]  (or add the secret to an authenticator)")
    for email, name, slug, role in info.users:
        mfa = "" if role == "member" else f"  MFA secret {demo_totp_secret(email)}"
        # soft_wrap: one user per line, also when the output goes to a narrow log.
        console.print(f"  {email:40} {name:16} {slug:10} {role:17}{mfa}", soft_wrap=True)
    console.print()
