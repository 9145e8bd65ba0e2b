"""Benchmark of the vendor registry's widest write: an Art. 28(2) notice of a new sub-processor
to every customer, on SQLite (a file, WAL) and PostgreSQL (127.0.0.1, a database of its own,
dropped afterwards).

``vern.vendor.service.save_subprocessor`` for a sub-processor serving all customers, each with a
registered privacy contact (sealed under its own key), in one transaction: the register row, one
notice row and one audit record per customer, the contacts read in batches and opened, and one
mail per contact sealed into the outbox (delivery is not timed). Also the read the records and
trust pages use: ``list_subprocessors`` with 40 sub-processors.

    .venv/bin/python bench/vendor.py            # 2,000 customers
    .venv/bin/python bench/vendor.py --quick    # 500 customers, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VERN_ENV", "test")
os.environ.setdefault("VERN_DATA_DIR", tempfile.mkdtemp(prefix="vern-bench-vendor-"))


@contextmanager
def _database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'vendor.db'}"
        return
    from tests.services import postgres_database

    with postgres_database("vern_bench_vendor") as url:
        yield url


def _run(url: str, tmp: Path, customers: int) -> dict[str, float]:
    from tests.conftest import make_settings
    from vern.accounts import service as accounts
    from vern.accounts.roles import OrgKind
    from vern.core.crypto import KeyRing, install_keyring
    from vern.core.db import Database, Scope, import_models
    from vern.vendor import service as vendor

    import_models()
    db = Database(url)
    db.create_all()
    install_keyring(KeyRing(db.engine, make_settings(url, tmp).master_key_bytes))
    with db.transaction(Scope.system("bench")) as s:
        accounts.create_organisation(s, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
        for i in range(customers):
            org = accounts.create_organisation(s, name=f"Kunde {i}", slug=f"kunde-{i}",
                                               kind=OrgKind.TENANT, actor=None)
            vendor.add_contact(s, org.id, kind="privacy", name=f"Kontakt {i}",
                               email=f"personvern{i}@kunde{i}.example.com", actor_user_id=None)
    start = time.perf_counter()
    with db.transaction(Scope.system("bench")) as s:
        _, told = vendor.save_subprocessor(s, vendor.SubprocessorInput(
            key="drift", name="Fjordhall Drift AS", service="Drift av datasenter",
            data_categories=("user.name", "user.contact.email"), storage_locations=("NO",),
            processing_locations=("SE",)), actor_user_id=None)
    fanout = time.perf_counter() - start
    assert told == customers
    with db.transaction(Scope.system("bench")) as s:
        first = accounts.list_tenants(s)[0].id
        for i in range(39):  # 40 in all, each serving one customer (one notice each)
            vendor.save_subprocessor(s, vendor.SubprocessorInput(
                key=f"sub-{i}", name=f"Underleverandør {i}", service="Tjeneste",
                data_categories=("user.name",), storage_locations=("DE",),
                processing_locations=("US",), transfer_mechanism="scc",
                all_customers=False, customer_ids=(first,)), actor_user_id=None)
    start = time.perf_counter()
    with db.transaction(Scope.system("bench")) as s:
        listed = vendor.list_subprocessors(s)
    read = time.perf_counter() - start
    assert len(listed) == 40
    db.dispose()
    return {"notice_all_customers_s": round(fanout, 3),
            "per_customer_ms": round(fanout * 1000 / customers, 2),
            "list_subprocessors_40_ms": round(read * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 customers instead of 2,000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    customers = 500 if args.quick else 2000
    result: dict[str, object] = {"quick": args.quick, "customers": customers}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="vern-bench-vendor-") as tmp, \
                _database(backend, Path(tmp)) as url:
            figures = _run(url, Path(tmp), customers)
        for key, value in figures.items():
            result[f"{backend}_{key}"] = value
        print(f"{backend}: {figures}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
