"""Backups of Vern's own database: run, list, restore, and the restore drill (``verify``).

Every backup, restore and drill is recorded in ``backup_runs``/``backup_drills`` and in the
audit trail, in one transaction. On PostgreSQL the work is pgBackRest's
(``vern.backup.pgbackrest``); on SQLite the online backup API's (``vern.backup.sqlite_backup``).
The data keys are backed up apart after each data backup (``vern.backup.keys``) and put back,
never resurrected, after every restore.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from vern.audit.service import record
from vern.audit.verify import verify as verify_trail
from vern.backup import keys, pgbackrest, sqlite_backup
from vern.backup.models import BackupRun, RestoreDrill
from vern.backup.pgbackrest import BackupError
from vern.core.config import BackupSettings, Settings, backup_settings
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, VernError
from vern.datamap.connect import NoConnection
from vern.rights.connectors import Unreachable
from vern.rights.service import replay_erasures, replay_targets

__all__ = ["BackupError", "BackupInfo", "DrillResult", "backups", "engine_kind", "restore",
           "run_backup", "status", "verify"]

REPLAY_HINT = ("Product databases restored from a backup of their own: run `vern rights replay "
               "--database NAME --since TIME` to erase again everyone erased since that backup.")


def engine_kind(database: Database) -> str:
    return "sqlite" if database.engine.dialect.name == "sqlite" else "postgresql"


def _sqlite_file(url: str) -> Path:
    name = make_url(url).database
    if not name or name == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(name).resolve()


def _dirs(bs: BackupSettings, settings: Settings, sub: str) -> list[Path]:
    return [bs.base(settings) / sub, bs.offsite(settings) / sub]


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table of Vern's database (system work on a bare connection)."""
    with engine.connect() as conn:
        names = sorted(inspect(conn).get_table_names())
        # S608 is wrong here: names from the database's own catalogue, quoted
        return {n: int(conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar() or 0)  # noqa: S608
                for n in names}


@dataclass
class BackupInfo:
    """One data backup as the tools see it (files or pgBackRest's repositories)."""

    label: str
    engine: str
    recovery_point: datetime
    size_bytes: int
    copies: list[str]
    type: str = "full"


# -- run ------------------------------------------------------------------------------------------


def _record_run(database: Database, run: BackupRun, actor_user_id: str | None) -> None:
    with database.transaction(Scope.system("backup evidence")) as session:
        session.add(run)
        record(session, f"backup.{run.kind}_backup", org_id=None, actor_user_id=actor_user_id,
               resource=f"backup:{run.label}", outcome="success" if run.ok else "failure",
               details={"new": {"engine": run.engine, "size_bytes": run.size_bytes,
                                "copies": run.copies, "error": run.error}})


def _key_backup(database: Database, settings: Settings, bs: BackupSettings, engine: str,
                actor_user_id: str | None) -> BackupRun:
    label = sqlite_backup.label_for(utcnow())
    rows = keys.snapshot(database.engine)
    paths = keys.write(rows, label, _dirs(bs, settings, "keys"))
    pruned = keys.prune(_dirs(bs, settings, "keys"), bs.key_keep_days)
    run = BackupRun(kind="keys", engine=engine, label=label, finished_at=utcnow(),
                    recovery_point=utcnow(), ok=True, size_bytes=sum(p.stat().st_size for p in paths),
                    copies=len(paths), detail={"keys": len(rows), "pruned": pruned,
                                               "paths": [str(p) for p in paths]})
    _record_run(database, run, actor_user_id)
    return run


def _full_tonight(bs: BackupSettings, now: datetime) -> bool:
    return now.weekday() == bs.full_weekday


