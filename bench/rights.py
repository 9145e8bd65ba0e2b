# ruff: noqa: S608, E501, PLR0917 - SQL text built from this file's own constants; a script
"""Benchmark of data subject requests against a generated product database.

A product database of N people (default 1,000,000) and about 12 rows per person in 12 tables is
generated inside the database itself (recursive CTE on SQLite, generate_series on PostgreSQL) and
kept for the next run. For each backend it measures, one person at a time:

* access: ``vern.rights.service.run`` of a verified access request - find the person's rows in
  every table through identities and references, store them sealed, build the zip (JSON, CSV per
  table, HTML summary), seal and store it, audit;
* erasure: ``run`` of an approved erasure request - plan, ledger, per-table writes with
  checkpoints, finish;
* 1,000 queued erasures (``--quick``: 100) drained as the worker does it (``run_batch`` of 50
  requests), and the same number by four such workers in parallel, as erasures per second;

and the same work done by a hand-written SQL script in the same run (the same rows read and
written, the same JSON/CSV output for access, no bookkeeping), as a ratio. Request intake
(creating and approving the requests) is not timed. The last line is one JSON object.

    .venv/bin/python bench/rights.py            # 1,000,000 people, SQLite and PostgreSQL
    .venv/bin/python bench/rights.py --quick    # 20,000 people, under a minute
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import io
import json
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    text,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VERN_ENV", "test")  # known development secrets; nothing here is real

from vern.accounts import service as accounts  # noqa: E402
from vern.accounts.roles import OrgKind  # noqa: E402
from vern.core.config import (  # noqa: E402
    DEV_MASTER_KEY,
    DEV_SECRET_KEY,
    rights_settings,
)
from vern.core.crypto import KeyRing, install_keyring  # noqa: E402
from vern.core.db import Database, Scope  # noqa: E402
from vern.datamap.connect import engine_for, forget  # noqa: E402
from vern.datamap.loader import load_map  # noqa: E402
from vern.rights import service  # noqa: E402
from vern.rights.engine import hmac_value, pseudonym_id  # noqa: E402
from vern.rights.models import Policy  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TENANTS = 100
TENANT = 7  # the tenant whose people are asked about
CHUNK = 50  # requests per worker batch (vern.rights.service.run_batch)

meta = MetaData()
T: dict[str, Table] = {}


def _table(name: str, *cols: Column[Any]) -> None:
    T[name] = Table(name, meta, *cols)


_table(
    "people",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("email", String(254), nullable=False),
    Column("name", String(120), nullable=False),
    Column("phone", String(20)),
    Column("postcode", String(4)),
    Column("created_at", DateTime),
)
_table(
    "addresses",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("street", String(200)),
    Column("postcode", String(4)),
)
_table(
    "courses",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("title", String(200)),
)
_table(
    "enrolments",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("course_id", Integer),
    Column("grade", String(2)),
)
_table(
    "messages",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("sender_id", Integer, nullable=False),
    Column("body", Text),
    Column("ip", String(45)),
    Column("sent_at", DateTime),
)
_table(
    "attachments",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("message_id", Integer, nullable=False),
    Column("filename", String(200)),
)
_table(
    "login_events",
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer),
    Column("ip", String(45)),
    Column("at", DateTime),
)
_table(
    "invoices",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer),
    Column("payer_name", String(120), nullable=False),
    Column("payer_email", String(254), nullable=False),
    Column("amount", Numeric(10, 2)),
)
_table(
    "payments",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("invoice_id", Integer, nullable=False),
    Column("bank_account", String(11)),
    Column("amount", Numeric(10, 2)),
)
_table(
    "consents",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("purpose", String(100)),
    Column("given_at", DateTime),
)
_table(
    "devices",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("user_agent", String(300)),
    Column("ip", String(45)),
)
_table(
    "notes",
    Column("id", Integer, primary_key=True),
    Column("tenant_id", String(20), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("text", Text),
)
_table("bench_meta", Column("n", Integer), Column("used", Integer))

INDEXES = [
    ("people", "email"),
    ("people", "tenant_id"),
    ("addresses", "person_id"),
    ("enrolments", "person_id"),
    ("messages", "sender_id"),
    ("attachments", "message_id"),
    ("login_events", "person_id"),
    ("invoices", "person_id"),
    ("invoices", "payer_email"),
    ("payments", "invoice_id"),
    ("consents", "person_id"),
    ("devices", "person_id"),
    ("notes", "person_id"),
]


def _tenant(expr: str) -> str:
    return f"'tenant-' || (({expr}) % {TENANTS})"


def _fill_sql(dialect: str, n: int) -> list[tuple[str, int, str]]:
    """(table, count, SELECT over x) - rows computed from x = 1..count."""
    ts = "'2025-01-01 08:00:00'" if dialect == "sqlite" else "TIMESTAMP '2025-01-01 08:00:00'"
    h = n // 2
    return [
        (
            "people",
            n,
            f"SELECT x, {_tenant('x')}, 'p' || x || '@example.com', 'Kari Nordmann ' || x, "
            f"'+47 9' || (1000000 + x % 8999999), '0' || (100 + x % 899), {ts}",
        ),
        ("addresses", n, f"SELECT x, {_tenant('x')}, x, 'Storgata ' || (x % 200), '0150'"),
        ("courses", 1000, f"SELECT x, {_tenant('x')}, 'Kurs ' || x"),
        ("enrolments", 2 * n, f"SELECT x, {_tenant('(x + 1) / 2')}, (x + 1) / 2, x % 1000 + 1, 'B'"),
        (
            "messages",
            2 * n,
            f"SELECT x, {_tenant('(x + 1) / 2')}, (x + 1) / 2, 'Hei, et spørsmål om oppgave ' || x, "
            f"'192.0.2.' || (x % 250), {ts}",
        ),
        ("attachments", h, f"SELECT x, {_tenant('2 * x - 1')}, 4 * x - 3, 'vedlegg-' || x || '.pdf'"),
        (
            "login_events",
            2 * n,
            f"SELECT {_tenant('(x + 1) / 2')}, (x + 1) / 2, '198.51.100.' || (x % 250), {ts}",
        ),
        (
            "invoices",
            n,
            f"SELECT x, {_tenant('x')}, x, 'Kari Nordmann ' || x, 'p' || x || '@example.com', 1490.00",
        ),
        ("payments", n, f"SELECT x, {_tenant('x')}, x, '1234567890' || (x % 10), 1490.00"),
        ("consents", h, f"SELECT x, {_tenant('2 * x')}, 2 * x, 'nyhetsbrev', {ts}"),
        (
            "devices",
            h,
            f"SELECT x, {_tenant('2 * x - 1')}, 2 * x - 1, 'Mozilla/5.0 (X11; Linux)', "
            f"'203.0.113.' || (x % 250)",
        ),
        ("notes", h, f"SELECT x, {_tenant('2 * x')}, 2 * x, 'Notat om elev ' || x"),
    ]


def _insert(conn: Any, dialect: str, table: str, count: int, select: str) -> None:
    step = 500_000
    for start in range(0, count, step):
        end = min(count, start + step)
        if dialect == "sqlite":
            src = (
                f"WITH RECURSIVE seq(x) AS (SELECT {start + 1} UNION ALL SELECT x + 1 FROM seq "
                f"WHERE x < {end}) "
            )
            conn.execute(text(src + f"INSERT INTO {table} " + select + " FROM seq"))
        else:
            conn.execute(
                text(f"INSERT INTO {table} " + select + f" FROM generate_series({start + 1}, {end}) AS x")
            )


def generate(engine: Engine, n: int) -> int:
    dialect = engine.dialect.name
    meta.drop_all(engine)
    meta.create_all(engine)
    rows = 0
    with engine.begin() as conn:
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        for table, count, select in _fill_sql(dialect, n):
            t0 = time.perf_counter()
            _insert(conn, dialect, table, count, select)
            rows += count
            print(f"  {table}: {count:,} rows in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        for table, column in INDEXES:
            conn.execute(text(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})"))
        conn.execute(text("INSERT INTO bench_meta VALUES (:n, 0)"), {"n": n})
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return rows


# The map's e-mail columns are compared trimmed and case-insensitively; the product indexes that.
CASEFOLD_INDEXES = (("people", "email"), ("invoices", "payer_email"))


def ensure_product(engine: Engine, n: int) -> tuple[int, int]:
    """(rows, first unused person index); generates the database if it is missing or too small."""
    try:
        with engine.connect() as conn:
            got = conn.execute(text("SELECT n, used FROM bench_meta")).first()
    except Exception:  # noqa: BLE001 - no database yet
        got = None
    if got is None or got[0] != n or got[1] > n // TENANTS - 1500:
        t0 = time.perf_counter()
        print(f"generating the product database ({n:,} people) …", file=sys.stderr)
        generate(engine, n)
        print(f"  done in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        used = 0
    else:
        used = got[1]
    with engine.begin() as conn:  # e-mail is compared as a person means it: lower(trim(email))
        for table, column in CASEFOLD_INDEXES:
            conn.execute(
                text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column}_ci ON {table} (lower(trim({column})))")
            )
    with engine.connect() as conn:
        rows = sum(
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0 for t in T if t != "bench_meta"
        )
    return rows, used


def mark_used(engine: Engine, used: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE bench_meta SET used = :u"), {"u": used})


MAP = """
version: 1
systems:
  product:
    title: Benchmark product
    recipients: ["Hosting provider (Norway)"]
    databases:
      main:
        url_env: BENCH_PRODUCT_URL
        tables:
          people:
            purpose: accounts
            retention: account-lifetime
            tenant: tenant_id
            identities: {email: email, user_id: id, phone: phone}
            fields:
              id: user.identifier
              tenant_id: system.reference
              email: {category: user.contact.email, erase: hmac}
              name: {category: user.name, erase: {pseudonym: "Slettet {id}"}}
              phone: {category: user.contact.phone, erase: null}
              postcode: {category: user.contact.address, erase: null}
              created_at: system.timestamp
          addresses:
            purpose: postal address
            retention: account-lifetime
            tenant: tenant_id
            erase: delete_row
            references: [{field: person_id, to: people.id}]
            fields: {id: system.id, tenant_id: system.reference, person_id: user.identifier,
                     street: user.contact.address, postcode: user.contact.address}
          courses:
            purpose: courses
            retention: permanent-config
            tenant: tenant_id
            fields: {id: system.id, tenant_id: system.reference, title: system.config}
          enrolments:
            purpose: enrolments
            retention: account-lifetime
            tenant: tenant_id
            erase: delete_row
            references: [{field: person_id, to: people.id}, {field: course_id, to: courses.id, follow: false}]
            fields: {id: system.id, tenant_id: system.reference, person_id: user.identifier,
                     course_id: system.reference, grade: user.education}
          messages:
            purpose: messages
            retention: account-lifetime
            tenant: tenant_id
            references: [{field: sender_id, to: people.id}]
            fields:
              id: system.id
              tenant_id: system.reference
              sender_id: user.identifier
              body: {category: user.content, erase: {fixed: "[slettet]"}}
              ip: {category: user.network.ip, erase: null}
              sent_at: system.timestamp
          attachments:
            purpose: files in messages
            retention: account-lifetime
            tenant: tenant_id
            references: [{field: message_id, to: messages.id}]
            fields:
              id: system.id
              tenant_id: system.reference
              message_id: system.reference
              filename: {category: user.content, erase: {fixed: "[slettet]"}}
          login_events:
            purpose: sign-in log
            retention: audit-retention
            tenant: tenant_id
            erase: delete_row
            references: [{field: person_id, to: people.id}]
            fields: {tenant_id: system.reference, person_id: user.identifier, ip: user.network.ip,
                     at: user.behaviour}
          invoices:
            purpose: invoices
            retention: legal-5y
            tenant: tenant_id
            identities: {email: payer_email}
            references: [{field: person_id, to: people.id}]
            fields:
              id: system.id
              tenant_id: system.reference
              person_id: user.identifier
              payer_name: {category: user.name, erase: {pseudonym: "Anonymisert {id}"}}
              payer_email: {category: user.contact.email, erase: hmac}
              amount: {category: user.financial, erase: {keep: "bokføringsloven § 13"}}
          payments:
            purpose: payments
            retention: legal-5y
            tenant: tenant_id
            references: [{field: invoice_id, to: invoices.id}]
            fields:
              id: system.id
              tenant_id: system.reference
              invoice_id: system.reference
              bank_account: {category: user.financial.bank_account, erase: null}
              amount: {category: user.financial, erase: {keep: "bokføringsloven § 13"}}
          consents:
            purpose: consents
            retention: consent-history
            tenant: tenant_id
            erase: delete_row
            references: [{field: person_id, to: people.id}]
            fields: {id: system.id, tenant_id: system.reference, person_id: user.identifier,
                     purpose: user.consent, given_at: user.consent}
          devices:
            purpose: devices
            retention: account-lifetime
            tenant: tenant_id
            erase: delete_row
            references: [{field: person_id, to: people.id}]
            fields: {id: system.id, tenant_id: system.reference, person_id: user.identifier,
                     user_agent: user.device.user_agent, ip: user.network.ip}
          notes:
            purpose: notes about a learner
            retention: account-lifetime
            tenant: tenant_id
            references: [{field: person_id, to: people.id}]
            fields:
              id: system.id
              tenant_id: system.reference
              person_id: user.identifier
              text: {category: user.content, erase: {fixed: "[slettet]"}}
