"""A sample product for the demo and the tests: "Lærbar", a small learning platform with users,
courses, enrolments, messages, deviation reports, invoices (kept five years, person anonymised)
and a sign-in log without a primary key. Every person in it is fictional (example.com)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    insert,
)

from vern.accounts import service as accounts
from vern.core.config import get_settings
from vern.core.db import Scope
from vern.datamap.connect import engine_for
from vern.datamap.detectors import bank_account_for, national_id_for
from vern.datamap.service import publish_map, published_from
from vern.rights import service
from vern.rights.models import RightsRequest

FIRST = [
    "Kari",
    "Ola",
    "Ingrid",
    "Lars",
    "Sofie",
    "Emil",
    "Nora",
    "Jonas",
    "Thea",
    "Magnus",
    "Maja",
    "Henrik",
    "Ida",
    "Sindre",
    "Astrid",
    "Kristian",
    "Hanne",
    "Espen",
    "Silje",
    "Trond",
]
LAST = [
    "Nordmann",
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Berg",
    "Haugen",
    "Hagen",
    "Dahl",
    "Lund",
    "Strand",
    "Solberg",
    "Eide",
    "Moen",
    "Bakken",
]
COURSES = [
    "Førstehjelp for barnehageansatte",
    "Personvern i praksis",
    "Brannvern",
    "HMS-grunnkurs",
    "Språkutvikling hos de minste",
    "Digital dømmekraft",
]

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("phone", String(20)),
    Column("national_id", String(11)),
    Column("postcode", String(4)),
    Column("last_login_ip", String(45)),
    Column("created_at", DateTime, nullable=False),
)
courses = Table(
    "courses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("teacher_id", Integer, ForeignKey("users.id"), index=True),
)
enrolments = Table(
    "enrolments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("course_id", Integer, ForeignKey("courses.id"), nullable=False),
    Column("enrolled_at", DateTime, nullable=False),
    Column("grade", String(2)),
)
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("sender_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("course_id", Integer, ForeignKey("courses.id")),
    Column("body", Text, nullable=False),
    Column("sender_ip", String(45)),
    Column("sent_at", DateTime, nullable=False),
)
deviation_reports = Table(
    "deviation_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("reported_by", Integer, ForeignKey("users.id"), index=True),
    Column("reporter_name", String(120)),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), index=True),
    Column("payer_name", String(120), nullable=False),
    Column("payer_email", String(254), nullable=False, index=True),
    Column("bank_account", String(11)),
    Column("amount", Numeric(10, 2), nullable=False),
    Column("issued_at", DateTime, nullable=False),
)
login_events = Table(  # no primary key on purpose (Fides #1199)
    "login_events",
    metadata,
    Column("school_id", String(36), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), index=True),
    Column("ip", String(45)),
    Column("at", DateTime, nullable=False),
)

MAP_TEMPLATE = """\
# Data map of the Lærbar learning platform (demo product).
version: 1
systems:
  laerbar:
    title: Lærbar læringsplattform
    recipients:
      - "Driftsleverandør: Nordlys Drift AS (Norge), databehandler"
      - "Fakturering: Regnskap Vest AS (Norge), databehandler"
    databases:
      main:
        {connection}
        tables:
          users:
            purpose: Brukerkontoer for innlogging og kurs / user accounts for sign-in and courses
            retention: account-lifetime
            tenant: school_id
            identities: {{email: email, user_id: id, phone: phone, national_id: national_id}}
            fields:
              id: {{category: user.identifier}}
              school_id: {{category: system.reference}}
              email: {{category: user.contact.email, erase: {{pseudonym: "slettet-{{id}}@example.invalid"}}}}
              name: {{category: user.name, erase: {{pseudonym: "Slettet bruker {{id}}"}}}}
              phone: {{category: user.contact.phone, erase: "null"}}
              national_id: {{category: user.government_id.national_id, erase: "null"}}
              postcode: {{category: user.contact.address, erase: "null"}}
              last_login_ip: {{category: user.network.ip, erase: "null"}}
              created_at: {{category: system.timestamp}}
          courses:
            purpose: Kurs som tilbys / courses offered
            retention: permanent-config
            tenant: school_id
            references:
              - {{field: teacher_id, to: users.id}}
            fields:
              id: {{category: system.id}}
              school_id: {{category: system.reference}}
              title: {{category: system.config}}
              teacher_id: {{category: user.identifier, erase: "null"}}
          enrolments:
            purpose: Påmeldinger og karakterer / enrolments and grades
            retention: account-lifetime
            tenant: school_id
            erase: delete_row
            references:
              - {{field: user_id, to: users.id}}
              - {{field: course_id, to: courses.id, follow: false}}
            fields:
              id: {{category: system.id}}
              school_id: {{category: system.reference}}
              user_id: {{category: user.identifier}}
              course_id: {{category: system.reference}}
              enrolled_at: {{category: user.education}}
              grade: {{category: user.education}}
          messages:
            purpose: Meldinger i kurs / messages in courses
            retention: account-lifetime
            tenant: school_id
            references:
              - {{field: sender_id, to: users.id}}
              - {{field: course_id, to: courses.id, follow: false}}
            fields:
              id: {{category: system.id}}
              school_id: {{category: system.reference}}
              sender_id: {{category: user.identifier}}
              course_id: {{category: system.reference}}
              body: {{category: user.content, erase: {{fixed: "[slettet]"}}}}
              sender_ip: {{category: user.network.ip, erase: "null"}}
              sent_at: {{category: system.timestamp}}
          deviation_reports:
            purpose: Avviksmeldinger i internkontrollen / deviation reports (internal control)
            retention: Fem år etter lukking / five years after closing
            tenant: school_id
            references:
              - {{field: reported_by, to: users.id}}
            fields:
              id: {{category: system.id}}
              school_id: {{category: system.reference}}
              reported_by: {{category: user.identifier, erase: "null"}}
              reporter_name: {{category: user.name, erase: {{pseudonym: "Slettet bruker {{id}}"}}}}
              title:
                category: user.incident
                erase: {{keep: "internkontrollforskriften § 5: avvik dokumenteres"}}
              description:
                category: user.incident
                erase: {{keep: "internkontrollforskriften § 5: avvik dokumenteres"}}
              created_at: {{category: system.timestamp}}
          invoices:
            purpose: Fakturaer for kursavgift / invoices for course fees
            retention: legal-5y
            tenant: school_id
            identities: {{email: payer_email}}
            references:
              - {{field: user_id, to: users.id}}
            fields:
              id: {{category: system.id}}
              school_id: {{category: system.reference}}
              user_id: {{category: user.identifier, erase: "null"}}
              payer_name: {{category: user.name, erase: {{pseudonym: "Anonymisert {{id}}"}}}}
              payer_email: {{category: user.contact.email, erase: hmac}}
              bank_account: {{category: user.financial.bank_account, erase: "null"}}
              amount:
                category: user.financial
                erase: {{keep: "bokføringsloven § 13: regnskapsmateriale lagres i fem år"}}
              issued_at:
                category: user.financial
                erase: {{keep: "bokføringsloven § 13: regnskapsmateriale lagres i fem år"}}
          login_events:
            purpose: Innloggingslogg for sikkerhet / sign-in log for security
            retention: audit-retention
            tenant: school_id
            erase: delete_row
            references:
              - {{field: user_id, to: users.id}}
            fields:
              school_id: {{category: system.reference}}
              user_id: {{category: user.identifier}}
              ip: {{category: user.network.ip}}
              at: {{category: user.behaviour}}