def run_backup(database: Database, settings: Settings, bs: BackupSettings | None = None, *,
               actor_user_id: str | None = None, full: bool | None = None) -> BackupRun:
    """One data backup of Vern's database to both repositories, then a backup of the data keys;
    retention applied. Recorded (also when it fails, then raised)."""
    bs = bs or backup_settings()
    kind = engine_kind(database)
    started = utcnow()
    run = BackupRun(kind="data", engine=kind, label="", started_at=started)
    try:
        if kind == "sqlite":
            dirs = _dirs(bs, settings, "sqlite")
            taken = sqlite_backup.take(_sqlite_file(database.url), dirs)
            gone = sqlite_backup.expired(sqlite_backup.listing(dirs), bs.pitr_days, bs.weekly_weeks)
            for old in gone:
                sqlite_backup.remove(old)
            run.label, run.recovery_point = taken.label, taken.recovery_point
            run.size_bytes, run.copies = taken.size_bytes, len(taken.paths)
            run.detail = {"counts": taken.counts, "paths": [str(p) for p in taken.paths],
                          "expired": [b.label for b in gone], "sha256": taken.sha256}
        else:
            pgbackrest.write_config(bs, settings)
            pgbackrest.run(bs, settings, "stanza-create")
            btype = "full" if (full if full is not None else _full_tonight(bs, started)) else "diff"
            for repo in (1, 2):
                pgbackrest.run(bs, settings, f"--type={btype}", f"--repo={repo}", "backup")
            found = pgbackrest.info(bs, settings)
            newest = sorted(found.backups, key=lambda b: b.stopped)[-2:]
            labels = [f"repo{b.repo}:{b.label}" for b in newest]
            last = newest[-1]
            run.label = last.label
            run.recovery_point = last.stopped
            run.size_bytes = sum(b.repo_size_bytes for b in newest)
            run.copies = len(newest)
            run.detail = {"counts": row_counts(database.engine), "backups": labels,
                          "type": last.type, "database_bytes": last.size_bytes}
        run.ok = True
        run.finished_at = utcnow()
    except (BackupError, OSError, ValueError) as exc:
        run.ok, run.error, run.finished_at = False, str(exc)[:2000], utcnow()
        run.label = run.label or sqlite_backup.label_for(started)
        _record_run(database, run, actor_user_id)
        raise BackupError(str(exc)) from exc
    _record_run(database, run, actor_user_id)
    _key_backup(database, settings, bs, kind, actor_user_id)
    return run


# -- list and status ------------------------------------------------------------------------------


def backups(database: Database, settings: Settings, bs: BackupSettings | None = None) -> list[BackupInfo]:
    """Every data backup that can be restored, newest first."""
    bs = bs or backup_settings()
    if engine_kind(database) == "sqlite":
        return [BackupInfo(b.label, "sqlite", b.recovery_point, b.size_bytes,
                           [str(p) for p in b.paths])
                for b in sqlite_backup.listing(_dirs(bs, settings, "sqlite"))]
    found = pgbackrest.info(bs, settings)
    return [BackupInfo(b.label, "postgresql", b.stopped, b.repo_size_bytes, [f"repo{b.repo}"], b.type)
            for b in sorted(found.backups, key=lambda b: b.stopped, reverse=True)]


