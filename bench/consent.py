"""Benchmark of consent and statistics hot paths.

    .venv/bin/python bench/consent.py [--quick]

1. Beacon ingest over HTTP on loopback: one uvicorn process (httptools, uvloop, no access log)
   serving Vern with its full middleware, and on the same server a minimal ASGI endpoint that
   reads the body and answers 204. The load generator is wrk (``apt-get install wrk``: C, one
   thread, 32 keep-alive connections, so it costs the server's core nothing), else an asyncio
   generator in this process; both targets get the same requests for the same time in the same
   run, and the ratio compares the two. Every beacon is valid and different (path, visitor);
   stored and rolled-up page views are counted afterwards.
2. A 30-day report over 10,000,000 page views that are really in the database (SQLite): 333,334
   a day in visits of 1-8 pages, 2,000 pages, 300 referrers and the usual browsers, systems and
   devices, turned into raw events, visits and roll-ups by the ingest's own ``rollup.plan`` (in a
   second process, one day ahead) and written with ``rollup.write`` (visits, roll-ups) and the
   driver's ``executemany`` (raw events); secondary indexes are built once at the end; stored
   events, visits, rolled-up page views and the report's totals are checked against each other
   before the report is timed (median of 6 warm runs). The database (5 GB) is removed after.
3. Consent check: in process (``LocalConsent``) and over HTTP (the SDK's ``ConsentClient``
   against the server above, API token, one keep-alive connection), p99 of sequential calls.
4. Banner: gzipped size (script + style), and in Chromium the time from the script's request to
   the banner shown (median of 5 fresh pages).

--quick shortens every phase (and uses fewer report events) and says so in the output.
--no-request-audit (diagnostic) serves without the per-request audit record, to show its share.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Development secrets, as the server process the benchmark starts uses them; nothing here is real.
os.environ.setdefault("VERN_ENV", "dev")

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 bench/{n}"


# -- the server process --------------------------------------------------------------------------


def server_app() -> Any:
    """Vern plus a bare 204 endpoint at /bare and a host page at /host, in one ASGI app."""
    from vern.app.web import create_app
    from vern.core.config import Settings
    from vern.core.db import Database

    if os.environ.get("BENCH_NO_REQUEST_AUDIT") == "1":
        # Diagnostic only (--no-request-audit): shows what the per-request audit record costs.
        import vern.audit.service as audit_service

        audit_service.record_request = None  # type: ignore[assignment]
    settings = Settings(env="dev", database_url=os.environ["BENCH_DB_URL"],
                        rate_limit_api="100000000/minute",
                        base_url=os.environ["BENCH_BASE_URL"],
                        audit_log_dir=Path(os.environ["BENCH_TMP"]) / "audit")
    vern = create_app(settings, Database(settings.database_url))
    page = (b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>host</title>'
            b'<script src="/c/vern-consent.js" data-org="fjellheim"></script></head>'
            b"<body><h1>Fjellheim</h1></body></html>")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare":
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "http" and scope["path"] == "/host":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": page})
            return
        await vern(scope, receive, send)

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db_url: str, tmp: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_DB_URL": db_url, "BENCH_TMP": tmp,
           "BENCH_BASE_URL": f"http://127.0.0.1:{port}", "VERN_ENV": "dev"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "consent:server_app", "--factory", "--app-dir",
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


# -- setup ---------------------------------------------------------------------------------------


def setup(db_url: str) -> dict[str, str]:
    from datetime import timedelta as td

    from vern.accounts import security
    from vern.accounts import service as accounts
    from vern.accounts.models import ApiToken
    from vern.accounts.roles import OrgKind, Role
    from vern.consent import service as consent
    from vern.core.config import Settings
    from vern.core.crypto import KeyRing, install_keyring
    from vern.core.db import Database, Scope, utcnow
    from vern.stats import service as stats

    settings = Settings(env="dev", database_url=db_url)
    database = Database(db_url)
    database.create_all()
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    with database.transaction(Scope.system("bench setup")) as session:
        org = accounts.create_organisation(session, name="Fjellheim barnehage", slug="fjellheim",
                                           kind=OrgKind.TENANT, actor=None)
        org_id = org.id
    token = security.new_token("vt")
    with database.transaction(Scope.tenant(org_id)) as session:
        for key, kind, basis in (("necessary", "necessary", "f"), ("statistics", "statistics", "a"),
                                 ("marketing", "marketing", "a")):
            consent.create_purpose(session, org_id=org_id, actor_user_id=None, data=consent.PurposeInput(
                key, kind, basis, key.title(), key.title(), in_banner=kind != "necessary",
                cookies=({"name": "_" + key},)))
        consent.publish_notice(session, org_id=org_id, kind="cookie", title_nb="Informasjonskapsler",
                               title_en="Cookies", body_nb="Tekst", body_en="Text", actor_user_id=None)
        site = stats.create_site(session, org_id=org_id, name="Nettsiden",
                                 domain="www.fjellheim.example.com", actor_user_id=None)
        site_id = site.id
        session.add(ApiToken(org_id=org_id, name="bench", prefix=token[:10],
                             token_hash=security.token_hash(token), role=Role.TENANT_ADMIN.value,
                             expires_at=utcnow() + td(days=1)))
        for i in range(1000):
            consent.record_choices(session, org_id=org_id, subject=f"bench-subject-{i:05d}",
                                   method="api", notice=1,
                                   choices=[consent.Choice("statistics", "granted" if i % 2 else "denied"),
                                            consent.Choice("marketing", "denied")])
    database.dispose()
    return {"org_id": org_id, "site_id": site_id, "token": token}


# -- load generator ------------------------------------------------------------------------------


async def _load(port: int, path: str, make_body: Any, conns: int, seconds: float) -> tuple[int, int]:
    stop = time.perf_counter() + seconds
    ok = bad = 0

    async def worker(w: int) -> None:
        nonlocal ok, bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.perf_counter() < stop:
            body, ua = make_body(w, n)
            n += 1
            writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: text/plain\r\nUser-Agent: " + ua.encode() +
                         b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                length = int(lower[at + 15:lower.find(b"\r\n", at)].strip())
                if length:
                    await reader.readexactly(length)
            if head[9:12] == b"204":
                ok += 1
            else:
                bad += 1
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(conns)))
    return ok, bad


def load(port: int, path: str, make_body: Any, conns: int, seconds: float) -> tuple[float, int]:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    started = time.perf_counter()
    ok, bad = runner(_load(port, path, make_body, conns, seconds))
    return ok / (time.perf_counter() - started), bad


WRK_SCRIPT = """
local bodies = {%(bodies)s}
local path = "%(path)s"
local vary = %(vary)s
math.randomseed(%(seed)d)
request = function()
  local i = 1
  local ua = "%(ua)s"
  if vary then
    i = math.random(#bodies)
    ua = ua .. math.random(5000)
  end
  return wrk.format("POST", path, {["Content-Type"] = "text/plain", ["User-Agent"] = ua}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d\\n", summary.requests, e.status,
                         e.connect + e.read + e.write + e.timeout, summary.duration))
