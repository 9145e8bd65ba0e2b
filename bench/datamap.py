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
