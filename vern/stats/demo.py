"""Demo data: the vendor's website with 30 days of page views (fictional), through the real
ingest path so that roll-ups and raw events look as they would. Idempotent."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from vern.core.config import StatsSettings
from vern.core.db import Database, Scope, utcnow
from vern.stats import service
from vern.stats.ingest import Ingestor

PAGES = ["/", "/produkter/mentor", "/om-oss", "/kontakt", "/personvern", "/nyheter",
         "/nyheter/ny-versjon", "/priser"]
REFERRERS = ["", "", "", "https://www.google.com/", "https://www.bing.com/",
             "https://www.facebook.com/", "https://www.linkedin.com/"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0 Mobile Safari/537.36",
]


def load_demo(database: Database, orgs: dict[str, str]) -> None:
    org_id = orgs.get("solstrand")
    if org_id is None:
        return
    with database.transaction(Scope.tenant(org_id)) as session:
        if service.list_sites(session):
            return
        site = service.create_site(session, org_id=org_id, name="Solstrand Læring",
                                   domain="www.solstrand.example.com", actor_user_id=None)
        site_id = site.id
    ingestor = Ingestor(database, StatsSettings(flush_interval_ms=60_000, raw_days=7))
    rng = random.Random(11)
    now = utcnow()
    for day in range(30, -1, -1):
        for visitor in range(rng.randint(15, 40)):
            ip = f"198.51.100.{visitor}"  # documentation range; truncated to 198.51.100.0
            agent = rng.choice(AGENTS) + f" demo/{visitor}"
            at = now - timedelta(days=day, minutes=rng.randint(0, 600))
            for step in range(rng.choice([1, 1, 2, 3, 5])):
                body = json.dumps({"s": site_id, "u": rng.choice(PAGES),
                                   "r": rng.choice(REFERRERS) if step == 0 else ""}).encode()
                ingestor.accept(body, ip.rsplit(".", 1)[0] + ".0", agent,
                                now=at + timedelta(minutes=2 * step))
        ingestor.flush()