"""

# -- the hand-written SQL script, doing the same work ---------------------------------------------

CHILDREN = [
    ("addresses", "person_id"),
    ("enrolments", "person_id"),
    ("messages", "sender_id"),
    ("login_events", "person_id"),
    ("invoices", "person_id"),
    ("consents", "person_id"),
    ("devices", "person_id"),
    ("notes", "person_id"),
]


def sql_access(engine: Engine, tenant: str, email: str) -> tuple[bytes, int]:
    """The answer to an access request: (the zip, rows found)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        people = [
            dict(r)
            for r in conn.execute(
                text("SELECT * FROM people WHERE tenant_id = :t AND lower(trim(email)) = :e"),
                {"t": tenant, "e": email.strip().lower()},
            ).mappings()
        ]
        out["people"] = people
        ids = [p["id"] for p in people]
        for table, col in CHILDREN:
            out[table] = [
                dict(r)
                for r in conn.execute(
                    text(f"SELECT * FROM {table} WHERE tenant_id = :t AND {col} = :p"),
                    {"t": tenant, "p": ids[0]},
                ).mappings()
            ]
        inv = [i["id"] for i in out["invoices"]] + [
            i[0]
            for i in conn.execute(
                text("SELECT id FROM invoices WHERE tenant_id = :t AND lower(trim(payer_email)) = :e"),
                {"t": tenant, "e": email},
            )
        ]
        out["payments"] = (
            [
                dict(r)
                for r in conn.execute(
                    text(
                        f"SELECT * FROM payments WHERE tenant_id = :t AND invoice_id IN ({','.join(map(str, set(inv)))})"
                    ),
                    {"t": tenant},
                ).mappings()
            ]
            if inv
            else []
        )
        mids = [m["id"] for m in out["messages"]]
        out["attachments"] = (
            [
                dict(r)
                for r in conn.execute(
                    text(
                        f"SELECT * FROM attachments WHERE tenant_id = :t AND message_id IN ({','.join(map(str, mids))})"
                    ),
                    {"t": tenant},
                ).mappings()
            ]
            if mids
            else []
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(out, default=str, ensure_ascii=False, indent=2))
        for table, rows in out.items():
            if rows:
                csv_out = io.StringIO()
                writer = csv.DictWriter(csv_out, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
                zf.writestr(f"csv/{table}.csv", csv_out.getvalue())
        zf.writestr("summary.html", _sql_summary(out))
    return buffer.getvalue(), sum(len(rows) for rows in out.values())


# What the script's summary says of each table (the same texts the map gives Vern).
ABOUT = {
    "people": ("accounts", "account-lifetime"),
    "addresses": ("postal address", "account-lifetime"),
    "enrolments": ("enrolments", "account-lifetime"),
    "messages": ("messages", "account-lifetime"),
    "attachments": ("files in messages", "account-lifetime"),
    "login_events": ("sign-in log", "audit-retention"),
    "invoices": ("invoices", "legal-5y"),
    "payments": ("payments", "legal-5y"),
    "consents": ("consents", "consent-history"),
    "devices": ("devices", "account-lifetime"),
    "notes": ("notes about a learner", "account-lifetime"),
}


def _sql_summary(out: dict[str, list[dict[str, Any]]]) -> str:
    """The readable summary the answer must have (purposes, recipients, retention, the rows),
    written by hand: string formatting with escaping, no template engine."""
    parts = [
        "<!doctype html><html lang='nb'><head><meta charset='utf-8'><title>Dine personopplysninger"
        "</title></head><body><h1>Dine personopplysninger</h1>"
        "<p>Mottakere: Hosting provider (Norway)</p>"
    ]
    for table, rows in out.items():
        if not rows:
            continue
        purpose, retention = ABOUT[table]
        columns = list(rows[0])
        parts.append(
            f"<h2>{html.escape(table)}</h2><dl><dt>Formål</dt><dd>{html.escape(purpose)}</dd>"
            f"<dt>Lagres</dt><dd>{html.escape(retention)}</dd><dt>Rader</dt><dd>{len(rows)}</dd></dl>"
            "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
        )
        for row in rows:
            cells = "".join(f"<td>{html.escape('' if row[c] is None else str(row[c]))}</td>" for c in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("<p>Du kan be om retting, sletting eller begrensning, og klage til Datatilsynet.</p>")
    return "".join(parts) + "</body></html>"


def sql_erase(engine: Engine, tenant: str, email: str, secret: bytes) -> int:
    """The erasure in one product transaction; returns the rows it deleted or changed (the
    benchmark checks that Vern's run of the twin person touched as many)."""
    p = {"t": tenant}
    email = email.strip().lower()
    hit = 0
    with engine.begin() as conn:
        person = conn.execute(
            text("SELECT id, email FROM people WHERE tenant_id = :t AND lower(trim(email)) = :e"), p | {"e": email}
        ).first()
        if person is None:
            return 0
        pid = person[0]
        ref = hashlib.sha256(email.encode()).hexdigest()
        mids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM messages WHERE tenant_id = :t AND sender_id = :p"), p | {"p": pid}
            )
        ]
        invoices = conn.execute(
            text(
                "SELECT id, payer_email FROM invoices WHERE tenant_id = :t AND "
                "(person_id = :p OR lower(trim(payer_email)) = :e)"
            ),
            p | {"p": pid, "e": email},
        ).all()

        def write(stmt: Any, params: dict[str, Any]) -> None:
            nonlocal hit
            hit += conn.execute(stmt, params).rowcount

        for table in ("addresses", "enrolments", "login_events", "consents", "devices"):
            write(text(f"DELETE FROM {table} WHERE tenant_id = :t AND person_id = :p"), p | {"p": pid})
        if mids:
            write(
                text(
                    "UPDATE attachments SET filename = '[slettet]' WHERE tenant_id = :t AND "
                    f"message_id IN ({','.join(map(str, mids))})"
                ),
                p,
            )
        write(
            text("UPDATE messages SET body = '[slettet]', ip = NULL WHERE tenant_id = :t AND sender_id = :p"),
            p | {"p": pid},
        )
        if invoices:
            write(
                text(
                    "UPDATE payments SET bank_account = NULL WHERE tenant_id = :t AND "
                    f"invoice_id IN ({','.join(str(i[0]) for i in invoices)})"
                ),
                p,
            )
        for inv_id, payer_email in invoices:
            write(
                text(
                    "UPDATE invoices SET payer_name = :n, payer_email = :m WHERE tenant_id = :t AND id = :i"
                ),
                p
                | {
                    "i": inv_id,
                    "m": hmac_value(secret, payer_email, None),
                    "n": "Anonymisert " + pseudonym_id(secret, ref),
                },
            )
        write(
            text("UPDATE notes SET text = '[slettet]' WHERE tenant_id = :t AND person_id = :p"),
            p | {"p": pid},
        )
        write(
            text(
                "UPDATE people SET email = :m, name = :n, phone = NULL, postcode = NULL "
                "WHERE tenant_id = :t AND id = :p"
            ),
            p | {"p": pid, "m": hmac_value(secret, email, None), "n": "Slettet " + pseudonym_id(secret, ref)},
        )
    return hit