def status(database: Database) -> dict[str, Any]:
    """What the console shows: the last backup, the last verified restore, the recovery window
    (from the recorded evidence; no repository is read)."""
    with database.transaction(Scope.system("backup status")) as session:
        last = session.scalar(select(BackupRun).where(BackupRun.kind == "data", BackupRun.ok.is_(True))
                              .order_by(BackupRun.started_at.desc()).limit(1))
        failed = session.scalar(select(BackupRun).where(BackupRun.kind == "data")
                                .order_by(BackupRun.started_at.desc()).limit(1))
        drill = session.scalar(select(RestoreDrill).where(RestoreDrill.ok.is_(True))
                               .order_by(RestoreDrill.at.desc()).limit(1))
        last_drill = session.scalar(select(RestoreDrill).order_by(RestoreDrill.at.desc()).limit(1))
        oldest = None
        if last is not None:
            bs = backup_settings()
            since = utcnow() - timedelta(days=bs.pitr_days)
            oldest = session.scalar(
                select(BackupRun.recovery_point).where(
                    BackupRun.kind == "data", BackupRun.ok.is_(True),
                    BackupRun.recovery_point >= since).order_by(BackupRun.recovery_point).limit(1))
        drills = list(session.scalars(select(RestoreDrill).order_by(RestoreDrill.at.desc()).limit(10)))
        runs = list(session.scalars(select(BackupRun).order_by(BackupRun.started_at.desc()).limit(20)))
        session.expunge_all()
    return {
        "last_backup": last,
        "last_attempt_failed": failed is not None and not failed.ok,
        "last_error": failed.error if failed is not None and not failed.ok else None,
        "last_verified": drill,
        "last_drill_failed": last_drill is not None and not last_drill.ok,
        "window_start": oldest,
        "window_end": last.recovery_point if last is not None else None,
        "drills": drills,
        "runs": runs,
    }


# -- restore --------------------------------------------------------------------------------------


