"""Several machines: two ``vern serve`` and two ``vern worker`` processes over one PostgreSQL
database, one Redis and one mail server, each "machine" with its own audit log directory.

Traffic goes to both servers; afterwards every job has been done once, every mail sent once,
the audit trail is one chain that ``vern audit verify`` accepts over both directories, and the
API rate limit is counted across both servers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests import services
from tests.conftest import Personas, create_personas, make_api_token
from tests.consent.helpers import setup_org
from tests.stats.helpers import FIREFOX, make_site
from tests.stats.server import free_port
from vern.accounts.roles import Role
from vern.app.migrate import upgrade
from vern.audit.models import AuditEvent
from vern.consent.models import ConsentRecord
from vern.core.config import get_settings
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, Scope
from vern.core.worker import WorkerJob, discover_jobs
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify.models import OutboxMessage
from vern.notify.sink import MailSink
from vern.rights import demo
from vern.rights.models import Part as RightsPart
from vern.rights.models import RightsRequest
from vern.stats.models import StatsEvent

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13  # not 15 (the other Redis tests); flushed before and after
API_LIMIT = 30
DEADLINE = 60.0  # seconds for the processes to finish the work


def _redis() -> Any:
    import redis

    url = services.redis_url(REDIS_DB)
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        services.unavailable(f"Redis does not answer on {url}: {exc}")
    return client


def _environment(url: str, tmp: Path, host: str, sink: MailSink, *, keys: dict[str, str],
                 product_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({
        "VERN_ENV": "test",
        "VERN_DATA_DIR": str(tmp / host),
        "VERN_DATABASE_URL": url,
        "VERN_SECRET_KEY": keys["secret"],
        "VERN_MASTER_KEY": keys["master"],
        "VERN_AUDIT_LOG_DIR": str(tmp / host / "audit"),
        "VERN_RATE_LIMIT_STORAGE_URL": services.redis_url(REDIS_DB),
        "VERN_RATE_LIMIT_API": f"{API_LIMIT}/minute",
        "VERN_RATE_LIMIT_API_UNAUTHENTICATED": "1000/minute",
        "VERN_SMTP_URL": sink.url,
        "VERN_MAIL_FROM": "vern@solstrand.example.com",
        "LAERBAR_DATABASE_URL": product_url,
        "PYTHONPATH": str(ROOT),
    })
    return env


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vern.app.cli", *args], env=env, cwd=ROOT,  # noqa: S603 - our own command
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vern serve stopped: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"vern serve at {base} was not ready in 30 s")


def _until(check: Any, what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"not done in {seconds:.0f} s: {what}")


def _count(database: Database, stmt: Any) -> int:
    with database.transaction(Scope.system("test count")) as session:
        return int(session.scalar(stmt) or 0)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vern.app.cli", *args], env=env, cwd=ROOT,  # noqa: S603 - our own command
                          capture_output=True, text=True, timeout=60, check=False)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page[:500]
    return found.group(1)


def _code_for(sink: MailSink, email: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for message in sink.messages():
            found = re.search(r"\b(\d{6})\b", message.body)
            if email in message.to and found:
                return found.group(1)
        time.sleep(0.2)
    pytest.fail(f"no code mailed to {email} in 20 s")


def _event(i: int) -> dict[str, Any]:
    return {"id": f"laerbar-{i}", "time": "2026-01-05T10:00:00+00:00", "action": "lesson.viewed",
            "actor": f"elev-{1000 + i}", "resource": f"student:{i}", "ip": "192.0.2.44"}


def test_two_servers_and_two_workers_share_one_database(  # noqa: PLR0912 - one story
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_client = _redis()
    redis_client.flushdb()
    keys = {"secret": secrets.token_urlsafe(32),
            "master": base64.b64encode(secrets.token_bytes(32)).decode()}
    with ExitStack() as stack:
        stack.callback(redis_client.flushdb)
        url = stack.enter_context(services.postgres_database("vern_multi"))
        upgrade(url)
        # This process sets up the data as a command on machine "a" would, with its settings
        # (the audit records it writes are sealed with the shared secret key).
        for name, value in {"VERN_ENV": "test", "VERN_DATABASE_URL": url,
                            "VERN_SECRET_KEY": keys["secret"], "VERN_MASTER_KEY": keys["master"],
                            "VERN_DATA_DIR": str(tmp_path / "a"),
                            "VERN_AUDIT_LOG_DIR": str(tmp_path / "a" / "audit")}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        stack.callback(get_settings.cache_clear)
        settings = get_settings()
        database = Database(url)
        stack.callback(database.dispose)
        install_keyring(KeyRing(database.engine, settings.master_key_bytes))
        world: Personas = create_personas(database, settings)
        product_url = f"sqlite:///{tmp_path / 'laerbar.db'}"
        product = engine_for(product_url)
        stack.callback(forget, product_url)
        demo.create_product(product)
        people = demo.fill(product, [world.tenant_a], people_per_tenant=6)
        with database.transaction(Scope.system("test map")) as session:
            publish_map(session, demo.map_text(), source="laerbar.yaml")
        setup_org(database, world.tenant_a)
        site = make_site(database, world.tenant_a)
        tokens = {name: make_api_token(database, world.tenant_a, Role.TENANT_ADMIN)
                  for name in ("ordinary", "ingest", "rights", "probe")}
        # Approvals take a second, named person (four-eyes): a token alice created acts as her.
        tokens["approve"] = make_api_token(database, world.tenant_a, Role.TENANT_ADMIN,
                                           created_by=world.alice.user_id)

        sink = stack.enter_context(MailSink())
        env = {host: _environment(url, tmp_path, host, sink, keys=keys, product_url=product_url)
               for host in ("a", "b")}
        for host in ("a", "b"):
            (tmp_path / host).mkdir(exist_ok=True)
        servers = []
        for host in ("a", "b"):
            port = free_port()
            log = tmp_path / f"serve-{host}.log"
            proc = stack.enter_context(_process(
                ["serve", "--host", "127.0.0.1", "--port", str(port)], env[host], log))
            servers.append((f"http://127.0.0.1:{port}", proc, log))
        for base, proc, log in servers:
            _wait_ready(base, proc, log)
        bases = [base for base, _, _ in servers]
        web = stack.enter_context(httpx.Client(timeout=15))

        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        # Ordinary authenticated requests, to both servers.
        for i in range(10):
            res = web.get(f"{bases[i % 2]}/api/v1/rights/requests", headers=auth("ordinary"))
            assert res.status_code == 200, res.text

        # Consent choices through the public endpoint: 12 people, 6 on each server.
        subjects = [secrets.token_hex(16) for _ in range(12)]
        for i, subject in enumerate(subjects):
            body = {"subject": subject, "version": 1, "method": "banner-accept",
                    "choices": {"statistics": True, "marketing": i % 3 == 0}}
            res = web.post(f"{bases[i % 2]}/c/fjellheim/consent", content=json.dumps(body),
                           headers={"content-type": "text/plain", "user-agent": FIREFOX})
            assert res.status_code == 201, res.text

        # Audit batches from the product; each batch is sent again to the other server.
        for batch in range(4):
            events = [_event(batch * 5 + k) for k in range(5)]
            first = web.post(f"{bases[batch % 2]}/api/v1/audit/events", json={"events": events},
                             headers=auth("ingest"))
            assert first.status_code == 202 and first.json() == {"accepted": 5, "duplicates": 0}
            again = web.post(f"{bases[(batch + 1) % 2]}/api/v1/audit/events",
                             json={"events": events}, headers=auth("ingest"))
            assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 5}

        # Statistics beacons: 20 page views, 10 on each server.
        for n in range(20):
            res = web.post(f"{bases[n % 2]}/s/e", content=json.dumps({"s": site, "u": f"/side/{n}"}),
                           headers={"user-agent": FIREFOX, "content-type": "text/plain"})
            assert res.status_code in (200, 202, 204), res.text

        # Data subject requests: two erasures and two copies, filed on both servers.
        asked = [("erasure", people[0]), ("erasure", people[1]),
                 ("access", people[2]), ("access", people[3])]
        with product.connect() as conn:
            enrolments_before = Counter(r.user_id for r in conn.execute(
                text("SELECT user_id FROM enrolments")))
            logins_before = Counter(r.user_id for r in conn.execute(
                text("SELECT user_id FROM login_events")))
        request_ids = []
        for i, (kind, person) in enumerate(asked):
            base = bases[i % 2]
            made = web.post(f"{base}/api/v1/rights/requests", headers=auth("rights"), json={
                "kind": kind, "identities": {"email": person["email"]},
                "verification": "customer_signin"})
            assert made.status_code == 201, made.text
            rid = made.json()["id"]
            if made.json()["status"] == "awaiting_approval":
                ok = web.post(f"{bases[(i + 1) % 2]}/api/v1/rights/requests/{rid}/approve",
                              headers=auth("approve"))
                assert ok.status_code == 200, ok.text
            request_ids.append(rid)

        # Two people ask through the portal: the form on one server, the e-mailed code typed
        # on the other.
        portal = [("access", people[4]), ("erasure", people[5])]
        for i, (kind, person) in enumerate(portal):
            with httpx.Client(timeout=15) as visitor:
                form = visitor.get(f"{bases[i % 2]}/p/fjellheim/rights/new?kind={kind}")
                sent = visitor.post(f"{bases[i % 2]}/p/fjellheim/rights/new", data={
                    "csrf_token": _csrf(form.text), "kind": kind, "email": person["email"]})
                assert sent.status_code == 303, sent.text
                verify_path = sent.headers["location"]
                code = _code_for(sink, person["email"])
                other = bases[(i + 1) % 2]
                page = visitor.get(f"{other}{verify_path}")
                done = visitor.post(f"{other}{verify_path}", data={
                    "csrf_token": _csrf(page.text), "code": code})
                assert done.status_code == 303, done.text
            rid = verify_path.split("/")[-2]
            status = web.get(f"{bases[i % 2]}/api/v1/rights/requests/{rid}",
                             headers=auth("rights")).json()["status"]
            if status == "awaiting_approval":
                ok = web.post(f"{bases[(i + 1) % 2]}/api/v1/rights/requests/{rid}/approve",
                              headers=auth("approve"))
                assert ok.status_code == 200, ok.text
            request_ids.append(rid)

        # The API limit is one count across both servers: 20 requests on one, 10 on the other
        # reach the limit of 30; the next is refused by the second server.
        for i in range(API_LIMIT):
            res = web.get(f"{bases[0] if i < 20 else bases[1]}/api/v1/rights/flags",
                          headers=auth("probe"))
            assert res.status_code == 200, (i, res.text)
        refused = web.get(f"{bases[1]}/api/v1/rights/flags", headers=auth("probe"))
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert web.get(f"{bases[0]}/api/v1/rights/flags",
                       headers=auth("probe")).status_code == 429

        # Now the two workers, at once: each job is claimed by one of them.
        started = time.monotonic()
        workers = []
        for host in ("a", "b"):
            log = tmp_path / f"worker-{host}.log"
            workers.append(stack.enter_context(_process(["worker", "--tick", "0.5"],
                                                        env[host], log)))

        def requests_done() -> bool:
            with database.transaction(Scope.system("test read")) as session:
                states = session.scalars(select(RightsRequest.status).where(
                    RightsRequest.id.in_(request_ids))).all()
            return sorted(states) == ["done"] * len(request_ids)

        _until(requests_done, "the data subject requests")
        job_names = {job.name for job in discover_jobs()}

        def every_job_ran() -> bool:
            with database.transaction(Scope.system("test read")) as session:
                done = set(session.scalars(select(WorkerJob.name).where(
                    WorkerJob.last_finished_at.is_not(None))))
            return done == job_names

        _until(every_job_ran, "the workers' first round")
        unsent = select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.sent_at.is_(None))
        _until(lambda: _count(database, unsent) == 0, "the outbox")
        _until(lambda: _count(database, select(func.count()).select_from(StatsEvent)) == 20,
               "the statistics beacons")
        for proc in [*workers, *(p for _, p, _ in servers)]:
            _stop(proc)
            assert proc.returncode in {0, -signal.SIGTERM}
        elapsed = time.monotonic() - started

        # Each scheduled job ran, and no more often than its interval allows across both
        # workers (two workers without the shared claim would each run every job at once).
        with database.transaction(Scope.system("test read")) as session:
            runs = dict(session.execute(select(WorkerJob.name, WorkerJob.runs)).all())
        every = {job.name: job.every.total_seconds() for job in discover_jobs()}
        assert set(runs) == set(every)
        for name, n in runs.items():
            assert 1 <= n <= 1 + int(elapsed // every[name]), (name, n, elapsed)

        # Every request ran once; the product lost exactly the erased people's rows.
        with database.transaction(Scope.system("test read")) as session:
            rows = session.execute(select(RightsRequest.id, RightsRequest.attempts).where(
                RightsRequest.id.in_(request_ids))).all()
            parts = session.execute(select(RightsPart.request_id, RightsPart.status).where(
                RightsPart.request_id.in_(request_ids))).all()
            completed = Counter(session.scalars(select(AuditEvent.resource).where(
                AuditEvent.action == "rights.request.complete")))
        assert sorted(a for _, a in rows) == [1] * len(request_ids)
        assert {r for r, _ in parts} == set(request_ids) and {s for _, s in parts} == {"done"}
        assert completed == Counter(f"rights_request:{rid}" for rid in request_ids)
        with product.connect() as conn:
            enrolments_after = Counter(r.user_id for r in conn.execute(
                text("SELECT user_id FROM enrolments")))
            logins_after = Counter(r.user_id for r in conn.execute(
                text("SELECT user_id FROM login_events")))
        erased = {people[0]["id"], people[1]["id"], people[5]["id"]}
        assert enrolments_after == Counter(
            {u: n for u, n in enrolments_before.items() if u not in erased})
        assert logins_after == Counter({u: n for u, n in logins_before.items() if u not in erased})

        # Consent, statistics and audit ingest: each stored once.
        with database.transaction(Scope.system("test read")) as session:
            choices = Counter(session.execute(select(ConsentRecord.subject,
                                                     ConsentRecord.purpose_key)).all())
        assert choices == Counter((s, p) for s in subjects for p in ("statistics", "marketing"))
        assert _count(database, select(func.count()).select_from(StatsEvent)) == 20
        ingested = select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "lesson.viewed")
        assert _count(database, ingested) == 20

        # Every mail once: to each person who asked through the portal their code and the
        # answer, nothing twice (the API's requests are answered by the product itself). The
        # workers also open the period's access reviews and tell each organisation's reviewers.
        received = Counter((to, m.subject) for m in sink.messages() for to in m.to)
        assert received and max(received.values()) == 1, received
        asked = {person["email"] for _, person in portal}
        recipients = Counter(to for to, _ in received if to in asked)
        assert recipients == Counter({person["email"]: 2 for _, person in portal})
        assert _count(database, select(func.count()).select_from(OutboxMessage)) == len(received)

        # One audit trail over both machines' log directories.
        sealed = _cli(["audit", "seal"], env["a"])
        assert sealed.returncode == 0, sealed.stdout + sealed.stderr
        dirs = [str(tmp_path / host / "audit") for host in ("a", "b")]
        assert all(list(Path(d).glob("audit-*.jsonl")) for d in dirs)
        checked = _cli(["audit", "verify", "--dir", dirs[0], "--dir", dirs[1]], env["a"])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        files = re.search(r"(\d+) log files", " ".join(checked.stdout.split()))
        assert files is not None and int(files.group(1)) >= 2, checked.stdout
        alone = _cli(["audit", "verify", "--dir", dirs[0]], env["a"])
        assert alone.returncode == 1  # one machine's files alone miss the other's records
        assert "missing from the log file" in " ".join(alone.stderr.split())