# -- the run ----------------------------------------------------------------------------------------


def _p50(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def _requests(database: Database, org_id: str, kind: str, emails: list[str]) -> list[str]:
    ids = []
    with database.transaction(Scope.tenant(org_id)) as session:
        for email in emails:
            req = service.create_request(
                session,
                org_id=org_id,
                kind=kind,
                identities={"email": email},
                channel="staff",
                verified_by="attested",
                details={"note": "benchmark"},
            )
            if req.status == "awaiting_approval":
                # Four-eyes: the approval names a second person (no one filed or attested).
                service.approve(session, req.id, actor_user_id=None, person_id="bench-approver")
            ids.append(req.id)
    return ids


def _same_rows(database: Database, request_id: str, what: str, script: int) -> None:
    """The script must do the same work as Vern: as many rows found (access) or written (erasure)
    for a person of the same shape. Checked outside the timing; a mismatch stops the run."""
    from vern.rights.models import RightsRequest

    with database.transaction(Scope.system("bench check")) as session:
        req = session.get(RightsRequest, request_id)
        assert req is not None and req.summary is not None
        vern = req.summary["databases"]["product.main"][what]
    if vern != script:
        raise AssertionError(f"{what}: Vern {vern}, the SQL script {script}: not the same work")


def _parallel_batch(
    database: Database, product_url: str, data_map: Any, emails: list[str], workers: int
) -> float:
    """The same number of erasures in another tenant, run by ``workers`` threads claiming from
    the queue (as several worker processes would)."""
    from concurrent.futures import ThreadPoolExecutor

    with database.transaction(Scope.system("bench")) as session:
        org = accounts.create_organisation(
            session, name="Benk to AS", slug=f"benk2-{int(time.time())}", kind=OrgKind.TENANT, actor=None
        )
        org_id = org.id
    map_to_product(database, org_id, f"tenant-{TENANT + 1}")
    ids = _requests(database, org_id, "erasure", emails)
    urls = {"product.main": product_url}

    def chunk(part: list[str]) -> set[str]:
        return set(service.run_batch(database, part, data_map=data_map, urls=urls).values())

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = set().union(*pool.map(chunk, [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]))
    elapsed = time.perf_counter() - t0
    assert results == {"done"}, results
    return round(len(ids) / elapsed, 1)


def map_to_product(database: Database, org_id: str, key: str) -> None:
    """The bench customer's product key. In Vern only the vendor's staff set it
    (``service.set_tenant_policy``); the bench has no staff, so it writes the policy row."""
    cfg = rights_settings()
    with database.transaction(Scope.tenant(org_id)) as session:
        session.add(Policy(org_id=org_id, approve_erasure=cfg.approve_erasure,
                           approve_rectification=cfg.approve_rectification, product_tenant_key=key))


def run_backend(
    name: str, vern_url: str, product_url: str, n: int, samples: int, batch: int, workers: int = 4
) -> dict[str, Any]:
    os.environ["BENCH_PRODUCT_URL"] = product_url
    product = engine_for(product_url)
    rows, used = ensure_product(product, n)
    print(f"{name}: product database {n:,} people, {rows:,} rows in {len(T) - 1} tables", file=sys.stderr)
    database = Database(vern_url)
    database.create_all()
    install_keyring(KeyRing(database.engine, base64.urlsafe_b64decode(DEV_MASTER_KEY)))
    with database.transaction(Scope.system("bench")) as session:
        org = accounts.create_organisation(
            session, name="Benk AS", slug=f"benk-{int(time.time())}", kind=OrgKind.TENANT, actor=None
        )
        org_id = org.id
    map_to_product(database, org_id, f"tenant-{TENANT}")
    data_map = load_map(MAP)
    secret = DEV_SECRET_KEY.encode()
    warm = 20
    people = [
        f"p{i * TENANTS + TENANT}@example.com" for i in range(used + 1, used + 1 + warm + 2 * samples + batch)
    ]
    mark_used(product, used + len(people))
    warm_p, people = people[:warm], people[warm:]
    access_p, erase_p = people[:samples], people[samples : 2 * samples]
    batch_p = people[2 * samples :]
    # Warm-up, not timed: statement caches, the keyring, the database's page cache.
    for rid in _requests(database, org_id, "erasure", warm_p):
        service.run(database, rid, data_map=data_map, urls={"product.main": product_url})
    tenant = f"tenant-{TENANT}"
    urls = {"product.main": product_url}

    access_ids = _requests(database, org_id, "access", access_p)
    t_access, t_sql_access = [], []
    for rid, email in zip(access_ids, access_p, strict=True):
        t0 = time.perf_counter()
        assert service.run(database, rid, data_map=data_map, urls=urls) == "done"
        t_access.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _zip, found = sql_access(product, tenant, email)
        t_sql_access.append(time.perf_counter() - t0)
        _same_rows(database, rid, "rows_found", found)  # a fair script: the same rows found

    erase_ids = _requests(database, org_id, "erasure", erase_p)
    sql_people = people[:samples]  # erased by SQL after they were read above: same rows, same work
    t_erase, t_sql_erase = [], []
    for rid, other in zip(erase_ids, sql_people, strict=True):
        t0 = time.perf_counter()
        assert service.run(database, rid, data_map=data_map, urls=urls) == "done"
        t_erase.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        hit = sql_erase(product, tenant, other, secret)
        t_sql_erase.append(time.perf_counter() - t0)
        _same_rows(database, rid, "rows_done", hit)  # the same rows deleted or changed

    batch_ids = _requests(database, org_id, "erasure", batch_p)
    t0 = time.perf_counter()
    for start in range(0, len(batch_ids), CHUNK):  # as the worker drains its queue
        done = service.run_batch(database, batch_ids[start : start + CHUNK], data_map=data_map, urls=urls)
        assert set(done.values()) == {"done"}, set(done.values())
    elapsed = time.perf_counter() - t0
    twins = [f"p{int(e[1:].split('@')[0]) + 1}@example.com" for e in batch_p]  # same people, tenant 8
    parallel = _parallel_batch(database, product_url, data_map, twins, workers)
    database.dispose()
    forget(product_url)
    return {
        "people": n,
        "rows": rows,
        "tables": len(T) - 1,
        "access_p50_ms": _p50(t_access),
        "erasure_p50_ms": _p50(t_erase),
        "erasures_per_s": round(len(batch_ids) / elapsed, 1),
        "access_ratio_to_sql": round(statistics.median(t_access) / statistics.median(t_sql_access), 2),
        "erasure_ratio_to_sql": round(statistics.median(t_erase) / statistics.median(t_sql_erase), 2),
        "sql_access_p50_ms": _p50(t_sql_access),
        "sql_erasure_p50_ms": _p50(t_sql_erase),
        "batch": len(batch_ids),
        f"erasures_per_s_{workers}_workers": parallel,
    }


def _pg_database(name: str, *, fresh: bool) -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists and fresh:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = None
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _remove_sqlite(url: str) -> None:
    path = Path(url.removeprefix("sqlite:///"))
    for extra in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + extra).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 people, 20 samples, 100 erasures")
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="also remove the generated product databases (kept by default for the next run)",
    )
    args = parser.parse_args()
    n = args.people or (20_000 if args.quick else 1_000_000)
    samples, batch = (20, 100) if args.quick else (50, 1000)
    folder = ROOT / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        stamp = int(time.time())
        if backend == "sqlite":
            vern_url = f"sqlite:///{folder / f'rights-vern-{stamp}.db'}"
            product_url = f"sqlite:///{folder / f'rights-product-{n}.db'}"
        else:
            vern_url = _pg_database(f"vern_bench_rights_vern_{stamp}", fresh=True)
            product_url = _pg_database(f"vern_bench_rights_product_{n}", fresh=False)
        try:
            results[backend] = run_backend(backend, vern_url, product_url, n, samples, batch)
        finally:  # Vern's database always goes; the product database only with --clean
            forget(product_url)
            if backend == "sqlite":
                _remove_sqlite(vern_url)
                if args.clean:
                    _remove_sqlite(product_url)
            else:
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(
                        text(f'DROP DATABASE IF EXISTS "vern_bench_rights_vern_{stamp}" WITH (FORCE)')
                    )
                    if args.clean:
                        conn.execute(
                            text(f'DROP DATABASE IF EXISTS "vern_bench_rights_product_{n}" WITH (FORCE)')
                        )
                admin.dispose()
        print(f"{backend}: {json.dumps(results[backend])}", file=sys.stderr)
    if args.quick:
        results["size"] = f"quick: {n:,} people, {results[next(iter(results))]['rows']:,} rows"
    print(json.dumps(results))


if __name__ == "__main__":
    main()