"""


def map_text(*, url_env: str | None = "LAERBAR_DATABASE_URL", url_file: str | None = None) -> str:
    parts = []
    if url_env:
        parts.append(f"url_env: {url_env}")
    if url_file:
        parts.append(f'url_file: "{url_file}"')
    return MAP_TEMPLATE.format(connection="\n        ".join(parts))


def create_product(engine: Engine) -> None:
    metadata.create_all(engine)


def person(i: int, rng: random.Random) -> dict[str, Any]:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    born = date(1960 + i % 40, 1 + i % 12, 1 + i % 28)
    nid = None
    for individual in range(100 + i % 300, 500):
        nid = national_id_for(born, individual)
        if nid:
            break
    account = None
    for n in range(1000):
        account = bank_account_for(f"{1503 + n % 7:04d}{(i * 7919 + n) % 1_000_000:06d}")
        if account:
            break
    return {
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{i}@example.com".lower().replace("ø", "o").replace("å", "a"),
        "phone": f"+47 9{rng.randrange(1000000, 9999999)}",
        "national_id": nid,
        "postcode": f"{rng.randrange(1, 9999):04d}",
        "bank_account": account,
        "ip": f"192.0.2.{i % 250 + 1}",
    }


@dataclass
class _Filling:
    """The rows being made for the demo product, with the generator and the last ids given."""

    rng: random.Random
    start: datetime = datetime(2025, 8, 15, 9, 0)
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t.name: [] for t in metadata.sorted_tables}
    )
    ids: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("users", "courses", "enrolments", "messages", "deviation_reports", "invoices"), 0
        )
    )

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]


def fill(
    engine: Engine, tenants: list[str], *, people_per_tenant: int = 12, seed: int = 7
) -> list[dict[str, Any]]:
    """Fictional people in each tenant with courses, enrolments, messages, reports and invoices."""
    filling = _Filling(random.Random(seed))
    people: list[dict[str, Any]] = []
    for tenant in tenants:
        tenant_people = [_add_user(filling, tenant) for _ in range(people_per_tenant)]
        course_ids = [_add_course(filling, tenant, title, tenant_people[0]) for title in COURSES[:3]]
        for p in tenant_people:
            _add_activity(filling, tenant, p, course_ids)
        _add_report(filling, tenant, tenant_people[1])
        people.extend(tenant_people)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if filling.rows[table.name]:
                conn.execute(insert(table), filling.rows[table.name])
    return people


def _add_user(filling: _Filling, tenant: str) -> dict[str, Any]:
    uid = filling.next_id("users")
    p = person(uid, filling.rng) | {"id": uid, "school_id": tenant}
    filling.rows["users"].append(
        {
            "id": uid,
            "school_id": tenant,
            "email": p["email"],
            "name": p["name"],
            "phone": p["phone"],
            "national_id": p["national_id"],
            "postcode": p["postcode"],
            "last_login_ip": p["ip"],
            "created_at": filling.start + timedelta(days=uid),
        }
    )
    return p


def _add_course(filling: _Filling, tenant: str, title: str, teacher: dict[str, Any]) -> int:
    cid = filling.next_id("courses")
    filling.rows["courses"].append(
        {"id": cid, "school_id": tenant, "title": title, "teacher_id": teacher["id"]}
    )
    return cid


def _add_activity(filling: _Filling, tenant: str, p: dict[str, Any], course_ids: list[int]) -> None:
    """A person's enrolments, messages, invoice and sign-ins."""
    rng, start, rows = filling.rng, filling.start, filling.rows
    for course in rng.sample(course_ids, 2):
        rows["enrolments"].append(
            {
                "id": filling.next_id("enrolments"),
                "school_id": tenant,
                "user_id": p["id"],
                "course_id": course,
                "enrolled_at": start,
                "grade": rng.choice("ABCDE"),
            }
        )
    for k in range(3):
        rows["messages"].append(
            {
                "id": filling.next_id("messages"),
                "school_id": tenant,
                "sender_id": p["id"],
                "course_id": rng.choice(course_ids),
                "body": f"Hei! Spørsmål nummer {k + 1} om oppgaven.",
                "sender_ip": p["ip"],
                "sent_at": start + timedelta(hours=k),
            }
        )
    rows["invoices"].append(
        {
            "id": filling.next_id("invoices"),
            "school_id": tenant,
            "user_id": p["id"],
            "payer_name": p["name"],
            "payer_email": p["email"],
            "bank_account": p["bank_account"],
            "amount": Decimal("1490.00"),
            "issued_at": start,
        }
    )
    for k in range(2):
        rows["login_events"].append(
            {"school_id": tenant, "user_id": p["id"], "ip": p["ip"], "at": start + timedelta(days=k)}
        )


