"""``vern datamap`` and ``vern rights`` run as a user would: the same commands in process, on
real SQLite files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.cli_run import Ran, vern
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.rights import demo


def run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_a_map_is_checked_published_and_an_erasure_run_and_replayed(tmp_path: Path) -> None:
    vern_url = f"sqlite:///{tmp_path / 'vern.db'}"
    product = tmp_path / "laerbar.db"
    product_url = f"sqlite:///{product}"
    database = Database(vern_url)
    database.create_all()
    import base64

    from vern.core.config import DEV_MASTER_KEY

    install_keyring(KeyRing(database.engine, base64.urlsafe_b64decode(DEV_MASTER_KEY)))
    with database.transaction(Scope.system("test")) as session:
        org = accounts.create_organisation(
            session, name="Fjellheim barnehage", slug="fjellheim", kind=OrgKind.TENANT, actor=None
        )
        org_id = org.id
        accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
    database.dispose()
    demo.create_product(engine_for(product_url))
    people = demo.fill(engine_for(product_url), [org_id], people_per_tenant=3)
    forget(product_url)
    (tmp_path / "laerbar.yaml").write_text(demo.map_text(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")} | {
        "VERN_ENV": "test",  # the fixed test keys, as this process uses
        "VERN_DATABASE_URL": vern_url,
        "COLUMNS": "200",
        "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"),
        "LAERBAR_DATABASE_URL": product_url,
    }

    scanned = run(
        ["datamap", "scan", product_url, "--system", "laerbar", "-o", str(tmp_path / "draft.yaml")], env
    )
    assert scanned.returncode == 0, scanned.stderr
    draft = (tmp_path / "draft.yaml").read_text(encoding="utf-8")
    assert "user.government_id.national_id" in draft and "school_id" in draft and "TODO" in draft
    checked = run(["datamap", "check", str(tmp_path / "laerbar.yaml")], env)
    assert checked.returncode == 0, checked.stderr
    assert run(["datamap", "publish", str(tmp_path / "laerbar.yaml")], env).returncode == 0
    # The vendor's security officer (the vendor's first privileged member, made at once)
    # administers customers.
    staff = vern(["user", "create", "--email", "sindre.strand@solstrand.example.com",
                  "--name", "Sindre Strand", "--org", "solstrand", "--role", "security_officer",
                  "--password-stdin"], env, "Fjordlys-Hytte-2026-Morgen\n")
    assert staff.returncode == 0, staff.stderr
    for email, name in (("ingrid.berg@fjellheim.example.com", "Ingrid Berg"),
                        ("ola.haugen@fjellheim.example.com", "Ola Haugen")):
        made = vern(["user", "create", "--email", email, "--name", name, "--org", "fjellheim",
                     "--role", "tenant_admin", "--password-stdin"]
                    + (["--by", "ingrid.berg@fjellheim.example.com", "--need", "Godkjenner innsyn"]
                       if email.startswith("ola") else []),
                    env, "Fjordlys-Hytte-2026-Morgen\n")
        assert made.returncode == 0, made.stderr
    # Ingrid, the first administrator, was made at once; Ola's role waits for a second person.
    # Ingrid is the customer's only administrator and asked for it, so the vendor's staff who
    # administer customers approve it - and Ingrid cannot.
    pending = re.search(r"request (\S+)", made.stdout)
    assert pending is not None, made.stdout
    own = vern(["access", "approve-request", pending.group(1),
                "--by", "ingrid.berg@fjellheim.example.com"], env)
    assert own.returncode != 0 and "own request" in own.stderr
    waiting = vern(["access", "requests", "--by", "sindre.strand@solstrand.example.com"], env)
    assert waiting.returncode == 0 and "Ola Haugen" in waiting.stdout, waiting.stderr
    approved = vern(["access", "approve-request", pending.group(1),
                     "--by", "sindre.strand@solstrand.example.com"], env)
    assert approved.returncode == 0 and "approved" in approved.stdout, approved.stderr
    filed = run(
        [
            "rights",
            "file",
            "--org",
            "fjellheim",
            "--kind",
            "erasure",
            "--email",
            people[1]["email"],
            "--attested",
            "Pass kontrollert",
            "--by",
            "ingrid.berg@fjellheim.example.com",
        ],
        env,
    )
    assert filed.returncode == 0, filed.stderr
    request_id = re.search(r"request (\S+) is awaiting_approval", filed.stdout).group(1)  # type: ignore[union-attr]
    # Four-eyes: whoever attested the person's identity cannot approve; a second person can.
    assert run(["rights", "approve", request_id], env).returncode != 0  # --by is required
    own = run(["rights", "approve", request_id, "--by", "ingrid.berg@fjellheim.example.com"], env)
    assert own.returncode == 1 and "approver" in own.stderr and "second person" in own.stderr
    approved = run(["rights", "approve", request_id, "--by", "ola.haugen@fjellheim.example.com"],
                   env)
    assert approved.returncode == 0, approved.stderr
    import shutil

    shutil.copy(product, tmp_path / "backup.db")  # last night's backup, from before the erasure
    ran = run(["rights", "run", request_id], env)
    assert ran.returncode == 0, ran.stderr
    assert "done" in ran.stdout and "laerbar.main" in ran.stdout
    assert "━" in ran.stderr  # the Rich progress bar

    replayed = run(["rights", "replay", "--database", "main", "--since", "2020-01-01T00:00:00"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert "0 rows erased again" in replayed.stdout  # nothing to do: the erased rows are recognised
    shutil.copy(tmp_path / "backup.db", product)  # the restore brings the person back
    restored = run(["rights", "replay", "--database", "main", "--since", "2020-01-01T00:00:00"], env)
    assert restored.returncode == 0, restored.stderr
    erased = re.search(r"(\d+) rows erased again", restored.stdout)
    assert erased is not None and int(erased.group(1)) > 0, restored.stdout
    assert "users: 1" in restored.stdout

    nobody = run(
        [
            "rights",
            "file",
            "--org",
            "fjellheim",
            "--kind",
            "access",
            "--email",
            "ingen@example.com",
            "--attested",
            "Pass kontrollert",
            "--by",
            "ingrid.berg@fjellheim.example.com",
        ],
        env,
    )
    nobody_id = re.search(r"request (\S+) is queued", nobody.stdout).group(1)  # type: ignore[union-attr]
    answered = run(["rights", "run", nobody_id], env)
    assert answered.returncode == 0, answered.stderr
    assert "match no one in the connected databases" in answered.stdout.replace("\n", " ")
    assert "nobody_found" in answered.stdout and "searched laerbar.main.users: email" in answered.stdout
    confirmed = run(["rights", "confirm-nobody-found", nobody_id], env)
    assert confirmed.returncode == 0, confirmed.stderr
    assert f"request {nobody_id} is done" in confirmed.stdout


def test_check_fails_and_names_the_place_of_a_broken_map(tmp_path: Path) -> None:
    broken = demo.map_text().replace("category: user.name,", "category: user.nam,", 1)
    (tmp_path / "broken.yaml").write_text(broken, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")} | {"VERN_ENV": "test"}
    res = run(["datamap", "check", str(tmp_path / "broken.yaml")], env)
    assert res.returncode == 1
    said = "".join(res.stderr.split())  # the console wraps long lines wherever a space falls
    assert "tables.users.fields.name.category:unknowncategory'user.nam'" in said