end
"""


def wrk_load(port: int, path: str, bodies: list[bytes], *, vary: bool, conns: int,
             seconds: float, tmp: str) -> tuple[float, int]:
    """wrk (C, one thread, keep-alive) as the load generator: it costs the server's core nothing,
    so the bare endpoint's figure is the server's and not the generator's."""
    script = Path(tmp) / f"wrk-{path.strip('/').replace('/', '-')}.lua"
    script.write_text(WRK_SCRIPT % {
        "bodies": ", ".join(json.dumps(b.decode()) for b in bodies), "path": path,
        "vary": "true" if vary else "false", "seed": 7, "ua": FIREFOX.format(n=""),
    })
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds:.0f}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    requests, bad_status, socket_errors, duration_us = (int(x) for x in line.split()[1:])
    return (requests - bad_status) / (duration_us / 1e6), bad_status + socket_errors


def bench_ingest(port: int, site_id: str, seconds: float, tmp: str) -> dict[str, Any]:
    rng = random.Random(7)
    pages = [f"/side/{i}" for i in range(200)]
    bodies = [json.dumps({"s": site_id, "u": p, "r": "https://www.google.com/"}).encode()
              for p in pages]
    if shutil.which("wrk"):
        load(port, "/bare", lambda w, n: (bodies[0], FIREFOX.format(n=0)), 8, 1.0)  # warm-up
        wrk_load(port, "/s/e", bodies, vary=True, conns=32, seconds=1, tmp=tmp)
        bare_rate, _ = wrk_load(port, "/bare", bodies, vary=False, conns=32, seconds=seconds, tmp=tmp)
        ingest_rate, bad = wrk_load(port, "/s/e", bodies, vary=True, conns=32, seconds=seconds,
                                    tmp=tmp)
        return {"bare_per_s": round(bare_rate), "ingest_per_s": round(ingest_rate),
                "ingest_errors": bad, "load_generator": "wrk -t1 -c32"}

    def beacon(w: int, n: int) -> tuple[bytes, str]:
        return bodies[rng.randrange(len(bodies))], FIREFOX.format(n=rng.randrange(5000))

    def bare(w: int, n: int) -> tuple[bytes, str]:
        return bodies[0], FIREFOX.format(n=0)

    load(port, "/bare", bare, 16, 1.0)  # warm-up
    load(port, "/s/e", beacon, 16, 1.0)
    bare_rate, _ = load(port, "/bare", bare, 32, seconds)
    ingest_rate, bad = load(port, "/s/e", beacon, 32, seconds)
    return {"bare_per_s": round(bare_rate), "ingest_per_s": round(ingest_rate), "ingest_errors": bad,
            "load_generator": "python asyncio, 32 connections (install wrk for a fairer bare figure)"}


