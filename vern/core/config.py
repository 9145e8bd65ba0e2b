"""One validated settings object, read from ``VERN_*`` environment variables.

Secrets may come from a file (``VERN_SECRET_KEY_FILE``, ``VERN_MASTER_KEY_FILE``) so that they never
appear in a process listing. Outside ``dev``/``demo``/``test`` a missing or default secret refuses to
start: the strictest setting is the default. In ``dev`` and ``demo`` missing secrets are generated
once per installation into ``<VERN_DATA_DIR>/dev-secrets.env`` (said so in a log line); only
``test`` uses the fixed keys below. Production also refuses to start without a mail transport
(``VERN_SMTP_URL`` and ``VERN_MAIL_FROM``).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import secrets
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import vern
from vern.core.smtp import SmtpTarget

Environment = Literal["production", "dev", "demo", "test"]

log = logging.getLogger("vern.core.config")

# Used only by the test environment (dev and demo generate keys of their own). Never accepted
# in production.
# S105 is wrong here: the published development key, refused in production
DEV_SECRET_KEY = "vern-dev-secret-key-not-for-production"  # noqa: S105
DEV_MASTER_KEY = base64.urlsafe_b64encode(b"vern-dev-master-key-32-bytes!!!!").decode()

ROOT = Path(vern.__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


# -- the domains' settings (``VERN_AUDIT_*``, ``VERN_RIGHTS_*``, ``VERN_STATS_*``), part of Settings --


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_AUDIT_", extra="ignore", frozen=True)

    # A signed checkpoint after this many new records, or this many seconds, whichever is first.
    checkpoint_every: int = Field(default=10_000, ge=1)
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    # The background writer: at most this many records wait in memory; a full queue makes the
    # request that adds one wait (``queue_wait_seconds``, then dropped and counted). A batch
    # collects the records that arrive within ``linger_seconds`` of its first one (up to
    # ``batch_max``) and is then written in one append; with nothing to write the writer still
    # looks for work every ``flush_seconds``.
    queue_max: int = Field(default=50_000, ge=10)
    # A full queue is waited for at most this long; then the record is dropped and counted.
    queue_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    # At shutdown, a failing database is tried this long before the records go to a spill file.
    stop_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    batch_max: int = Field(default=5_000, ge=1)
    flush_seconds: float = Field(default=0.2, gt=0)
    linger_seconds: float = Field(default=0.05, ge=0, le=5)
    # fsync the JSON-lines file after each batch (durable files, not only a durable database).
    fsync_files: bool = True
    # Ed25519 signing key (32 raw bytes, base64) in a file; without it the key is derived from
    # VERN_SECRET_KEY with HKDF (rotating that secret then changes the checkpoint key).
    signing_key_file: Path | None = None
    # Public keys (base64) of earlier signing keys whose checkpoints still verify.
    previous_public_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Requests for static files (``/static/…``: styles, scripts, images) are kept out of the
    # request audit; when recorded, their client address is truncated (IPv4 /24, IPv6 /48).
    static_files: bool = False
    # Ingest limits.
    ingest_max_events: int = Field(default=1000, ge=1, le=10_000)
    ingest_max_details_bytes: int = Field(default=4096, ge=256)
    # Alerts.
    alert_failed_signins: int = Field(default=10, ge=2)
    alert_failed_window_minutes: int = Field(default=15, ge=1)
    alert_people_read: int = Field(default=200, ge=2)
    alert_people_window_minutes: int = Field(default=60, ge=1)
    # Sealing: a pending record whose time is more than this before the newest record sealed
    # from the pending queue (or after now) is quarantined, not sealed.
    seal_skew_seconds: float = Field(default=300.0, ge=0, le=86_400)
    # The origin line (and key name) of the C2SP checkpoint note; empty: the host of
    # VERN_BASE_URL followed by ``/audit``.
    origin: str = Field(default="", max_length=200)
    # Witnesses of the signed checkpoints, outside Vern's database and log files: a directory
    # (another disk, mount or host) that keeps the newest witnessed checkpoint, and/or a C2SP
    # tlog-witness (``<prefix>/add-checkpoint``) with its verifier key (``name+hash+base64``).
    witness_dir: Path | None = None
    witness_url: str = Field(default="", max_length=500)
    witness_key: str = Field(default="", max_length=300)
    witness_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("previous_public_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@lru_cache(maxsize=1)
def audit_settings() -> AuditSettings:
    return AuditSettings()


class RightsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_RIGHTS_", extra="ignore", frozen=True)

    # Art. 12(3): one month from receipt; the seeds promise 30 days (set due_days=30 for that).
    due_months: int = Field(default=1, ge=1, le=1)
    due_days: int | None = Field(default=None, ge=1, le=31)
    max_extension_months: int = Field(default=2, ge=0, le=2)
    remind_days_before: int = Field(default=7, ge=1, le=28)
    code_minutes: int = Field(default=10, ge=1, le=10)
    code_attempts: int = Field(default=3, ge=1, le=3)
    download_days: int = Field(default=5, ge=1, le=30)
    batch_rows: int = Field(default=500, ge=1, le=100_000)
    # A partly done request is run again by the worker: after retry_backoff_seconds, doubling per
    # attempt up to retry_backoff_max_seconds, at most retry_max_attempts runs in all; then the
    # customer's admins and the vendor's privacy officers are told.
    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    retry_backoff_seconds: int = Field(default=300, ge=1, le=86_400)
    retry_backoff_max_seconds: int = Field(default=21_600, ge=1, le=604_800)
    # Approval is required by default; a tenant may relax it in its rights policy.
    approve_erasure: bool = True
    approve_rectification: bool = True


@lru_cache(maxsize=1)
def rights_settings() -> RightsSettings:
    return RightsSettings()


class StatsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_STATS_", extra="ignore", frozen=True)

    # Raw events and visits (which carry a daily-salted visitor hash) are deleted after this many
    # days; the roll-ups hold no personal data and stay.
    raw_days: int = Field(default=7, ge=1, le=90)
    # A visit ends after this long without a page view.
    visit_gap_minutes: int = Field(default=30, ge=1, le=240)
    # The ingest buffer is written to the database this often (milliseconds); 0 writes on every
    # beacon (tests).
    flush_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    flush_max_events: int = Field(default=5000, ge=1)
    # At most this many page views wait in memory; beyond it intake waits for the writer at most
    # ``buffer_wait_seconds``, then the page view is dropped and counted. 50,000 is about ten
    # seconds of a busy site, a few megabytes.
    buffer_max_events: int = Field(default=50_000, ge=10)
    buffer_wait_seconds: float = Field(default=0.5, ge=0, le=30)
    max_beacon_bytes: int = Field(default=2048, ge=256, le=16_384)


@lru_cache(maxsize=1)
def stats_settings() -> StatsSettings:
    return StatsSettings()


class PoolSettings(BaseSettings):
    """The database connection pool (``VERN_DB_*``), read wherever an engine is made."""

    model_config = SettingsConfigDict(env_prefix="VERN_DB_", extra="ignore", frozen=True)

    # Connections per process in the pool of a PostgreSQL or MariaDB database.
    pool_size: int = Field(default=10, ge=1, le=1000)


@lru_cache(maxsize=1)
def pool_settings() -> PoolSettings:
    return PoolSettings()


# -- backups (vern/backup): VERN_BACKUP_*. The defaults follow the seeds' promise: nightly
# backups, five days of point-in-time recovery, a weekly backup kept four weeks, each backup in
# two places (the backup system's own repository and an off-site one), encrypted.


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_BACKUP_", extra="ignore", frozen=True)

    # The backup system's own copy (SQLite files, key backups; pgBackRest's repo1 unless
    # ``repo1_path`` is set). Default: <VERN_DATA_DIR>/backups.
    dir: Path | None = None
    # The off-site copy of SQLite files and key backups (a mounted remote path). Default:
    # <VERN_DATA_DIR>/backups-offsite - set it to another machine's storage in production.
    offsite_dir: Path | None = None
    # Days of point-in-time recovery (WAL kept on PostgreSQL; daily files kept on SQLite).
    pitr_days: int = Field(default=5, ge=1, le=35)
    # Weeks a weekly (full) backup is kept.
    weekly_weeks: int = Field(default=4, ge=1, le=52)
    # Day of the week (0 Monday … 6 Sunday) of the weekly full backup; other nights take a
    # differential one.
    full_weekday: int = Field(default=6, ge=0, le=6)
    # Days a backup of the data keys is kept: short, so that a destroyed key is gone from every
    # copy soon after (a restore takes the newest key state, never an old one).
    key_keep_days: int = Field(default=7, ge=1, le=35)
    # Scratch databases of restore drills. Default: <VERN_DATA_DIR>/backup-scratch.
    scratch_dir: Path | None = None

    # -- PostgreSQL through pgBackRest -------------------------------------------------------
    pgbackrest_bin: str = "pgbackrest"
    stanza: str = Field(default="vern", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Where Vern writes pgbackrest.conf (read by archive_command too). Default:
    # <VERN_DATA_DIR>/pgbackrest/pgbackrest.conf.
    pgbackrest_config: Path | None = None
    # The data directory of the PostgreSQL cluster that holds Vern's database (pg1-path).
    pg_data: Path | None = None
    pg_port: int = Field(default=5432, ge=1, le=65535)
    pg_socket: Path | None = None  # pg1-socket-path; unset: PostgreSQL's default
    pg_user: str = "postgres"  # pg1-user: the database role pgBackRest connects as
    pg_bin: Path | None = None  # PostgreSQL's binaries; unset: the newest /usr/lib/postgresql/*/bin
    # The operating system user that owns the cluster and runs pgBackRest (root runs it through
    # runuser). Unset: the owner of ``pg_data``.
    os_user: str | None = None
    repo1_path: Path | None = None  # default: <dir>/pgbackrest
    repo2_type: Literal["posix", "s3"] = "posix"
    repo2_path: Path | None = None  # posix: a path; s3: the path inside the bucket (default /vern)
    repo2_s3_bucket: str | None = None
    repo2_s3_endpoint: str | None = None
    repo2_s3_region: str = "eu-north-1"
    repo2_s3_key: str | None = Field(default=None, repr=False)
    repo2_s3_key_secret: str | None = Field(default=None, repr=False)
    repo2_s3_key_secret_file: Path | None = None
    repo2_s3_uri_style: Literal["host", "path"] = "host"
    # The passphrase of the repositories' encryption (aes-256-cbc). Required for PostgreSQL.
    cipher_pass: str | None = Field(default=None, repr=False)
    cipher_pass_file: Path | None = None
    command_timeout_s: int = Field(default=3600, ge=10)

    def base(self, settings: Settings) -> Path:
        return Path(self.dir or Path(settings.data_dir) / "backups")

    def offsite(self, settings: Settings) -> Path:
        return Path(self.offsite_dir or Path(settings.data_dir) / "backups-offsite")

    def scratch(self, settings: Settings) -> Path:
        return Path(self.scratch_dir or Path(settings.data_dir) / "backup-scratch")

    def config_path(self, settings: Settings) -> Path:
        return Path(self.pgbackrest_config or Path(settings.data_dir) / "pgbackrest" / "pgbackrest.conf")

    def passphrase(self) -> str | None:
        if self.cipher_pass_file is not None:
            return self.cipher_pass_file.read_text().strip() or None
        return self.cipher_pass

    def s3_secret(self) -> str | None:
        if self.repo2_s3_key_secret_file is not None:
            return self.repo2_s3_key_secret_file.read_text().strip() or None
        return self.repo2_s3_key_secret


@lru_cache(maxsize=1)
def backup_settings() -> BackupSettings:
    return BackupSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_", extra="ignore", frozen=True)

    env: Environment = "production"
    # Where this instance keeps its files (SQLite database, audit files, the demo's product
    # database and settings, generated development keys). The defaults below follow it.
    data_dir: Path = ROOT / "var"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'vern.db'}"
    secret_key: str | None = None
    secret_key_file: Path | None = None
    master_key: str | None = None
    master_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Derived from host and port unless set (every link in mail, banner and statistics tags).
    base_url: str = "http://127.0.0.1:8000"
    # Mail transport: smtp://[user:pass@]host[:port][?starttls=1], smtps://… (implicit TLS).
    smtp_url: str | None = Field(default=None, repr=False)  # may hold a password
    smtp_password_file: Path | None = None
    mail_from: str | None = None
    default_locale: Literal["nb", "en"] = "nb"

    # Passwords (NIST SP 800-63B): length only, no composition rules, no forced change.
    password_min_length: int = Field(default=12, ge=8, le=64)
    password_max_length: int = Field(default=256, ge=64, le=4096)
    # Periodic password change: off by default as NIST SP 800-63B 3.1.1.2 advises; a vendor whose
    # own policy asks for it (seed 000 1.1.4) sets a number of days.
    password_max_age_days: int | None = Field(default=None, ge=1)
    # Argon2id, at least OWASP's minimum (19 MiB, 2 iterations, parallelism 1).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    session_idle_minutes: int = Field(default=60, ge=1, le=60)
    session_absolute_hours: int = Field(default=24, ge=1, le=24)
    api_token_max_days: int = Field(default=365, ge=1)
    # Access review campaigns the worker opens in every organisation: once per period of this
    # many months from January (3: quarterly); 0 turns them off (campaigns are then opened by
    # hand only).
    access_review_months: int = Field(default=3, ge=0, le=12)
    # E-mailed single-use links: an invitation to set a first password, a password reset.
    invitation_valid_hours: int = Field(default=72, ge=1, le=336)
    password_reset_valid_minutes: int = Field(default=30, ge=5, le=1440)

    # A comma-separated list in the environment (not JSON).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_storage_url: str = "memory://"
    rate_limit_signin: str = "10/minute"
    rate_limit_api: str = "1200/minute"
    # Password-reset requests, per e-mail address typed in and per source network.
    rate_limit_reset_address: str = "3/hour"
    rate_limit_reset_source: str = "20/hour"
    # Per source network (/64 for IPv6) for API requests that resolve to no one: no, bad or
    # malformed credentials (issue 13: a random token per request must not get a fresh bucket).
    rate_limit_api_unauthenticated: str = "120/minute"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The try-it-out page at /api/docs; the description itself is always served.
    api_docs: bool | None = None  # unset: on outside production, off in production

    audit_retention_days: int = Field(default=365, ge=1)
    audit_log_dir: Path = ROOT / "var" / "audit"

    # The domains' settings and the connection pool, each read from its own variables
    # (VERN_AUDIT_*, VERN_RIGHTS_*, VERN_STATS_*, VERN_DB_*, VERN_BACKUP_*):
    # settings.audit.checkpoint_every, …
    audit: AuditSettings = Field(default_factory=audit_settings)
    rights: RightsSettings = Field(default_factory=rights_settings)
    stats: StatsSettings = Field(default_factory=stats_settings)
    pool: PoolSettings = Field(default_factory=pool_settings)
    backup: BackupSettings = Field(default_factory=backup_settings)

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        """Paths follow ``data_dir`` and the base URL follows host and port, unless set."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data_dir = Path(data.get("data_dir") or ROOT / "var")
        data.setdefault("database_url", f"sqlite:///{data_dir / 'vern.db'}")
        data.setdefault("audit_log_dir", data_dir / "audit")
        if not data.get("base_url"):
            host = str(data.get("host") or "127.0.0.1")
            port = data.get("port") or 8000
            shown = f"[{host}]" if ":" in host else host
            data["base_url"] = f"http://{shown}:{port}"
        port_text = str(data.get("port") or 8000)
        if data.get("env") == "demo" and not data.get("smtp_url") and port_text.isdigit():
            # The demo's own mail server (started by `vern demo`), next to the web port.
            data["smtp_url"] = f"smtp://127.0.0.1:{demo_sink_port(int(port_text))}"
        return data

    @field_validator("access_review_months")
    @classmethod
    def _whole_periods(cls, value: int) -> int:
        if value not in {0, 1, 2, 3, 4, 6, 12}:
            raise ValueError("use 0 (off), 1, 2, 3, 4, 6 or 12: periods that divide the year")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"VERN_TRUSTED_PROXIES: {item!r} is not a network") from exc
        return value

    @field_validator("rate_limit_signin", "rate_limit_api", "rate_limit_api_unauthenticated")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        from limits import parse as parse_limit

        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from exc
        return value

    @model_validator(mode="after")
    def _secrets_present(self) -> Settings:
        if self.is_production:
            if self.resolved_secret_key() in (None, DEV_SECRET_KEY):
                raise ValueError(
                    "VERN_SECRET_KEY (or VERN_SECRET_KEY_FILE) must be set to a random value "
                    "outside dev/demo/test"
                )
            if self.resolved_master_key() in (None, DEV_MASTER_KEY):
                raise ValueError(
                    "VERN_MASTER_KEY (or VERN_MASTER_KEY_FILE) must be set to 32 random bytes "
                    "(base64) outside dev/demo/test"
                )
        # Only the keys given are checked here: dev and demo make theirs when first used.
        secret = _read_secret(self.secret_key, self.secret_key_file, "VERN_SECRET_KEY_FILE")
        if secret is not None and len(secret) < 32 and self.is_production:
            raise ValueError("VERN_SECRET_KEY must be at least 32 characters")
        master = _read_secret(self.master_key, self.master_key_file, "VERN_MASTER_KEY_FILE")
        if master is not None:
            try:
                raw = base64.urlsafe_b64decode(master.encode())
            except ValueError as exc:
                raise ValueError("VERN_MASTER_KEY must be base64") from exc
            if len(raw) != 32:
                raise ValueError("VERN_MASTER_KEY must decode to exactly 32 bytes")
        self._mail_valid()
        return self

    def _mail_valid(self) -> None:
        from email.utils import parseaddr

        if self.is_production and (not self.smtp_url or not self.mail_from):
            raise ValueError(
                "VERN_SMTP_URL and VERN_MAIL_FROM must be set in production: without a mail "
                "transport one-time codes and download links never reach anyone "
                "(smtp://user:pass@host:587?starttls=1 or smtps://user:pass@host:465)"
            )
        if self.mail_from is not None and "@" not in parseaddr(self.mail_from)[1]:
            raise ValueError(f"VERN_MAIL_FROM: {self.mail_from!r} is not an e-mail address")
        if self.smtp_url:
            SmtpTarget.parse(self.smtp_url, password_file=self.smtp_password_file)

    @property
    def api_docs_enabled(self) -> bool:
        return (not self.is_production) if self.api_docs is None else self.api_docs

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str | None:
        return _read_secret(self.secret_key, self.secret_key_file, "VERN_SECRET_KEY_FILE") or (
            self._fallback_key("secret_key")
        )

    def resolved_master_key(self) -> str | None:
        return _read_secret(self.master_key, self.master_key_file, "VERN_MASTER_KEY_FILE") or (
            self._fallback_key("master_key")
        )

    def _fallback_key(self, name: str) -> str | None:
        if self.is_production:
            return None
        if self.env == "test":
            return DEV_SECRET_KEY if name == "secret_key" else DEV_MASTER_KEY
        return generated_keys(self.data_dir)[name]

    @property
    def mail_from_address(self) -> str:
        """The sender: ``VERN_MAIL_FROM``, or outside production a loopback-only placeholder."""
        return self.mail_from or "Vern <vern@localhost>"

    @property
    def secret_bytes(self) -> bytes:
        secret = self.resolved_secret_key()
        if secret is None:  # pragma: no cover - refused by the validator
            raise ConfigError("VERN_SECRET_KEY is not set")
        return secret.encode()

    @property
    def master_key_bytes(self) -> bytes:
        master = self.resolved_master_key()
        if master is None:  # pragma: no cover - refused by the validator
            raise ConfigError("VERN_MASTER_KEY is not set")
        return base64.urlsafe_b64decode(master.encode())


