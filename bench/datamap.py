# ruff: noqa: E501 - DDL and fixture rows of a fictional product, one per line
"""Benchmark of ``vern datamap scan``: how many of the personal columns does the draft find
(recall), and how many of the columns it calls personal are (precision)?

Two fictional products with hand-labelled truth sets:

* ``demo`` - the Lærbar learning platform (``vern/rights/demo.py``), labelled by its map: every
  field with a ``user.*`` category, except attributes that are personal only through the link to
  the person (an enrolment's date and grade, an invoice's amount and date, a sign-in's time);
* ``second`` - the Filmbua DVD rental shop (``vern/datamap/shop.py``, ``TRUTH``): upper-case names
  and e-mails, international addresses and phone numbers, payments partitioned by month on
  PostgreSQL, lookup tables for countries, cities, languages and categories.

A column counts as found personal when the draft gives it a ``user.*`` category. The products are
built on SQLite in a temporary directory, and on PostgreSQL (the partitioned shop) when it runs on
127.0.0.1:5432; ``--quick`` uses SQLite only. The last line is one JSON object.

    .venv/bin/python bench/datamap.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from vern.datamap import shop  # noqa: E402
from vern.datamap.loader import load_map  # noqa: E402
from vern.datamap.scan import scan  # noqa: E402
from vern.rights import demo  # noqa: E402

# Personal only through the link to the person (see the docstring).
DEMO_CONTEXTUAL = {
    "enrolments.enrolled_at",
    "enrolments.grade",
    "invoices.amount",
    "invoices.issued_at",
    "login_events.at",
}


# A third product, written after the detectors were tuned on the first two and not tuned for
# afterwards: a dental clinic's booking system. The clinics' own addresses and phones are business
# data, not personal.
HOLDOUT_DDL = [
    "CREATE TABLE clinics (id INTEGER PRIMARY KEY, title VARCHAR(80) NOT NULL, street_address VARCHAR(80),"
    " zip VARCHAR(10), city VARCHAR(40), phone VARCHAR(20))",
    "CREATE TABLE patients (id INTEGER PRIMARY KEY, given_name VARCHAR(60) NOT NULL, family_name VARCHAR(60)"
    " NOT NULL, mail VARCHAR(120), mobile VARCHAR(20), street VARCHAR(80), zip VARCHAR(10), town VARCHAR(40),"
    " born DATE, national_no VARCHAR(11), notes TEXT, created TIMESTAMP NOT NULL)",
    "CREATE TABLE dentists (id INTEGER PRIMARY KEY, full_name VARCHAR(100) NOT NULL, email VARCHAR(120),"
    " hpr_number INTEGER, clinic_id INTEGER NOT NULL REFERENCES clinics (id))",
    "CREATE TABLE treatments (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL, label VARCHAR(80) NOT NULL)",
    "CREATE TABLE appointments (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients (id),"
    " dentist_id INTEGER NOT NULL REFERENCES dentists (id), starts_at TIMESTAMP NOT NULL, reason TEXT,"
    " status VARCHAR(12) NOT NULL)",
    "CREATE TABLE appointment_treatments (appointment_id INTEGER NOT NULL REFERENCES appointments (id),"
    " treatment_id INTEGER NOT NULL REFERENCES treatments (id), PRIMARY KEY (appointment_id, treatment_id))",
    "CREATE TABLE invoices (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients (id),"
    " amount NUMERIC(10, 2) NOT NULL, paid_at TIMESTAMP, kid VARCHAR(25))",
    "CREATE TABLE portal_users (id INTEGER PRIMARY KEY, patient_id INTEGER NOT NULL REFERENCES patients (id),"
    " login VARCHAR(50) NOT NULL, pw_hash VARCHAR(100) NOT NULL, last_ip VARCHAR(45), mfa_secret VARCHAR(32))",
]
HOLDOUT_TRUTH = {
    "patients.id", "patients.given_name", "patients.family_name", "patients.mail", "patients.mobile",
    "patients.street", "patients.zip", "patients.town", "patients.born", "patients.national_no",
    "patients.notes", "dentists.id", "dentists.full_name", "dentists.email", "dentists.hpr_number",
    "appointments.patient_id", "appointments.dentist_id", "appointments.reason", "invoices.patient_id",
    "portal_users.id", "portal_users.patient_id", "portal_users.login", "portal_users.pw_hash",
    "portal_users.last_ip", "portal_users.mfa_secret",
}  # fmt: skip


def fill_holdout(engine: Engine) -> None:
    from datetime import date, datetime

    from vern.datamap.detectors import national_id_for

    first = ["Kari", "Ola", "Aisha", "Jonas", "Mette", "Ivan", "Lise", "Tomasz", "Nora", "Ali"]
    last = ["Nordmann", "Haugland", "Rahman", "Vik", "Solheim", "Petrov", "Aasen", "Nowak", "Lie", "Khan"]
    with engine.begin() as conn:
        for ddl in HOLDOUT_DDL:
            conn.execute(text(ddl))
        conn.execute(
            text(
                "INSERT INTO clinics VALUES (1, 'Tannhelse Sentrum', 'Kongens gate 14', '0153', 'Oslo', '22 33 44 55')"
            )
        )
        for i, (code, label) in enumerate([("K1", "Kontroll"), ("F2", "Fylling"), ("R3", "Rotfylling")]):
            conn.execute(
                text("INSERT INTO treatments VALUES (:i, :c, :l)"), {"i": i + 1, "c": code, "l": label}
            )
        for d in range(3):
            conn.execute(
                text("INSERT INTO dentists VALUES (:i, :n, :e, :h, 1)"),
                {
                    "i": d + 1,
                    "n": f"{first[d + 4]} {last[d + 2]}",
                    "e": f"tannlege{d}@example.com",
                    "h": 9100000 + d,
                },
            )
        for p in range(40):
            nid = next(
                n
                for k in range(100, 499)
                if (n := national_id_for(date(1950 + p, 1 + p % 12, 1 + p % 27), k))
            )
            conn.execute(
                text("INSERT INTO patients VALUES (:i, :g, :f, :m, :mob, :s, :z, :t, :b, :n, :notes, :c)"),
                {
                    "i": p + 1,
                    "g": first[p % 10],
                    "f": last[(p * 3) % 10],
                    "m": f"{first[p % 10].lower()}.{p}@example.com",
                    "mob": f"9{p:02d}{p:02d}{p:03d}"[:8],
                    "s": f"Fjordveien {p + 1}",
                    "z": f"{5000 + p:04d}",
                    "t": ["Bergen", "Voss", "Odda"][p % 3],
                    "b": date(1950 + p, 1 + p % 12, 1 + p % 27),
                    "n": nid,
                    "notes": "Tannlegeskrekk, trenger god tid." if p % 2 else None,
                    "c": datetime(2025, 1, 1),
                },
            )
            conn.execute(
                text("INSERT INTO appointments VALUES (:i, :i, :d, :s, :r, 'done')"),
                {
                    "i": p + 1,
                    "d": p % 3 + 1,
                    "s": datetime(2025, 3, 1 + p % 27, 9),
                    "r": "Vondt i en jeksel nede til venstre",
                },
            )
            conn.execute(
                text("INSERT INTO appointment_treatments VALUES (:i, :t)"), {"i": p + 1, "t": p % 3 + 1}
            )
            conn.execute(
                text("INSERT INTO invoices VALUES (:i, :i, 850, NULL, :k)"),
                {"i": p + 1, "k": f"{p:04d}12345678"},
            )
            conn.execute(
                text("INSERT INTO portal_users VALUES (:i, :i, :l, :h, :ip, :mfa)"),
                {
                    "i": p + 1,
                    "l": f"{first[p % 10].lower()}{p}",
                    "h": f"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ${p:043d}",
                    "ip": f"198.51.100.{p + 1}",
                    "mfa": "JBSWY3DPEHPK3PXP",
                },
            )


def demo_truth() -> set[str]:
    data_map = load_map(demo.map_text())
    found = set()
    for tname, table in data_map.database("main").tables.items():
        for fname, f in table.fields.items():
            if f.personal and f"{tname}.{fname}" not in DEMO_CONTEXTUAL:
                found.add(f"{tname}.{fname}")
    return found


def predicted(engine: Engine) -> set[str]:
    draft = scan(engine)
    tables = draft["systems"]["product"]["databases"]["main"]["tables"]
    return {
        f"{t}.{c}"
        for t, body in tables.items()
        for c, f in body["fields"].items()
        if str(f["category"]).startswith("user.")
    }


def score(truth: set[str], found: set[str]) -> dict[str, Any]:
    hits = truth & found
    return {
        "recall": round(len(hits) / len(truth), 3) if truth else 1.0,
        "precision": round(len(hits) / len(found), 3) if found else 1.0,
        "personal": len(truth),
        "missed": sorted(truth - found),
        "wrong": sorted(found - truth),
    }


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        demo.create_product(engine)
        demo.fill(engine, ["skole-a", "skole-b"], people_per_tenant=30)
        started = time.perf_counter()
        results["demo"] = score(demo_truth(), predicted(engine)) | {"backend": "sqlite"}
        results["demo"]["seconds"] = round(time.perf_counter() - started, 3)
        engine.dispose()
        engine = create_engine(f"sqlite:///{Path(tmp) / 'shop.db'}")
        shop.create_product(engine)
        shop.fill(engine)
        started = time.perf_counter()
        results["second"] = score(set(shop.TRUTH), predicted(engine)) | {"backend": "sqlite"}
        results["second"]["seconds"] = round(time.perf_counter() - started, 3)
        engine.dispose()
        engine = create_engine(f"sqlite:///{Path(tmp) / 'clinic.db'}")
        fill_holdout(engine)
        results["holdout"] = score(HOLDOUT_TRUTH, predicted(engine)) | {"backend": "sqlite"}
        engine.dispose()
    if not quick and _pg_up():
        name = f"vern_bench_scan_{uuid.uuid4().hex[:8]}"
        admin = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
            shop.create_product(engine)
            shop.fill(engine)
            started = time.perf_counter()
            results["second_postgresql"] = score(set(shop.TRUTH), predicted(engine)) | {
                "backend": "postgresql"
            }
            results["second_postgresql"]["seconds"] = round(time.perf_counter() - started, 3)
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only")
    args = parser.parse_args()
    results = run(args.quick)
    for name, r in results.items():
        print(
            f"{name} ({r['backend']}): recall {r['recall']}, precision {r['precision']} "
            f"of {r['personal']} personal columns; missed {r['missed']}; wrong {r['wrong']}"
        )
    print(json.dumps(results | {"quick": args.quick}, ensure_ascii=False))


if __name__ == "__main__":
    main()