def bench_http_check(port: int, token: str, n: int) -> float:
    from vern.sdk import ConsentClient

    client = ConsentClient(f"http://127.0.0.1:{port}", token)
    answers = [client.may_use(f"bench-subject-{i:05d}", "statistics") for i in range(100)]
    assert answers == [i % 2 == 1 for i in range(100)] and client.failures == 0, "wrong answers"
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        client.may_use(f"bench-subject-{i % 1000:05d}", "statistics")
        times.append(time.perf_counter() - t0)
    client.close()
    return p99(times, "consent_check_http_p50_ms")


def bench_local_check(db_url: str, org_id: str, n: int) -> float:
    from vern.consent.sdk import LocalConsent
    from vern.core.db import Database

    database = Database(db_url)
    sdk = LocalConsent(database, org_id)
    answers = [sdk.may_use(f"bench-subject-{i:05d}", "statistics") for i in range(200)]
    assert answers.count(True) == 100, "wrong answers"
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        sdk.may_use(f"bench-subject-{i % 1000:05d}", "statistics")
        times.append(time.perf_counter() - t0)
    database.dispose()
    return p99(times, "consent_check_p50_ms")


MEDIANS: dict[str, float] = {}


def p99(times: list[float], name: str = "") -> float:
    if name:
        MEDIANS[name] = round(statistics.median(times) * 1000, 3)
    return round(statistics.quantiles(times, n=100)[98] * 1000, 3)


# -- report --------------------------------------------------------------------------------------


BROWSERS = (["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera", "Other"],
            [52, 24, 8, 7, 4, 3, 2])
SYSTEMS = (["Windows", "iOS", "Android", "macOS", "Linux", "ChromeOS", "Other"],
           [35, 25, 22, 12, 3, 2, 1])
DEVICES = (["desktop", "mobile", "tablet"], [45, 48, 7])