def _add_report(filling: _Filling, tenant: str, reporter: dict[str, Any]) -> None:
    filling.rows["deviation_reports"].append(
        {
            "id": filling.next_id("deviation_reports"),
            "school_id": tenant,
            "reported_by": reporter["id"],
            "reporter_name": reporter["name"],
            "title": "Port sto åpen ved henting",
            "description": "Porten mot parkeringsplassen sto åpen kl. 15.",
            "created_at": filling.start,
        }
    )


# -- the demo ----------------------------------------------------------------------------------------


def load_demo(database: Any, orgs: dict[str, str], folder: Path | None = None) -> None:
    """Create the Lærbar product database with people in the demo customers, publish its map,
    and leave a finished access request and a finished erasure request to look at."""


    folder = folder or get_settings().data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    product = folder / "laerbar.db"
    url_file = folder / "laerbar.url"
    url = f"sqlite:///{product}"
    url_file.write_text(url + "\n", encoding="utf-8")
    tenants = [orgs[s] for s in ("fjellheim", "havbris") if s in orgs]
    with database.transaction(Scope.system("demo rights")) as session:
        seeded = published_from(session, "demo:laerbar")
    if seeded and product.exists():
        return
    if product.exists():
        product.unlink()
    engine = engine_for(url)
    create_product(engine)
    people = fill(engine, tenants)
    with database.transaction(Scope.system("demo rights")) as session:
        publish_map(session, map_text(url_env=None, url_file=str(url_file)), source="demo:laerbar")
    tenant = tenants[0]
    first, second = people[2], people[3]
    ids = []
    with database.transaction(Scope.tenant(tenant)) as session:
        for kind, who in (("access", first), ("erasure", second)):
            req = service.create_request(
                session,
                org_id=tenant,
                kind=kind,
                identities={"email": who["email"]},
                channel="staff",
                locale="nb",
                verified_by="attested",
                details={"note": "Identitet kontrollert ved oppmøte med legitimasjon"},
            )
            ids.append(req.id)

    with database.transaction(Scope.tenant(tenant)) as session:
        # Filed by the vendor's demo loader; approved by the customer's administrator (four-eyes).
        approver = next((u.id for u, m in accounts.list_members(session)
                         if m.role == "tenant_admin"), None)
        for request_id in ids:
            req = session.get(RightsRequest, request_id)
            if approver and req is not None and req.status == "awaiting_approval":
                service.approve(session, request_id, actor_user_id=approver)
    for request_id in ids:
        service.run(database, request_id)


def demo_paths() -> tuple[Path, Path]:

    folder = get_settings().data_dir / "demo"
    return folder / "laerbar.db", folder / "laerbar.url"


def utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC)
