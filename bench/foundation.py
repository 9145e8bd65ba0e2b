"""Benchmark of the foundation: sign-in latency and authenticated ``GET /api/v1/me`` throughput.

For each backend (SQLite in a temporary directory, PostgreSQL in a database of its own, created
and dropped here) it creates the schema and one tenant member without MFA, starts Vern with
uvicorn on 127.0.0.1 (one worker process, a free port, in a subprocess) and measures over real
HTTP:

* sign-in: ``POST /api/v1/session`` one after another, with the configured Argon2id parameters
  (``VERN_ARGON2_*``; the defaults are OWASP's minimum), as p50 and p99 in milliseconds;
* ``GET /api/v1/me`` with the session cookie: a few concurrent keep-alive clients (httpx) for a
  bounded time or count, as requests per second.

The last line is one JSON object::

    {"sqlite": {"signin_p50_ms": …, "signin_p99_ms": …, "me_requests_per_s": …},
     "postgresql": {…}}

    .venv/bin/python bench/foundation.py            # 200 sign-ins, 20 s of /me per backend
    .venv/bin/python bench/foundation.py --quick    # under a minute in all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VERN_ENV", "dev")  # known development secrets; nothing here is real

from vern.accounts import service as accounts  # noqa: E402
from vern.accounts.roles import OrgKind  # noqa: E402
from vern.core.config import Settings  # noqa: E402
from vern.core.crypto import KeyRing, install_keyring  # noqa: E402
from vern.core.db import Database, Scope, import_models  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EMAIL = "bjorn.bakken@fjellheim.example.com"
PASSWORD = "Blåbærsyltetøy på vaffel"


@contextmanager
def sqlite_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'vern.db'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (as tests/services.py does)."""
    from sqlalchemy import create_engine, text

    name = f"vern_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def prepare(url: str, env: dict[str, str]) -> None:
    """Schema, one vendor, one tenant and a member without MFA (password hashed for real)."""
    import_models()
    settings = Settings(**{k[5:].lower(): v for k, v in env.items() if k.startswith("VERN_")})
    database = Database(url)
    database.create_all()
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    with database.transaction(Scope.system("benchmark data")) as session:
        accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
        tenant = accounts.create_organisation(session, name="Fjellheim barnehage",
                                              slug="fjellheim", kind=OrgKind.TENANT, actor=None)
        accounts.create_user(session, settings, email=EMAIL, name="Bjørn Bakken",
                             org_id=tenant.id, role="member", password=PASSWORD, actor=None)
    database.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "vern.app.web:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure_signin(base: str, count: int) -> list[float]:
    timings = []
    with httpx.Client(base_url=base) as client:
        for _ in range(3):  # warm-up: imports, first connections, hasher set-up
            client.post("/api/v1/session", json={"email": EMAIL, "password": PASSWORD})
        for _ in range(count):
            started = time.perf_counter()
            res = client.post("/api/v1/session", json={"email": EMAIL, "password": PASSWORD})
            timings.append((time.perf_counter() - started) * 1000)
            if res.status_code != 200:
                raise RuntimeError(f"sign-in failed: {res.status_code} {res.text}")
            client.cookies.clear()
    return timings


async def measure_me(base: str, clients: int, seconds: float, max_requests: int) -> float:
    with httpx.Client(base_url=base) as signin:
        res = signin.post("/api/v1/session", json={"email": EMAIL, "password": PASSWORD})
        res.raise_for_status()
        cookies = dict(signin.cookies)
    done = 0
    stop_at = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop_at and done < max_requests:
            res = await client.get("/api/v1/me")
            if res.status_code != 200:
                raise RuntimeError(f"/api/v1/me failed: {res.status_code} {res.text}")
            done += 1

    limits = httpx.Limits(max_keepalive_connections=clients, max_connections=clients)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, limits=limits) as client:
        for _ in range(20):  # warm-up
            (await client.get("/api/v1/me")).raise_for_status()
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed


def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vern-bench-") as tmp_name:
        tmp = Path(tmp_name)
        maker = sqlite_url(tmp) if name == "sqlite" else postgres_url()
        with maker as url:
            env = {
                "VERN_ENV": "dev",
                "VERN_DATABASE_URL": url,
                "VERN_AUDIT_LOG_DIR": str(tmp / "audit"),
                "VERN_RATE_LIMIT_SIGNIN": "1000000/minute",
                "VERN_RATE_LIMIT_API": "100000000/minute",
            }
            prepare(url, env)
            with server(env) as base:
                timings = measure_signin(base, args.signins)
                rate = asyncio.run(measure_me(base, args.clients, args.seconds, args.max_me))
    result = {
        "signin_p50_ms": round(statistics.median(timings), 1),
        "signin_p99_ms": round(percentile(timings, 0.99), 1),
        "me_requests_per_s": round(rate, 1),
    }
    print(f"{name}: {len(timings)} sign-ins, {args.clients} clients on /me: {result}",
          file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, under a minute")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--clients", type=int, default=4, help="concurrent /me clients")
    args = parser.parse_args()
    args.signins = 40 if args.quick else 200
    args.seconds = 5.0 if args.quick else 20.0
    args.max_me = 20_000 if args.quick else 200_000
    results: dict[str, Any] = {}
    for name in args.backends.split(","):
        if name == "postgresql" and not postgres_reachable():
            print("postgresql: not reachable on 127.0.0.1:5432, skipped", file=sys.stderr)
            continue
        results[name] = run_backend(name, args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