def _read_secret(value: str | None, path: Path | None, name: str) -> str | None:
    if value:
        return value
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from exc


def demo_sink_port(port: int) -> int:
    """The port of the demo's mail server: 25 above the web port (8025 for 8000)."""
    return port + 25 if port + 25 <= 65535 else port - 25


DEV_KEYS_FILE = "dev-secrets.env"
_generated: dict[Path, dict[str, str]] = {}
_generated_lock = threading.Lock()


def generated_keys(data_dir: Path) -> dict[str, str]:
    """This installation's own development keys (dev and demo only): read from
    ``<data_dir>/dev-secrets.env``, or made at random into it (mode 0600) the first time."""
    path = (data_dir / DEV_KEYS_FILE).resolve()
    with _generated_lock:
        found = _generated.get(path)
        if found is not None:
            return found
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            text = (
                "# Development keys of this installation, made by Vern (dev and demo only).\n"
                f"secret_key={secrets.token_urlsafe(48)}\n"
                f"master_key={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}\n"
            )
            # Written whole to a file of our own, then linked into place: another process
            # either sees no file or a complete one, and the first link wins.
            draft = path.with_name(f".{DEV_KEYS_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            else:
                log.warning("generated random development keys into %s (dev/demo only; set "
                            "VERN_SECRET_KEY and VERN_MASTER_KEY to choose your own)", path)
            finally:
                draft.unlink()
        values: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
        if not values.get("secret_key") or not values.get("master_key"):
            raise ConfigError(f"{path}: the development keys file is incomplete; delete it to make "
                              "new keys (data sealed under the old ones is then lost)")
        _generated[path] = values
        return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; raises ``ConfigError`` naming the bad variable."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigError(_first_message(exc)) from exc


def forget_settings() -> None:
    """Read the settings from the environment again at the next call (after the environment
    changed in this process: the CLI's demo settings, tests that run commands in process)."""
    for cached in (get_settings, audit_settings, rights_settings, stats_settings, pool_settings,
                   backup_settings):
        cached.cache_clear()


def _first_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            name = f"VERN_{loc.upper()}"
            parts.append(f"{name}: {msg}" if loc and not msg.startswith(name) else msg)
        return "; ".join(parts)
    return str(exc)