def _cum(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


PAGES = [f"/side/{i}" for i in range(2000)]
PAGES_CW = _cum([1 / (i + 1) for i in range(2000)])
REFS = ["(direct)", *(f"ref{i}.example.com" for i in range(300))]
REFS_CW = _cum([300.0, *(30 / (i + 1) for i in range(300))])
LENGTHS = ([1, 2, 3, 4, 5, 6, 8], _cum([33, 22, 15, 11, 8, 6, 5]))


def day_of_views(rng: random.Random, org_id: str, site_id: str, day: date, n: int) -> list[Any]:
    """``n`` page views of one day as the ingest makes them: visits of 1-8 pages (a third bounce)
    spread over the day, visitors returning now and then, Zipf-like pages and referrers."""
    from vern.stats.rollup import PageView

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    last = start + timedelta(seconds=86_399)
    visitors = [f"{rng.getrandbits(128):032x}" for _ in range(max(1, n // 4))]
    pages = iter(rng.choices(PAGES, cum_weights=PAGES_CW, k=n))
    steps = iter(rng.choices(range(5, 400), k=n))
    views: list[Any] = []
    while len(views) < n:
        k = min(n - len(views), 1000)
        lengths = rng.choices(LENGTHS[0], cum_weights=LENGTHS[1], k=k)
        refs = rng.choices(REFS, cum_weights=REFS_CW, k=k)
        browsers = rng.choices(BROWSERS[0], cum_weights=_cum(BROWSERS[1]), k=k)
        systems = rng.choices(SYSTEMS[0], cum_weights=_cum(SYSTEMS[1]), k=k)
        devices = rng.choices(DEVICES[0], cum_weights=_cum(DEVICES[1]), k=k)
        for length, ref, browser, system, device in zip(lengths, refs, browsers, systems, devices,
                                                        strict=True):
            visitor = visitors[rng.randrange(len(visitors))]
            at = start + timedelta(seconds=rng.randrange(86_000))
            for _ in range(min(length, n - len(views))):
                views.append(PageView(org_id, site_id, at, visitor, next(pages), ref, browser,
                                      system, device))
                at = min(at + timedelta(seconds=next(steps)), last)
            if len(views) >= n:
                break
    return views


EVENT_COLUMNS = ("org_id", "site_id", "at", "visit_id", "path", "referrer", "browser", "os", "device")


def event_rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The raw events of ``rollup.plan`` as the rows ``rollup.write`` would insert (time as
    SQLAlchemy stores it on SQLite: naive UTC text with microseconds)."""
    return [(e["org_id"], e["site_id"], e["at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
             e["visit_id"], e["path"], e["referrer"], e["browser"], e["os"], e["device"])
            for e in events]


def insert_events(session: Any, rows: list[tuple[Any, ...]]) -> None:
    """Inserted with the driver's ``executemany``, without SQLAlchemy's per-row parameter
    processing (which would double the build time). The report never reads raw events; they are
    there so that the database really holds them."""
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.executemany(
        f"INSERT INTO stats_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 9)})",  # noqa: S608
        rows)
    cursor.close()


def planned_day(org_id: str, site_id: str, day: date, n: int, seed: int) -> tuple[Any, ...]:
    """One day's page views turned into visits, events and roll-up deltas by ``rollup.plan``
    (in a second process, while the first one writes the day before)."""
    from vern.stats import rollup

    plan = rollup.plan(day_of_views(random.Random(seed), org_id, site_id, day, n), {},
                       timedelta(minutes=30))
    return (list(plan.visits.values()), plan.ended, event_rows(plan.events), dict(plan.daily),
            dict(plan.dims))


def bench_report(tmp: str, events: int) -> dict[str, Any]:
    """``events`` page views over 30 days, really in the database: generated day by day, turned
    into visits, raw events and roll-ups by the ingest's own ``rollup.plan`` and ``rollup.write``,
    checked, and then the 30-day report, timed."""
    from sqlalchemy import text

    from vern.core.config import Settings
    from vern.core.crypto import KeyRing, install_keyring
    from vern.core.db import Database, Scope
    from vern.stats import report, rollup

    db_url = f"sqlite:///{tmp}/report.db"
    ids = setup(db_url)
    database = Database(db_url)
    install_keyring(KeyRing(database.engine, Settings(env="dev", database_url=db_url).master_key_bytes))
    end = date(2026, 3, 30)
    days = [end - timedelta(days=d) for d in range(29, -1, -1)]
    per_day = [events // 30 + (1 if d < events % 30 else 0) for d in range(30)]
    from vern.stats.models import StatsEvent, StatsVisit

    # A bulk load: the secondary indexes of the two big tables are built once at the end (the
    # same DDL as the schema's) instead of row by row; the finished database has every index.
    indexes = [*StatsEvent.__table__.indexes, *StatsVisit.__table__.indexes]
    with database.engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    built = time.perf_counter()
    spent = {"wait_for_plan": 0.0, "write": 0.0, "index": 0.0}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pending: deque[Any] = deque()
        todo = list(enumerate(zip(days, per_day, strict=True)))
        while todo or pending:
            while todo and len(pending) < 2:  # at most two days in memory
                i, (day, n) = todo.pop(0)
                pending.append(pool.submit(planned_day, ids["org_id"], ids["site_id"], day, n,
                                           1000 + i))
            t0 = time.perf_counter()
            visits, ended, rows, daily, dims = pending.popleft().result()
            t1 = time.perf_counter()
            plan = rollup.Plan(visits={(v.site_id, v.day, v.visitor): v for v in visits},
                               ended=ended)
            plan.daily.update(daily)
            plan.dims.update(dims)
            with database.transaction(Scope.system("bench: a day of page views")) as session:
                rollup.write(session, plan)  # visits and roll-ups, as the ingest writes them
                insert_events(session, rows)
            spent["wait_for_plan"] += t1 - t0
            spent["write"] += time.perf_counter() - t1
            del visits, ended, rows, plan
    t0 = time.perf_counter()
    with database.engine.begin() as conn:
        for index in indexes:
            index.create(conn)
    spent["index"] = time.perf_counter() - t0
    build_s = time.perf_counter() - built
    with database.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM stats_events")).scalar()
        visits = conn.execute(text("SELECT count(*) FROM stats_visits")).scalar()
        rolled = conn.execute(text("SELECT sum(pageviews) FROM stats_daily")).scalar()
        dim_rows = conn.execute(text("SELECT count(*) FROM stats_daily_dims")).scalar()
    assert stored == rolled == events, (stored, rolled, events)
    with database.transaction(Scope.tenant(ids["org_id"])) as session:  # read back like the ORM
        from sqlalchemy import select

        sample = session.scalars(select(StatsEvent).order_by(StatsEvent.id.desc()).limit(1)).one()
        visit = session.get(StatsVisit, sample.visit_id)
        assert visit is not None and visit.started_at <= sample.at <= visit.last_at
        assert sample.at.tzinfo is not None and sample.at.date() == end
    times = []
    rep = None
    for _ in range(7):
        with database.transaction(Scope.tenant(ids["org_id"])) as session:
            t0 = time.perf_counter()
            rep = report.build(session, ids["site_id"], end - timedelta(days=29), end, "day")
            times.append((time.perf_counter() - t0) * 1000)
    assert rep is not None and rep.totals.pageviews == events and rep.totals.visits == visits
    database.dispose()
    size = sum(f.stat().st_size for f in Path(tmp).glob("report.db*"))
    return {"report_30d_ms": round(statistics.median(times[1:]), 1),
            "report_30d_max_ms": round(max(times[1:]), 1), "report_pageviews": rep.totals.pageviews,
            "report_events_stored": stored, "report_visits_stored": visits,
            "report_dim_rows": dim_rows, "report_build_s": round(build_s, 1),
            "report_build_split_s": {k: round(v, 1) for k, v in spent.items()},
            "report_db_mb": round(size / 1e6)}


# -- banner --------------------------------------------------------------------------------------


def banner_size() -> dict[str, int]:
    static = ROOT / "vern" / "consent" / "static"
    js = gzip.compress((static / "vern-consent.js").read_bytes(), 9)
    css = gzip.compress((static / "vern-consent.css").read_bytes(), 9)
    beacon = gzip.compress((ROOT / "vern" / "stats" / "static" / "vern-stats.js").read_bytes(), 9)
    return {"banner_gzip_bytes": len(js) + len(css), "banner_js_gzip_bytes": len(js),
            "banner_css_gzip_bytes": len(css),
            "beacon_bytes": (ROOT / "vern" / "stats" / "static" / "vern-stats.js").stat().st_size,
            "beacon_gzip_bytes": len(beacon)}


def banner_shown(port: int, runs: int) -> float | None:
    if not os.path.exists("/usr/bin/chromium"):
        return None
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]
    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for _ in range(runs + 1):
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/host")
            page.get_by_role("dialog").wait_for()
            ms = page.evaluate("""() => {
                const shown = performance.getEntriesByName('vern-consent-shown')[0].startTime;
                const script = performance.getEntriesByType('resource')
                    .find(e => e.name.endsWith('/c/vern-consent.js'));
                return shown - script.startTime; }""")
            results.append(ms)
            context.close()
        browser.close()
    return round(statistics.median(results[1:]), 1)


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-request-audit", action="store_true",
                        help="diagnostic: serve without the per-request audit record")
    args = parser.parse_args()
    if args.no_request_audit:
        os.environ["BENCH_NO_REQUEST_AUDIT"] = "1"
    seconds = 4.0 if args.quick else 10.0
    report_events = 1_000_000 if args.quick else 10_000_000
    out: dict[str, Any] = {"quick": args.quick, "request_audit": not args.no_request_audit}
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/vern.db"
        ids = setup(db_url)
        port = free_port()
        server = start_server(db_url, tmp, port)
        try:
            # Checks and banner first: after the ingest phase the server's background writers are
            # still busy with the backlog, which would be measured instead.
            out["consent_check_http_p99_ms"] = bench_http_check(port, ids["token"],
                                                                500 if args.quick else 2000)
            out["banner_shown_ms"] = banner_shown(port, 3 if args.quick else 5)
            ingest = bench_ingest(port, ids["site_id"], seconds, tmp)
            out.update(ingest)
            time.sleep(2.5)  # the writer flushes every second
        finally:
            server.terminate()
            server.wait(30)
        from sqlalchemy import create_engine, text

        engine = create_engine(db_url)
        with engine.connect() as conn:
            out["stored_pageviews"] = conn.execute(text("SELECT count(*) FROM stats_events")).scalar()
            out["rolled_up_pageviews"] = conn.execute(
                text("SELECT coalesce(sum(pageviews), 0) FROM stats_daily")).scalar()
        engine.dispose()
        out["consent_check_p99_ms"] = bench_local_check(db_url, ids["org_id"],
                                                        2000 if args.quick else 10000)
        out.update(bench_report(tmp, report_events))
    out.update(banner_size())
    out.update(MEDIANS)
    figures = {
        "ingest_events_per_s": out["ingest_per_s"],
        "ingest_ratio_to_bare_asgi": round(out["ingest_per_s"] / max(out["bare_per_s"], 1), 3),
        "report_30d_ms": out["report_30d_ms"],
        "consent_check_p99_ms": out["consent_check_p99_ms"],
        "consent_check_http_p99_ms": out["consent_check_http_p99_ms"],
        "banner_gzip_bytes": out["banner_gzip_bytes"],
        "banner_shown_ms": out["banner_shown_ms"],
    }
    details = {k: v for k, v in out.items() if k not in figures}
    print("details:", json.dumps(details))
    if args.quick:
        print(f"quick run: {seconds:.0f} s per load phase, report over {report_events:,} page views")
    print(json.dumps({**figures, "quick": args.quick,
                      "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}))


if __name__ == "__main__":
    main()
