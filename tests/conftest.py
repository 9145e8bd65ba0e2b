"""Shared fixtures: databases (SQLite and PostgreSQL), the app, personas across two tenants and
the vendor, and signed-in clients.

Personas (all fictional):
    alice  - tenant A admin  (Fjellheim barnehage)
    bob    - tenant A member
    carol  - tenant B admin  (Havbris skole)
    dave   - vendor security officer (Solstrand Læring AS)
    erik   - vendor privacy officer
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The whole session runs as the test environment with its own data directory: nothing a test
# does, nor any default path, lands under the repository's var/ (where the demo lives).
os.environ.setdefault("VERN_ENV", "test")
_SESSION_DATA = tempfile.mkdtemp(prefix="vern-test-data-")
os.environ["VERN_DATA_DIR"] = _SESSION_DATA
atexit.register(shutil.rmtree, _SESSION_DATA, ignore_errors=True)
REPO_VAR = (Path(__file__).resolve().parent.parent / "var").resolve()
_var_writes: list[str] = []


class WroteUnderVar(AssertionError):
    """A test tried to write under the repository's var/ (the demo's files)."""


def _under_var(path: object) -> bool:
    if isinstance(path, int) or path is None:
        return False
    try:
        text = os.fsdecode(path)  # type: ignore[arg-type]
    except TypeError:
        return False
    if text.startswith("sqlite:///"):
        text = text.removeprefix("sqlite:///")
    if text in ("", ":memory:") or text.startswith("file:"):
        return False
    resolved = Path(os.path.abspath(text))
    return resolved == REPO_VAR or REPO_VAR in resolved.parents


def _writes(event: str, args: tuple[object, ...]) -> object:
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        if isinstance(mode, str):
            return args[0] if any(c in mode for c in "wax+") else None
        if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return args[0]
        return None
    if event in ("os.rename", "os.replace") and len(args) >= 2:
        return args[1] if _under_var(args[1]) else args[0]
    if event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "sqlite3.connect"):
        return args[0] if args else None
    return None


def _guard_var(event: str, args: tuple[object, ...]) -> None:
    if not event.startswith(("open", "os.", "shutil.", "sqlite3.")):
        return
    path = _writes(event, args)
    if path is not None and _under_var(path):
        _var_writes.append(f"{event} {os.fsdecode(path)}")  # type: ignore[arg-type]
        raise WroteUnderVar(f"a test wrote under the repository's var/: {event} {path}")


sys.addaudithook(_guard_var)
from sqlalchemy import text
from starlette.testclient import TestClient

from tests import services
from vern.accounts import security, service
from vern.accounts.models import ApiToken, User
from vern.accounts.roles import OrgKind, Role
from vern.core.config import Settings
from vern.core.crypto import PII, KeyRing, install_keyring
from vern.core.db import Base, Database, Scope, import_models, utcnow
from vern.notify.service import MemoryMailer, install_mailer
from vern.notify.service import mailer as notify_mailer

PASSWORD = "Blåbærsyltetøy på vaffel"


def make_settings(url: str, tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": url,
        "rate_limit_signin": "1000/minute",
        "rate_limit_api": "100000/minute",
        "rate_limit_api_unauthenticated": "100000/minute",
        "audit_log_dir": tmp / "audit",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def mailer() -> Iterator[MemoryMailer]:
    """Mail kept in memory for the test (the process's transport is put back afterwards)."""
    previous = notify_mailer()
    memory = MemoryMailer()
    install_mailer(memory)
    try:
        yield memory
    finally:
        install_mailer(previous)


_SQLITE_SCHEMA: list[Path] = []


def sqlite_database(path: Path) -> Database:
    """A SQLite database file at ``path`` holding Vern's schema and nothing else.

    It is a copy of one schema made once per test process: ``create_all`` of every table costs
    about 0.1 s, a file copy a few milliseconds. The copy is the same file ``create_all`` would
    write, WAL mode included (the template is closed, so its log is folded into the file)."""
    if not _SQLITE_SCHEMA:
        import_models()
        folder = Path(tempfile.mkdtemp(prefix="vern-test-schema-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = Database(f"sqlite:///{folder / 'schema.db'}")
        template.create_all()
        template.dispose()
        assert not (folder / "schema.db-wal").exists(), "the schema's log was not folded in"
        _SQLITE_SCHEMA.append(folder / "schema.db")
    shutil.copyfile(_SQLITE_SCHEMA[0], path)
    return Database(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[str]:
    with services.postgres_database("vern_suite") as url:
        database = Database(url)
        database.create_all()
        database.dispose()
        yield url


def _empty_all(database: Database) -> None:
    """Empty what a test wrote on PostgreSQL and restart the sequences, as a fresh schema has them.

    One query finds the tables holding rows; only those are emptied, children before parents.
    ``DELETE`` and not ``TRUNCATE``: a test leaves a few rows, and ``TRUNCATE`` gives each table a
    new file (about 0.2 s a test on a quiet 2-core machine, 1-2 s on a busy one, against a few
    milliseconds for the deletes)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    probe = " UNION ALL ".join(
        f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")"  # noqa: S608 - Vern's own table names
        for n in tables
    )
    with database.engine.begin() as conn:
        busy = {str(row[0]) for row in conn.execute(text(probe))}
        for name in tables:
            if name in busy:
                conn.execute(text(f'DELETE FROM "{name}"'))  # noqa: S608 - Vern's own table names
        conn.execute(text("SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n"
                          " ON n.oid = c.relnamespace WHERE c.relkind = 'S'"
                          " AND n.nspname = current_schema()"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with Vern's schema, empty, on SQLite (a file in WAL mode) or PostgreSQL."""
    import_models()
    if request.param == "sqlite":
        database = sqlite_database(tmp_path / "vern.db")
    else:
        url = request.getfixturevalue("_postgres_schema")
        database = Database(url)
    settings = make_settings(database.url, tmp_path)
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    try:
        yield database
    finally:
        if request.param == "postgresql":
            _empty_all(database)
        database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only, for tests that do not depend on the database engine."""
    database = sqlite_database(tmp_path / "vern.db")
    install_keyring(KeyRing(database.engine, make_settings(database.url, tmp_path).master_key_bytes))
    yield database
    database.dispose()


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return make_settings(db.url, tmp_path)


@pytest.fixture
def app(db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    from vern.app.web import create_app

    return create_app(settings, db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@dataclass
class Persona:
    name: str
    user_id: str
    email: str
    org_id: str
    role: Role
    totp_secret: str | None
    password: str = PASSWORD


@dataclass
class Personas:
    vendor: str
    tenant_a: str
    tenant_b: str
    people: dict[str, Persona] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Persona:
        try:
            return self.people[name]
        except KeyError:
            raise AttributeError(name) from None


_HASH_CACHE: dict[str, str] = {}


def _password_hash(settings: Settings) -> str:
    if "h" not in _HASH_CACHE:
        _HASH_CACHE["h"] = security.hash_password(settings, PASSWORD)
    return _HASH_CACHE["h"]


PERSONA_TABLE = [
    ("alice", "Alice Aasen", "alice.aasen@fjellheim.example.com", "a", Role.TENANT_ADMIN),
    ("bob", "Bjørn Bakken", "bjorn.bakken@fjellheim.example.com", "a", Role.MEMBER),
    ("carol", "Cecilie Carlsen", "cecilie.carlsen@havbris.example.com", "b", Role.TENANT_ADMIN),
    ("dave", "Dag Dahle", "dag.dahle@solstrand.example.com", "v", Role.SECURITY_OFFICER),
    ("erik", "Erik Eide", "erik.eide@solstrand.example.com", "v", Role.PRIVACY_OFFICER),
]


def create_personas(database: Database, settings: Settings) -> Personas:
    with database.transaction(Scope.system("test personas")) as session:
        vendor = service.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                             kind=OrgKind.VENDOR, actor=None)
        a = service.create_organisation(session, name="Fjellheim barnehage", slug="fjellheim",
                                        kind=OrgKind.TENANT, actor=None)
        b = service.create_organisation(session, name="Havbris skole", slug="havbris",
                                        kind=OrgKind.TENANT, actor=None)
        orgs = {"v": vendor.id, "a": a.id, "b": b.id}
        result = Personas(vendor=vendor.id, tenant_a=a.id, tenant_b=b.id)
        for key, name, email, org, role in PERSONA_TABLE:
            user = service.create_user(session, settings, email=email, name=name,
                                       org_id=orgs[org], role=role.value, password=None,
                                       actor=None)
            user.password_hash = _password_hash(settings)
            user.password_changed_at = utcnow()
            secret = None
            if role is not Role.MEMBER:
                secret = security.new_totp_secret()
                user.mfa_secret = PII(user.key_id, secret)
                user.mfa_enabled_at = utcnow()
            result.people[key] = Persona(key, user.id, email, orgs[org], role, secret)
    return result


@pytest.fixture
def personas(db: Database, settings: Settings) -> Personas:
    return create_personas(db, settings)


def add_persona(  # noqa: PLR0917 - the fields of one persona, as PERSONA_TABLE lists them
        database: Database, settings: Settings, personas: Personas, key: str, name: str,
        email: str, org_id: str, role: Role) -> Persona:
    """One more person (e.g. a second administrator for four-eyes), signed-in ready with MFA."""
    with database.transaction(Scope.system("test persona")) as session:
        user = service.create_user(session, settings, email=email, name=name, org_id=org_id,
                                   role=role.value, password=None, actor=None)
        user.password_hash = _password_hash(settings)
        user.password_changed_at = utcnow()
        secret = None
        if role is not Role.MEMBER:
            secret = security.new_totp_secret()
            user.mfa_secret = PII(user.key_id, secret)
            user.mfa_enabled_at = utcnow()
        persona = Persona(key, user.id, email, org_id, role, secret)
    personas.people[key] = persona
    return persona


def sign_in(client: TestClient, persona: Persona) -> TestClient:
    """Sign in through the API like a person would: password, then the TOTP code."""
    res = client.post("/api/v1/session", json={"email": persona.email,
                                                "password": persona.password})
    assert res.status_code == 200, res.text
    client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
    if res.json()["mfa_required"]:
        assert persona.totp_secret is not None
        for offset in (0, 30):
            code = security.totp_now(persona.totp_secret, time.time() + offset)
            mfa = client.post("/api/v1/session/mfa", json={"code": code})
            if mfa.status_code == 200:
                break
        assert mfa.status_code == 200, mfa.text
    return client


@pytest.fixture
def login(app):  # type: ignore[no-untyped-def]
    """``login(persona)`` → a new TestClient signed in as that persona."""
    clients: list[TestClient] = []

    def _login(persona: Persona) -> TestClient:
        c = TestClient(app, base_url="http://testserver")
        c.__enter__()
        clients.append(c)
        return sign_in(c, persona)

    yield _login
    for c in clients:
        c.__exit__(None, None, None)


def session_cookie_for(database: Database, persona: Persona) -> tuple[str, str]:
    """A live, MFA-verified session made directly (no sign-in round trip): (cookie, csrf)."""
    with database.transaction(Scope.system("test session")) as session:
        token, auth_session = service.start_session(session, user_id=persona.user_id,
                                                    org_id=persona.org_id)
        auth_session.mfa_verified = True
        return token, auth_session.csrf_token


def make_api_token(database: Database, org_id: str, role: Role,
                   created_by: str | None = None) -> str:
    """A token; ``created_by`` is the person it acts as in four-eyes checks (none by default)."""
    from datetime import timedelta

    token = security.new_token("vt")
    with database.transaction(Scope.system("test token")) as session:
        session.add(ApiToken(org_id=org_id, name="test", prefix=token[:10],
                             token_hash=security.token_hash(token), role=role.value,
                             expires_at=utcnow() + timedelta(days=1), created_by=created_by))
    return token


@pytest.fixture
def api_token(db: Database):  # type: ignore[no-untyped-def]
    """``api_token(org_id, role)`` → a bearer token string."""

    def _make(org_id: str, role: Role) -> str:
        return make_api_token(db, org_id, role)

    return _make


def user_row(database: Database, user_id: str) -> User:
    with database.transaction(Scope.system("test read")) as session:
        user = session.get(User, user_id)
        assert user is not None
        session.expunge(user)
        return user


@pytest.fixture(autouse=True)
def _no_writes_under_var() -> Iterator[None]:
    """Fails the test that wrote (or tried to write) under the repository's var/."""
    _var_writes.clear()
    yield
    found, _var_writes[:] = list(_var_writes), []
    assert not found, f"tests must not write under {REPO_VAR}: {found}"


def _test_mailer() -> None:
    from vern.notify import service as notify

    notify.install_mailer(notify.MemoryMailer())


_test_mailer()
