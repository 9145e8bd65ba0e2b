"""PostgreSQL backups through pgBackRest: the configuration Vern writes, the commands it runs,
and a PostgreSQL started on a scratch data directory for restore drills.

Two repositories: repo1 the backup system's own (a path), repo2 the off-site one (S3-compatible
object storage in production, or a second path). Both encrypted (aes-256-cbc, passphrase from
settings). Retention follows the seeds: a full backup each week kept ``weekly_weeks`` weeks
(time-based), a differential one each other night, WAL kept for the newest ``pitr_days + 1``
backups (about ``pitr_days`` days of point-in-time recovery).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from vern.core.config import BackupSettings, Settings


class BackupError(RuntimeError):
    """A backup or restore step failed; the message says which and why."""


def available(bs: BackupSettings) -> bool:
    return shutil.which(bs.pgbackrest_bin) is not None


def pg_bin(bs: BackupSettings) -> Path:
    if bs.pg_bin is not None:
        return bs.pg_bin
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise BackupError("PostgreSQL's binaries (pg_ctl) not found: set VERN_BACKUP_PG_BIN")
    return found[-1].parent


def os_user(bs: BackupSettings) -> str | None:
    """Who runs pgBackRest and PostgreSQL: the setting, else the owner of the data directory.
    None when that is the current user (nothing to switch)."""
    name = bs.os_user
    if name is None and bs.pg_data is not None and bs.pg_data.exists():
        name = pwd.getpwuid(bs.pg_data.stat().st_uid).pw_name
    if name is None or name == pwd.getpwuid(os.geteuid()).pw_name:
        return None
    return name


def as_user(user: str | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    if os.geteuid() != 0:
        raise BackupError(f"pgBackRest must run as {user!r}: run Vern's backup as that user or as root")
    return ["runuser", "-u", user, "--", *argv]


def give_to(path: Path, user: str | None, mode: int = 0o700) -> None:
    """Create ``path`` (and its parents) for ``user``: owned by them, parents passable."""
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


def repo1(bs: BackupSettings, settings: Settings) -> Path:
    return Path(bs.repo1_path or bs.base(settings) / "pgbackrest")


def repo2(bs: BackupSettings, settings: Settings) -> Path:
    if bs.repo2_type == "s3":
        return Path(bs.repo2_path or "/vern")
    return Path(bs.repo2_path or bs.offsite(settings) / "pgbackrest")


def config_text(bs: BackupSettings, settings: Settings) -> str:
    """pgbackrest.conf for Vern's stanza. Refuses without a passphrase (never an unencrypted
    repository) and, for S3, without bucket, endpoint and keys."""
    passphrase = bs.passphrase()
    if not passphrase:
        raise BackupError("VERN_BACKUP_CIPHER_PASS(_FILE): a passphrase is required; "
                          "pgBackRest's repositories are always encrypted")
    if bs.pg_data is None:
        raise BackupError("VERN_BACKUP_PG_DATA: the data directory of Vern's PostgreSQL cluster is required")
    home = bs.config_path(settings).parent
    diff_kept = bs.pitr_days + 1
    lines = [
        "# Written by `vern backup configure`; changes here are overwritten.",
        "[global]",
        f"log-path={home / 'log'}",
        f"lock-path={home / 'lock'}",
        f"spool-path={home / 'spool'}",
        "log-level-console=warn",
        "log-level-file=info",
        "start-fast=y",
        "archive-timeout=60",
        # WAL pushed and fetched in the background, two processes: the backlog of a busy hour
        # does not hold a backup or a restore up segment by segment.
        "archive-async=y",
        "process-max=2",
        "compress-type=zst",
    ]
    for n, kind in ((1, "posix"), (2, bs.repo2_type)):
        prefix = f"repo{n}"
        lines += [
            f"{prefix}-type={kind}",
            f"{prefix}-path={repo1(bs, settings) if n == 1 else repo2(bs, settings)}",
            f"{prefix}-cipher-type=aes-256-cbc",
            f"{prefix}-cipher-pass={passphrase}",
            f"{prefix}-retention-full-type=time",
            f"{prefix}-retention-full={bs.weekly_weeks * 7}",
            f"{prefix}-retention-diff={diff_kept}",
            f"{prefix}-retention-archive-type=diff",
            f"{prefix}-retention-archive={diff_kept}",
        ]
        if kind == "s3":
            if not (bs.repo2_s3_bucket and bs.repo2_s3_endpoint and bs.repo2_s3_key and bs.s3_secret()):
                raise BackupError("VERN_BACKUP_REPO2_S3_BUCKET, _ENDPOINT, _KEY and _KEY_SECRET(_FILE) "
                                  "are required for an S3 repository")
            lines += [
                f"{prefix}-s3-bucket={bs.repo2_s3_bucket}",
                f"{prefix}-s3-endpoint={bs.repo2_s3_endpoint}",
                f"{prefix}-s3-region={bs.repo2_s3_region}",
                f"{prefix}-s3-key={bs.repo2_s3_key}",
                f"{prefix}-s3-key-secret={bs.s3_secret()}",
                f"{prefix}-s3-uri-style={bs.repo2_s3_uri_style}",
            ]
    lines += ["", f"[{bs.stanza}]", f"pg1-path={bs.pg_data}", f"pg1-port={bs.pg_port}",
              f"pg1-user={bs.pg_user}"]
    if bs.pg_socket is not None:
        lines.append(f"pg1-socket-path={bs.pg_socket}")
    return "\n".join(lines) + "\n"


def archive_command(bs: BackupSettings, settings: Settings) -> str:
    return (f"{bs.pgbackrest_bin} --config={bs.config_path(settings)} --stanza={bs.stanza} "
            "archive-push %p")


def write_config(bs: BackupSettings, settings: Settings) -> Path:
    """Write pgbackrest.conf (mode 0600, owned by the cluster's user: it holds the passphrase)
    and the directories it names."""
    user = os_user(bs)
    path = bs.config_path(settings)
    home = path.parent
    give_to(home, user, 0o700)
    for sub in ("log", "lock", "spool"):
        give_to(home / sub, user)
    give_to(repo1(bs, settings), user, 0o750)
    if bs.repo2_type == "posix":
        give_to(repo2(bs, settings), user, 0o750)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config_text(bs, settings))
    tmp.chmod(0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
    tmp.replace(path)
    return path


LOCK_RETRIES = 60  # seconds a command waits for a lock another pgBackRest process holds


def run(bs: BackupSettings, settings: Settings, *args: str, timeout: int | None = None) -> str:
    """One pgBackRest command on Vern's stanza; its standard output. Fails with its message.
    While another pgBackRest process (an archive push in the background) holds the lock it
    needs, it tries again once a second, for at most a minute."""
    for _ in range(LOCK_RETRIES):
        try:
            return _run_once(bs, settings, *args, timeout=timeout)
        except BackupError as exc:
            if "unable to acquire lock" not in str(exc):
                raise
            time.sleep(1)
    return _run_once(bs, settings, *args, timeout=timeout)


def _run_once(bs: BackupSettings, settings: Settings, *args: str, timeout: int | None = None) -> str:
    argv = as_user(os_user(bs), [bs.pgbackrest_bin, f"--config={bs.config_path(settings)}",
                                 f"--stanza={bs.stanza}", *args])
    try:
        # S603 is wrong here: argv built by Vern, no shell
        done = subprocess.run(argv, capture_output=True, text=True, check=False,  # noqa: S603
                              timeout=timeout or bs.command_timeout_s, cwd="/")
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"pgbackrest {args[-1]}: no answer within {exc.timeout} s") from exc
    except FileNotFoundError as exc:
        raise BackupError(f"{bs.pgbackrest_bin}: not installed (Debian package pgbackrest)") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"pgbackrest {args[-1]} failed ({done.returncode}): "
                          + " ".join(message[-3:]))
    return done.stdout


@dataclass
class PgBackup:
    label: str
    type: str
    repo: int
    started: datetime
    stopped: datetime
    size_bytes: int
    repo_size_bytes: int
    wal_start: str | None
    wal_stop: str | None


@dataclass
class PgInfo:
    status: str
    backups: list[PgBackup] = field(default_factory=list)
    wal_min: str | None = None
    wal_max: str | None = None


def _ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def info(bs: BackupSettings, settings: Settings) -> PgInfo:
    data = json.loads(run(bs, settings, "--output=json", "info") or "[]")
    if not data:
        return PgInfo(status="missing")
    stanza = data[0]
    result = PgInfo(status=str(stanza.get("status", {}).get("message", "")))
    mins = [a.get("min") for a in stanza.get("archive", []) if a.get("min")]
    maxs = [a.get("max") for a in stanza.get("archive", []) if a.get("max")]
    result.wal_min = min(mins) if mins else None
    result.wal_max = max(maxs) if maxs else None
    for b in stanza.get("backup", []):
        result.backups.append(PgBackup(
            label=b["label"], type=b["type"], repo=int(b.get("database", {}).get("repo-key", 1)),
            started=_ts(b["timestamp"]["start"]), stopped=_ts(b["timestamp"]["stop"]),
            size_bytes=int(b["info"]["size"]), repo_size_bytes=int(b["info"]["repository"]["delta"]),
            wal_start=(b.get("archive") or {}).get("start"), wal_stop=(b.get("archive") or {}).get("stop"),
        ))
    return result


def restore(bs: BackupSettings, settings: Settings, target: Path, *, label: str | None = None,
            at: datetime | None = None, repo: int | None = None, delta: bool = False,
            scratch: bool = True) -> None:
    """Restore into ``target`` (an empty directory, or the cluster's own with ``delta``).
    ``at``: point in time (``--type=time``); ``label`` alone: that backup as it ended
    (``--type=immediate``); neither: the newest backup and every WAL archived after it. A scratch copy never
    archives WAL (it would mix with the live cluster's)."""
    args = [f"--pg1-path={target}"]
    if label:
        args.append(f"--set={label}")
    if repo:
        args.append(f"--repo={repo}")
    if at is not None:
        stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
    elif label:
        args += ["--type=immediate", "--target-action=promote"]  # the backup's own moment
    if delta:
        args.append("--delta")
    if scratch:
        args.append("--archive-mode=off")
    run(bs, settings, *args, "restore")


# -- a PostgreSQL of its own (restore drills, tests) ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL server on a data directory, on a loopback port, run as ``user``."""

    data: Path
    port: int
    user: str | None
    bin: Path
    socket_dir: Path

    def _run(self, *argv: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        # S603 is wrong here: argv built by Vern, no shell
        return subprocess.run(as_user(self.user, list(argv)), capture_output=True, text=True,  # noqa: S603
                              check=False, timeout=timeout, cwd="/")

    def configure(self, **values: str) -> None:
        """Add settings to the cluster's postgresql.conf (the last line of a name wins)."""
        with (self.data / "postgresql.conf").open("a") as fh:
            for name, value in values.items():
                quoted = value.replace("'", "''")
                fh.write(f"{name} = '{quoted}'\n")

    def start(self, extra: str = "", timeout: int = 120) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.socket_dir} {extra}")
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                         str(self.socket_dir / "server.log"), "-o", opts, "-w", "-t", str(timeout),
                         "start", timeout=timeout + 10)
        if done.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = " ".join((self.socket_dir / "server.log").read_text().splitlines()[-5:])
            raise BackupError(f"PostgreSQL on {self.data} did not start: {done.stderr.strip()} {log}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` only for a cluster about to be thrown away (it does not
        wait for the last WAL to be archived)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                      "stop", timeout=70)

    def wait_promoted(self, url: str, timeout: float = 120) -> None:
        """Until recovery has ended (the restored server takes writes)."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        if not conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar():
                            return
                except sqlalchemy.exc.OperationalError:
                    pass
                if time.monotonic() > deadline:
                    raise BackupError(f"the restored PostgreSQL stayed in recovery for {timeout} s")
                time.sleep(0.2)
        finally:
            engine.dispose()


@contextlib.contextmanager
def running(cluster: Cluster, extra: str = "") -> Iterator[Cluster]:
    cluster.start(extra)
    try:
        yield cluster
    finally:
        cluster.stop()


def url_on_port(url: str, port: int, database: str | None = None) -> str:
    """The database URL ``url`` pointed at 127.0.0.1:``port`` (same user, password, database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(host="127.0.0.1", port=port)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)
