"""``vern audit …``: verify the whole trail, make and check proofs, seal, expire, show the key."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vern.audit import proofs, retention
from vern.audit.chain import Signer, log_for, us_to_datetime
from vern.audit.models import AuditEvent
from vern.audit.verify import verify as run
from vern.audit.witness import origin
from vern.core.cliutil import open_database, settings_or_exit
from vern.core.errors import VernError

app = typer.Typer(help="The tamper-evident audit trail: verify, prove, seal, expire.",
                  no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _open() -> tuple[Any, Any]:

    settings = settings_or_exit()
    return open_database(settings), settings


@app.command()
def verify(
    no_files: Annotated[bool, typer.Option("--no-files", help="Check the database only.")] = False,
    dirs: Annotated[list[Path] | None, typer.Option(
        "--dir", help="An audit log directory; repeat it for each machine that serves or runs "
                      "the worker (default: VERN_AUDIT_LOG_DIR).")] = None,
) -> None:
    """Check every record in the database and the log files against the signed checkpoints.
    Exits 1 naming the first bad record."""

    database, settings = _open()
    for d in dirs or []:
        if not d.is_dir():
            _fail(f"--dir: {d} is not a directory")
    started = time.perf_counter()
    report = run(database, settings, files=not no_files, directories=dirs or None)
    seconds = time.perf_counter() - started
    if report.problem is not None:
        what = "first bad record" if report.problem.seq is not None else "verification failed"
        _fail(f"{what}: {report.problem}")
    rate = report.checked / seconds if seconds > 0 else 0.0
    console.print(f"[green]ok[/]: {report.checked} records from {report.start}, "
                  f"{report.checkpoints} checkpoints, {report.files} log files "
                  f"({rate:,.0f} records/s)", highlight=False)
    if report.unsigned:
        console.print(f"{report.unsigned} newest records are not under a checkpoint yet "
                      "(run `vern audit seal`)")
    if report.pending:
        console.print(f"{report.pending} records are waiting to be sealed")
    for note in report.notes:
        console.print(note)


@app.command()
def seal() -> None:
    """Seal records written by other transactions and sign a checkpoint now."""

    database, settings = _open()
    log = log_for(database, settings)
    result = log.seal_pending(force_checkpoint=True)
    console.print(f"tree size {result.last_seq + 1}, checkpoint signed")
    if result.quarantined:
        err.print(f"[bold red]{result.quarantined} pending records quarantined, not sealed[/] "
                  "(`vern audit quarantined` lists them)", highlight=False)
    if log.witness_error:
        _fail(f"checkpoint not witnessed: {log.witness_error}")
    if result.quarantined:
        raise typer.Exit(1)


@app.command()
def witness() -> None:
    """Hand the newest checkpoint to the witnesses (VERN_AUDIT_WITNESS_DIR / _URL) now."""

    database, settings = _open()
    log = log_for(database, settings)
    if log.audit.witness_dir is None and not log.audit.witness_url:
        _fail("no witness configured (VERN_AUDIT_WITNESS_DIR or VERN_AUDIT_WITNESS_URL)")
    if not log.witness_now():
        _fail(f"checkpoint not witnessed: {log.witness_error}")
    console.print("[green]witnessed[/]")


@app.command()
def quarantined(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000,
                                       help="At most this many records.")] = 100,
) -> None:
    """Pending records that sealing refused (no valid MAC, a time going backwards): id, time,
    action and reason, oldest first."""
    from sqlalchemy import select


    database, _settings = _open()
    with database.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.id, AuditEvent.ts, AuditEvent.action, AuditEvent.quarantine)
            .where(AuditEvent.quarantine.is_not(None), AuditEvent.seq.is_(None))
            .order_by(AuditEvent.ts).limit(limit)).all()
    if not rows:
        console.print("no quarantined records")
        return
    for row in rows:
        console.print(f"{row.id}  {us_to_datetime(row.ts).isoformat()}  {row.action}  "
                      f"{row.quarantine}", highlight=False, markup=False)


@app.command()
def prove(  # noqa: PLR0917 - a command's options
    record_id: Annotated[str | None, typer.Option("--record", help="Record id to prove.")] = None,
    seq: Annotated[int | None, typer.Option("--seq", help="Record position to prove.")] = None,
    tree_size: Annotated[int | None, typer.Option("--size", help="Checkpoint size.")] = None,
    old: Annotated[int | None, typer.Option("--from", help="Consistency: older size.")] = None,
    new: Annotated[int | None, typer.Option("--to", help="Consistency: newer size.")] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Check a saved proof.")] = None,
) -> None:
    """Print an inclusion proof (--record/--seq) or a consistency proof (--from/--to) as JSON,
    or check a saved one (--check FILE)."""

    database, settings = _open()
    if check is not None:
        try:
            proof = json.loads(check.read_text())
        except (OSError, ValueError) as exc:
            _fail(f"--check: cannot read a proof from {check}: {exc}")
        signer = proofs.signer_for(settings)
        ok = (proofs.check_consistency(proof, signer) if "old" in proof
              else proofs.check_inclusion(proof, signer))
        if not ok:
            _fail("--check: the proof does not verify")
        console.print("[green]proof verifies[/]")
        return
    try:
        if old is not None:
            out = proofs.consistency(database, old=old, new=new)
        elif record_id is not None or seq is not None:
            out = proofs.inclusion(database, seq=seq, record_id=record_id, tree_size=tree_size)
        else:
            _fail("give --record or --seq (inclusion), or --from (consistency)")
            return
    except VernError as exc:
        _fail(str(exc.detail or exc.title))
        return
    sys.stdout.write(json.dumps(out, indent=2) + "\n")


@app.command()
def expire() -> None:
    """Remove records older than VERN_AUDIT_RETENTION_DAYS (up to a checkpoint)."""
    database, settings = _open()
    result = retention.expire(database, settings)
    console.print(f"removed {result.records} records and {result.files} log files; "
                  f"the trail now starts at {result.boundary}")


@app.command("public-key")
def public_key() -> None:
    """The Ed25519 public key that verifies checkpoints (base64), for customers and auditors,
    and the same key as a C2SP verifier key for the checkpoint notes."""

    _database, settings = _open()
    signer = Signer(settings)
    console.print(f"{signer.public_b64()}  (key id {signer.key_id})", highlight=False)
    console.print(f"C2SP verifier key: {signer.vkey(origin(settings))}", highlight=False)
