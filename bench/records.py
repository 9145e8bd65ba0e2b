"""Benchmark of the records of processing and the agreement as documents.

    .venv/bin/python bench/records.py [--quick]

A vendor with 500 customers (each with an administrator, whose address is the controller's
contact in the record), 40 sub-processors (4 of them processing outside the EU/EEA under standard
contractual clauses), the seed documents' measures catalogue, both officers, the product data map
of the rights demo and six processing activities of its own, in a SQLite database under a
temporary directory. Timed, each the median of several warm runs:

1. ``record_pdf_s``: the whole record of processing (Art. 30(1) and 30(2), every controller) as a
   PDF, exactly as ``vern records export --format pdf`` makes it (assembly, Jinja, WeasyPrint).
2. ``dpa_pdf_s``: one customer's data processing agreement with its annexes as a PDF.
3. ``record_json_all_s``: every customer's processor record as JSON
   (``vern records export --controller customers``).

--quick builds the same vendor and takes fewer runs. Goals: each PDF <= 2 s, the JSON <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Development secrets: nothing here is real.
os.environ.setdefault("VERN_ENV", "dev")

CUSTOMERS, SUBPROCESSORS = 500, 40


def build(directory: Path) -> tuple[object, str, str]:
    from vern.accounts import service as accounts
    from vern.accounts.roles import OrgKind
    from vern.consent import service as consent
    from vern.core.config import get_settings
    from vern.core.crypto import KeyRing, install_keyring
    from vern.core.db import Database, Scope
    from vern.datamap.service import publish_map
    from vern.records import service as records
    from vern.rights import demo
    from vern.vendor import service as vendor

    os.environ["VERN_DATABASE_URL"] = f"sqlite:///{directory / 'records.db'}"
    os.environ["VERN_AUDIT_LOG_DIR"] = str(directory / "audit")
    os.environ["VERN_DATA_DIR"] = str(directory / "data")
    get_settings.cache_clear()
    settings = get_settings()
    database = Database(settings.database_url)
    database.create_all()
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    with database.transaction(Scope.system("bench vendor")) as session:
        org = accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                           kind=OrgKind.VENDOR, actor=None)
        vendor_id = org.id
        vendor.set_officer(session, role="dpo", name="Dina Personvern",
                           email="personvern@solstrand.example.com", actor_user_id=None)
        vendor.set_officer(session, role="security", name="Sverre Sikker",
                           email="sikkerhet@solstrand.example.com", actor_user_id=None)
        vendor.seed_measures(session, actor_user_id=None)
        for i in range(SUBPROCESSORS):
            outside = i % 10 == 9
            vendor.save_subprocessor(session, vendor.SubprocessorInput(
                key=f"leverandor-{i:02d}", name=f"Leverandør {i:02d} AS", service="Drift og støtte",
                data_categories=("user.name", "user.contact.email"),
                storage_locations=("NO",), processing_locations=("US",) if outside else ("SE",),
                transfer_mechanism="scc" if outside else None, status="active"),
                actor_user_id=None)
    first = ""
    for i in range(CUSTOMERS):
        with database.transaction(Scope.system("bench customer")) as session:
            tenant = accounts.create_organisation(session, name=f"Barnehage {i:03d}",
                                                  slug=f"barnehage-{i:03d}", kind=OrgKind.TENANT,
                                                  actor=None)
            accounts.create_user(session, settings, email=f"styrer{i:03d}@barnehage.example.com",
                                 name=f"Styrer {i:03d}", org_id=tenant.id, role="tenant_admin",
                                 password=None, actor=None)
            first = first or tenant.id
    with database.transaction(Scope.tenant(vendor_id)) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")
        for key, basis in (("website", "f"), ("newsletter", "a"), ("crm", "f"), ("support", "b"),
                           ("recruitment", "b"), ("invoicing", "c")):
            consent.create_purpose(session, org_id=vendor_id, actor_user_id=None,
                                   data=consent.PurposeInput(key, "other", basis, key.title(),
                                                             key.title(), retention="2 years"))
            records.create_entry(session, org_id=vendor_id, actor_user_id=None,
                                 data=records.EntryInput(key, key.title(), key.title(),
                                                         purpose_keys=(key,), subjects=("customer_contacts",),
                                                         own_tables=("users",)))
    return database, vendor_id, first


CPU: dict[str, float] = {}


def timed(name: str, fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median wall time of ``runs`` warm runs; the median CPU time of this process is kept too
    (on a shared machine the wall time includes waiting for a core)."""
    result = fn()  # warm
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU[name] = round(statistics.median(cpu), 3)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs = 2 if args.quick else 7
    from vern.core.db import Scope
    from vern.records import documents, render

    with tempfile.TemporaryDirectory(prefix="vern-bench-records-") as tmp:
        started = time.perf_counter()
        database, _vendor_id, customer = build(Path(tmp))
        print(f"built {CUSTOMERS} customers, {SUBPROCESSORS} sub-processors in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)

        record_pdf_s, pdf = timed("record_pdf_cpu_s", lambda: documents.export(
            database, controller="vendor", fmt="pdf", locale="nb"), runs)

        def dpa() -> bytes:
            with database.transaction(Scope.tenant(customer)) as session:  # type: ignore[attr-defined]
                html = documents.dpa_html(session, org_id=customer, version=1)[0]
            return render.pdf(html)

        dpa_pdf_s, dpa_pdf = timed("dpa_pdf_cpu_s", dpa, runs)
        record_json_all_s, data = timed("record_json_all_cpu_s", lambda: documents.export(
            database, controller="customers", fmt="json", locale="nb"), runs)
        assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
        assert isinstance(dpa_pdf, bytes) and dpa_pdf.startswith(b"%PDF")
        assert isinstance(data, bytes) and len(json.loads(data)["controllers"]) == CUSTOMERS
        database.dispose()  # type: ignore[attr-defined]
    print(f"record PDF {len(pdf) // 1024} KiB, DPA PDF {len(dpa_pdf) // 1024} KiB, "
          f"JSON {len(data) // 1024} KiB, median of {runs} warm runs"
          + (" (quick)" if args.quick else ""), file=sys.stderr)
    print(json.dumps({"quick": args.quick, "customers": CUSTOMERS, "subprocessors": SUBPROCESSORS,
                      "record_pdf_s": round(record_pdf_s, 3), "dpa_pdf_s": round(dpa_pdf_s, 3),
                      "record_json_all_cpu_s": CPU["record_json_all_cpu_s"],
                      "record_pdf_cpu_s": CPU["record_pdf_cpu_s"], "dpa_pdf_cpu_s": CPU["dpa_pdf_cpu_s"],
                      "record_json_all_s": round(record_json_all_s, 3)}))


if __name__ == "__main__":
    main()