def _key_state(database: Database | None, bs: BackupSettings,
               settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    """The newest key state: the live table when it answers, else the newest key backup."""
    if database is not None:
        with contextlib.suppress(Exception):
            return "live", keys.snapshot(database.engine)
    found = keys.newest(_dirs(bs, settings, "keys"))
    if found is None:
        raise BackupError("no key state: the live database does not answer and there is no key backup "
                          "(without one no restored value could be read; nothing was restored)")
    return f"key backup {found[0]}", found[1]


@dataclass
class Restored:
    label: str
    recovery_point: datetime | None
    target: str
    keys: dict[str, int] = field(default_factory=dict)
    key_source: str = ""


def restore(database: Database, settings: Settings, bs: BackupSettings | None = None, *,
            label: str | None = None, at: datetime | None = None, target: Path | None = None,
            force: bool = False, actor_user_id: str | None = None) -> Restored:
    """Restore a backup (``label``, or the newest at or before ``at``, or the newest) into
    ``target``: a SQLite file, or a PostgreSQL data directory. Onto the live database only with
    ``force``. Keys reconciled after. Recorded in the audit trail."""
    bs = bs or backup_settings()
    kind = engine_kind(database)
    source, state = _key_state(database, bs, settings)
    if kind == "sqlite":
        live = _sqlite_file(database.url)
        dest = (target or live).resolve()
        if dest == live and not force:
            raise Conflict(detail="refused: this would overwrite the live database; stop Vern and "
                                  "give --force, or restore to another --target")
        chosen = sqlite_backup.pick(_dirs(bs, settings, "sqlite"), label, at)
        if chosen is None:
            raise BackupError("no such backup" if label else "no backup at or before that time")
        staging = sqlite_backup.restore_file(chosen, dest)
        engine = Database(f"sqlite:///{staging}")
        try:
            counts = keys.reconcile(engine.engine, state)
        finally:
            engine.dispose()
        if dest == live:
            database.dispose()
            for suffix in ("-wal", "-shm"):
                Path(str(dest) + suffix).unlink(missing_ok=True)
        staging.replace(dest)
        result = Restored(chosen.label, chosen.recovery_point, str(dest), counts, source)
    else:
        if bs.pg_data is None:
            raise BackupError("VERN_BACKUP_PG_DATA is not set")
        dest = Path(target or bs.pg_data)
        live_restore = dest.resolve() == bs.pg_data.resolve()
        if live_restore and not force:
            raise Conflict(detail="refused: this would overwrite the live database; stop PostgreSQL "
                                  "and give --force, or restore to another --target")
        pgbackrest.write_config(bs, settings)
        result = _pg_restore(database, settings, bs, dest, label=label, at=at, state=state,
                             live=live_restore)
        result.key_source = source
    with contextlib.suppress(Exception), database.transaction(Scope.system("backup restore")) as session:
        record(session, "backup.restored", org_id=None, actor_user_id=actor_user_id,
               resource=f"backup:{result.label}",
               details={"new": {"target": result.target, "keys": result.keys, "key_source": source,
                                "recovery_point": result.recovery_point.isoformat()
                                if result.recovery_point else None}})
    return result


def _pg_restore(database: Database, settings: Settings, bs: BackupSettings, dest: Path, *,
                label: str | None, at: datetime | None, state: list[dict[str, Any]], live: bool,
                keep_running: bool = False) -> Restored:
    user = pgbackrest.os_user(bs)
    if not live:
        if dest.exists() and any(dest.iterdir()):
            raise BackupError(f"--target {dest}: not empty")
        pgbackrest.give_to(dest, user, 0o700)
    pgbackrest.restore(bs, settings, dest, label=label, at=at, delta=live, scratch=not live)
    found = pgbackrest.info(bs, settings)
    chosen = next((b for b in found.backups if b.label == label), None) if label else None
    point = at or (chosen.stopped if chosen else max((b.stopped for b in found.backups), default=None))
    # Start it where no client can reach it (a loopback port of its own, a private socket
    # directory), bring the keys to the newest state, stop it.
    sockets = Path(tempfile.mkdtemp(prefix="vern-restore-", dir=bs.scratch(settings).parent
                                    if bs.scratch(settings).parent.exists() else None))
    sockets.chmod(0o711)
    pgbackrest.give_to(sockets / "s", user, 0o700)
    cluster = pgbackrest.Cluster(dest, pgbackrest.free_port(), user, pgbackrest.pg_bin(bs), sockets / "s")
    url = pgbackrest.url_on_port(database.url, cluster.port)
    try:
        cluster.start("-c archive_mode=off")
        cluster.wait_promoted(url)
        restored = Database(url)
        try:
            counts = keys.reconcile(restored.engine, state)
        finally:
            restored.dispose()
    finally:
        cluster.stop()
        shutil.rmtree(sockets, ignore_errors=True)
    return Restored(label or (chosen.label if chosen else "newest"), point, str(dest), counts)


# -- the restore drill ----------------------------------------------------------------------------


@dataclass
class DrillResult:
    ok: bool
    label: str
    recovery_point: datetime | None
    audit_ok: bool
    counts: dict[str, Any]
    problem: str | None
    seconds: float
    keys: dict[str, int] = field(default_factory=dict)
    hint: str = REPLAY_HINT
    replays: list[dict[str, Any]] = field(default_factory=list)


def _replay(database: Database, names: list[str], since: datetime | None,
            urls: dict[str, str] | None, actor_user_id: str | None) -> list[dict[str, Any]]:
    """The product-database step of the drill: `vern rights replay` on each product database
    named (restored from a backup of its own taken at ``since``), each result kept as evidence;
    a replay that cannot be done is a finding of the drill (``ok`` false, ``problem``)."""
    out: list[dict[str, Any]] = []
    targets: list[str] = []
    for name in names:  # a system (each of its databases) or one database
        try:
            targets += [t for t in replay_targets(database, name) if t not in targets]
        except VernError as exc:
            out.append({"database": name, "since": since.isoformat() if since else None,
                        "ok": False, "problem": f"replay of {name}: {exc.detail}"[:1000]})
    for name in targets:
        item: dict[str, Any] = {"database": name,
                                "since": since.isoformat() if since is not None else None}
        if since is None:
            out.append(item | {"ok": False, "problem": "no time to replay from: the backup's "
                                                       "recovery point is unknown"})
            continue
        try:
            done = replay_erasures(database, name, since, urls=urls, actor_user_id=actor_user_id)
        except (VernError, Unreachable, RuntimeError, SQLAlchemyError, NoConnection) as exc:
            detail = getattr(exc, "detail", None) or str(exc)
            out.append(item | {"ok": False, "problem": f"replay of {name}: {detail}"[:1000]})
            continue
        out.append(item | done | {"ok": True})
    return out


def _counts_at_backup(database: Database, label: str) -> dict[str, int] | None:
    with database.transaction(Scope.system("backup drill")) as session:
        run = session.scalar(select(BackupRun).where(BackupRun.kind == "data", BackupRun.label == label,
                                                     BackupRun.ok.is_(True)))
        return dict((run.detail or {}).get("counts") or {}) if run is not None else None


def _check(restored: Database, settings: Settings, expected: dict[str, int] | None,
           exact: bool) -> tuple[bool, dict[str, Any], list[str]]:

    problems: list[str] = []
    report = verify_trail(restored, settings, files=False)
    if not report.ok:
        problems.append(f"audit trail: {report.problem}")
    found = row_counts(restored.engine)
    counts: dict[str, Any] = {}
    for name, n in sorted((expected or {}).items()):
        if name == "data_keys":
            continue
        got = found.get(name)
        counts[name] = {"backup": n, "restored": got}
        if got is None:
            problems.append(f"table {name}: missing in the restore")
        elif exact and got != n:
            problems.append(f"table {name}: {got} rows restored, {n} at backup")
    for name, n in found.items():
        counts.setdefault(name, {"backup": None, "restored": n})
    if expected is None:
        problems.append("no row counts recorded for this backup (taken elsewhere?)")
    return report.ok, counts, problems


def verify(
        database: Database, settings: Settings, bs: BackupSettings | None = None, *,
           label: str | None = None, actor_user_id: str | None = None,
           replay: list[str] | None = None, replay_since: datetime | None = None,
           replay_urls: dict[str, str] | None = None) -> DrillResult:
    """Restore the newest backup (or ``label``) into a scratch database, put the keys back, check
    the audit trail and the rows per table against those counted at backup; record the result
    (``backup_drills`` and the audit trail). The scratch copy is removed after.

    ``replay``: product databases (names in the published map) restored from backups of their
    own; the drill then runs `vern rights replay` on each from ``replay_since`` (the time of
    that backup; default: the recovery point of Vern's backup just verified), and records each
    result (``replays``); a replay that fails fails the drill."""
    bs = bs or backup_settings()
    kind = engine_kind(database)
    began = time.monotonic()
    work = _scratch_dir(bs, settings)
    drill = _Drill(label or "")
    try:
        _source, state = _key_state(database, bs, settings)
        restore_and_check = _drill_sqlite if kind == "sqlite" else _drill_postgresql
        restore_and_check(drill, _DrillPlace(database, settings, bs, work, state), label)
    except (BackupError, OSError, ValueError) as exc:
        drill.problems.append(str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    replays = _replay(database, replay, replay_since or drill.point, replay_urls,
                      actor_user_id) if replay else []
    drill.problems += [str(r["problem"]) for r in replays if not r["ok"]]
    seconds = time.monotonic() - began
    result = DrillResult(not drill.problems, drill.label, drill.point, drill.audit_ok,
                         drill.counts, "; ".join(drill.problems)[:2000] or None, seconds,
                         drill.key_counts, replays=replays)
    _record_drill(database, kind, result, actor_user_id)
    return result


def _scratch_dir(bs: BackupSettings, settings: Settings) -> Path:
    """A new directory for one drill's restore, under the scratch root."""
    scratch_root = bs.scratch(settings)
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch_root.chmod(0o711)
    work = Path(tempfile.mkdtemp(prefix="drill-", dir=scratch_root))
    work.chmod(0o711)
    return work


@dataclass(frozen=True)
class _DrillPlace:
    """Where a drill restores: the live database, the settings, the drill's scratch directory
    and the key state to put back."""

    database: Database
    settings: Settings
    bs: BackupSettings
    work: Path
    state: list[dict[str, Any]]


@dataclass
class _Drill:
    """What a drill has found so far, filled in step by step: a step that fails keeps what the
    steps before it found."""

    label: str
    point: datetime | None = None
    audit_ok: bool = False
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    key_counts: dict[str, int] = field(default_factory=dict)

    def check(self, place: _DrillPlace, restored: Database, *, exact: bool) -> None:
        """Put the keys back into the restored database, then check it against the backup."""
        self.key_counts = keys.reconcile(restored.engine, place.state)
        self.audit_ok, self.counts, self.problems = _check(
            restored, place.settings, _counts_at_backup(place.database, self.label), exact=exact)


def _drill_sqlite(drill: _Drill, place: _DrillPlace, label: str | None) -> None:
    chosen = sqlite_backup.pick(_dirs(place.bs, place.settings, "sqlite"), label)
    if chosen is None:
        raise BackupError("no backup to verify: run `vern backup run` first")
    drill.label, drill.point = chosen.label, chosen.recovery_point
    staging = sqlite_backup.restore_file(chosen, place.work / "vern.db")
    restored = Database(f"sqlite:///{staging}")
    try:
        drill.check(place, restored, exact=True)
    finally:
        restored.dispose()


def _drill_postgresql(drill: _Drill, place: _DrillPlace, label: str | None) -> None:
    bs, settings, work = place.bs, place.settings, place.work
    found = pgbackrest.info(bs, settings)
    if not found.backups:
        raise BackupError("no backup to verify: run `vern backup run` first")
    chosen_pg = (next((b for b in found.backups if b.label == label), None) if label
                 else max(found.backups, key=lambda b: b.stopped))
    if chosen_pg is None:
        raise BackupError(f"no backup {label}")
    drill.label, drill.point = chosen_pg.label, chosen_pg.stopped
    user = pgbackrest.os_user(bs)
    data = work / "data"
    pgbackrest.give_to(data, user, 0o700)
    pgbackrest.give_to(work / "s", user, 0o700)
    pgbackrest.restore(bs, settings, data, label=chosen_pg.label, scratch=True)
    cluster = pgbackrest.Cluster(data, pgbackrest.free_port(), user, pgbackrest.pg_bin(bs),
                                 work / "s")
    url = pgbackrest.url_on_port(place.database.url, cluster.port)
    with pgbackrest.running(cluster, "-c archive_mode=off"):
        cluster.wait_promoted(url)
        restored = Database(url)
        try:
            drill.check(place, restored, exact=False)
        finally:
            restored.dispose()


def _record_drill(database: Database, kind: str, result: DrillResult,
                  actor_user_id: str | None) -> None:
    """The drill's evidence: its row in ``backup_drills`` and its audit record."""
    replays = result.replays
    summary = [{k: r.get(k) for k in ("database", "since", "ok", "entries", "rows")}
               for r in replays]
    with database.transaction(Scope.system("backup drill evidence")) as session:
        session.add(RestoreDrill(engine=kind, label=result.label or "-",
                                 recovery_point=result.recovery_point, ok=result.ok,
                                 audit_ok=result.audit_ok, seconds=round(result.seconds),
                                 counts=result.counts, problem=result.problem,
                                 actor_user_id=actor_user_id, replays=replays or None))
        record(session, "backup.verified", org_id=None, actor_user_id=actor_user_id,
               resource=f"backup:{result.label or '-'}", outcome="success" if result.ok else "failure",
               details={"new": {"audit_ok": result.audit_ok, "keys": result.keys,
                                "problem": result.problem}
                        | ({"replays": summary} if summary else {})})


def overview_line(database: Database) -> dict[str, Any]:
    """What a customer's overview says of backups: when the last one was taken and the last
    restore verified, and how far back a restore reaches (no names, no paths)."""
    state = status(database)
    return {
        "last": state["last_backup"].recovery_point if state["last_backup"] is not None else None,
        "verified": state["last_verified"].at if state["last_verified"] is not None else None,
        "pitr_days": backup_settings().pitr_days,
    }
