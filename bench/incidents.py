"""Benchmark of the posture page and the breach clocks page over HTTP.

A vendor with 500 customers (each with an administrator) and 50 breaches, each affecting 10
customers (500 customer clocks) and, for one in five, the vendor's own 72-hour clock to
Datatilsynet; awareness times spread over the last 80 hours so that clocks are running, due
soon and overdue. 200 open internal control tasks of the vendor (``vern.control``), a quarter of
them overdue, owned by the signed-in security officer.

One uvicorn process on 127.0.0.1 serves Vern over SQLite; an httpx client with a signed-in
security officer's session (one keep-alive connection) asks for ``/console/posture`` and
``/console/incidents/clocks`` one after the other, and the p99 of each is reported. The last
line is one JSON object with ``posture_p99_ms`` and ``breach_clocks_p99_ms`` (goal: 100 ms).

    .venv/bin/python bench/incidents.py            # 2,000 requests per page
    .venv/bin/python bench/incidents.py --quick    # 300 requests per page, under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The server's settings: development secrets (nothing here is real), data under a temporary
# directory; setup writes with the same secrets, so the server reads and seals what it wrote.
os.environ["VERN_ENV"] = "dev"

CUSTOMERS = 500
BREACHES = 50
PER_BREACH = 10
CONTROL_TASKS = 200


def server_app() -> Any:
    from vern.app.web import create_app
    from vern.core.config import Settings
    from vern.core.db import Database

    settings = Settings(env="dev", database_url=os.environ["BENCH_DB_URL"],
                        rate_limit_api="100000000/minute",
                        base_url=os.environ["BENCH_BASE_URL"],
                        audit_log_dir=Path(os.environ["BENCH_TMP"]) / "audit")
    return create_app(settings, Database(settings.database_url))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db_url: str, tmp: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_DB_URL": db_url, "BENCH_TMP": tmp,
           "BENCH_BASE_URL": f"http://127.0.0.1:{port}", "VERN_ENV": "dev"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "incidents:server_app", "--factory", "--app-dir",
         str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
         "--log-level", "warning", "--loop", "uvloop", "--http", "httptools", "--lifespan", "on"],
        env=env, cwd=str(ROOT))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def _seed_control(database: Any, vendor_id: str, owner_id: str, n: int) -> int:
    """``n`` open control tasks of the vendor, due from 60 days ago to 120 days ahead."""
    from datetime import date

    from vern.control import service as control

    today = date.today()
    recurrences = ("yearly", "quarterly", "monthly")
    specs = [(f"Kontroll {i:03d}", recurrences[i % 3], today + timedelta(days=(i * 7) % 180 - 60))
             for i in range(n)]
    return len(control.create_tasks(database, vendor_id, owner_id, specs))


def setup(db_url: str) -> dict[str, Any]:
    from vern.accounts import service as accounts
    from vern.accounts.roles import OrgKind, Role, permissions
    from vern.accounts.service import Actor
    from vern.core.config import Settings
    from vern.core.crypto import KeyRing, install_keyring
    from vern.core.db import Database, Scope, utcnow
    from vern.incidents import service

    database = Database(db_url)
    database.create_all()
    settings = Settings(env="dev", database_url=db_url)
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    rng = random.Random(17)
    now = utcnow()
    with database.transaction(Scope.system("bench setup")) as session:
        vendor = accounts.create_organisation(session, name="Solstrand Læring AS",
                                              slug="solstrand", kind=OrgKind.VENDOR, actor=None)
        dave = accounts.create_user(session, settings, email="dag.dahle@solstrand.example.com",
                                    name="Dag Dahle", org_id=vendor.id,
                                    role=Role.SECURITY_OFFICER.value, password=None, actor=None)
        customers = []
        for i in range(CUSTOMERS):
            org = accounts.create_organisation(session, name=f"Kunde {i:03d} barnehage",
                                               slug=f"kunde-{i:03d}", kind=OrgKind.TENANT,
                                               actor=None)
            accounts.create_user(session, settings, email=f"admin.{i:03d}@kunde.example.com",
                                 name=f"Admin {i:03d}", org_id=org.id,
                                 role=Role.TENANT_ADMIN.value, password=None, actor=None)
            customers.append(org.id)
        actor = Actor(org_id=vendor.id, org_kind=OrgKind.VENDOR, role=Role.SECURITY_OFFICER,
                      user_id=dave.id, perms=permissions(Role.SECURITY_OFFICER,
                                                         org_kind=OrgKind.VENDOR, home=True))
        for b in range(BREACHES):
            aware = now - timedelta(hours=rng.uniform(0, 80))
            data = service.IncidentInput(
                title=f"Brudd {b:02d}", personal_data=True, aware_at=aware,
                discovered_at=aware - timedelta(minutes=30), what_happened="Feilsendt liste.",
                subject_categories=["barn"], subjects_approx=40, data_categories=["navn"],
                records_approx=80, consequences="Navn kjent.", measures_taken="Slettet.",
                contact="personvern@solstrand.example.com", vendor_is_controller=b % 5 == 0)
            inc = service.register(session, actor, data, rng.sample(customers, PER_BREACH))
            if b % 3 == 0:  # a third of them notified already
                service.send_notices(session, actor, inc.id, base_url="http://127.0.0.1")
        dave.mfa_enabled_at = dave.password_changed_at = now  # signed in with both steps
        token, auth = accounts.start_session(session, user_id=dave.id, org_id=vendor.id)
        auth.mfa_verified = True
        csrf = auth.csrf_token
    control = _seed_control(database, vendor.id, dave.id, CONTROL_TASKS)
    database.dispose()
    return {"cookie": token, "csrf": csrf, "control_tasks": control}


def measure(client: Any, path: str, n: int) -> list[float]:
    for _ in range(20):  # warm up: templates compiled, statements cached
        assert client.get(path).status_code == 200
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = client.get(path)
        times.append(time.perf_counter() - t0)
        assert res.status_code == 200, res.status_code
    return times


def p99(times: list[float]) -> float:
    return round(statistics.quantiles(times, n=100)[98] * 1000, 2)


def p50(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VERN_DATA_DIR"] = tmp
        db_url = f"sqlite:///{tmp}/vern.db"
        t0 = time.perf_counter()
        ids = setup(db_url)
        setup_s = round(time.perf_counter() - t0, 1)
        port = free_port()
        server = start_server(db_url, tmp, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              cookies={"vern_session": ids["cookie"]},
                              headers={"Accept-Language": "nb"}, timeout=30) as client:
                page = client.get("/console/posture")
                assert page.status_code == 200 and "Brudd #" in page.text, page.status_code
                items = len(client.get("/api/v1/posture").json()["items"])
                clocks = len(client.get("/api/v1/incidents/clocks").json()["clocks"])
                posture = measure(client, "/console/posture", n)
                breach_clocks = measure(client, "/console/incidents/clocks", n)
                api_posture = measure(client, "/api/v1/posture", n // 3)
                # The floor: the console's start page for the same person (layout, session,
                # the organisation switcher with every customer), with nothing of this domain.
                baseline = measure(client, "/console", n // 3)
        finally:
            server.terminate()
            server.wait(30)
    details = {"customers": CUSTOMERS, "breaches": BREACHES, "clocks": clocks,
               "posture_items": items, "requests_per_page": n, "setup_s": setup_s,
               "posture_p50_ms": p50(posture), "breach_clocks_p50_ms": p50(breach_clocks),
               "api_posture_p99_ms": p99(api_posture), "console_start_page_p50_ms": p50(baseline),
               "console_start_page_p99_ms": p99(baseline)}
    print("details:", json.dumps(details, ensure_ascii=False))
    print(json.dumps({"posture_p99_ms": p99(posture), "breach_clocks_p99_ms": p99(breach_clocks),
                      "control_tasks": ids["control_tasks"], "quick": args.quick,
                      "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}))


if __name__ == "__main__":
    main()
