"""Settings of the backup domain (``VERN_BACKUP_*``).

The defaults follow the seeds' promise: nightly backups, five days of point-in-time recovery, a
weekly backup kept four weeks, each backup in two places (the backup system's own repository and
an off-site one), encrypted."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vern.config import Settings


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
