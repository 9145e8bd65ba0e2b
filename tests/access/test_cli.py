"""``vern access …`` run as an operator would: the same commands in process, a real SQLite file."""

from __future__ import annotations

import base64
import os
import re
from datetime import timedelta
from pathlib import Path

from tests.cli_run import Ran, vern
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind
from vern.core.config import DEV_MASTER_KEY
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, Scope, utcnow

PASSWORD = "Fjordlys-Hytte-2026-Morgen\n"


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> Ran:
    return vern(args, env, stdin)


def test_a_grant_is_asked_for_approved_and_revoked_from_the_shell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vern.db'}"
    database = Database(url)
    database.create_all()
    install_keyring(KeyRing(database.engine, base64.urlsafe_b64decode(DEV_MASTER_KEY)))
    with database.transaction(Scope.system("test")) as session:
        accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
        accounts.create_organisation(session, name="Fjellheim barnehage", slug="fjellheim",
                                     kind=OrgKind.TENANT, actor=None)
    database.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")} | {
        "VERN_ENV": "test", "VERN_DATABASE_URL": url, "COLUMNS": "200",
        "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit")}
    for email, name, org, role in (
            ("siri.solberg@solstrand.example.com", "Siri Solberg", "solstrand", "support"),
            ("ingrid.berg@fjellheim.example.com", "Ingrid Berg", "fjellheim", "tenant_admin")):
        made = run(["user", "create", "--email", email, "--name", name, "--org", org,
                    "--role", role, "--password-stdin"], env, PASSWORD)
        assert made.returncode == 0, made.stderr
    until = (utcnow() + timedelta(hours=4)).isoformat()
    ask = ["access", "request-grant", "--org", "fjellheim", "--by",
           "siri.solberg@solstrand.example.com", "--reason", "Sak 4711: eksport feiler"]

    past = run([*ask, "--until", (utcnow() - timedelta(hours=1)).isoformat()], env)
    assert past.returncode == 1 and "ends_at" in past.stderr
    too_long = run([*ask, "--until", (utcnow() + timedelta(days=40)).isoformat()], env)
    assert too_long.returncode == 1 and "30 days" in too_long.stderr
    asked = run([*ask, "--until", until], env)
    assert asked.returncode == 0, asked.stderr
    grant_id = re.search(r"grant (\S+) is pending", asked.stdout).group(1)  # type: ignore[union-attr]

    # The vendor's staff cannot approve for the customer.
    own = run(["access", "approve-grant", grant_id, "--org", "fjellheim", "--by",
               "siri.solberg@solstrand.example.com"], env)
    assert own.returncode == 1 and "administrator of the customer" in own.stderr
    approved = run(["access", "approve-grant", grant_id, "--org", "fjellheim", "--by",
                    "ingrid.berg@fjellheim.example.com"], env)
    assert approved.returncode == 0 and f"grant {grant_id} is active" in approved.stdout
    listed = run(["access", "grants", "--org", "fjellheim"], env)
    assert grant_id in listed.stdout and "active" in listed.stdout
    revoked = run(["access", "revoke-grant", grant_id, "--org", "fjellheim", "--by",
                   "ingrid.berg@fjellheim.example.com"], env)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
