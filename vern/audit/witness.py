"""Witnesses of the signed checkpoints: copies of the newest tree head kept where Vern's database
and log files are not, so that cutting the newest records *and* their checkpoint from both is
still found (``vern audit verify`` checks the trail against the newest witnessed checkpoint).

* ``VERN_AUDIT_WITNESS_DIR``: a directory (another disk, a mount of another host, a directory
  only this witness may write) holding ``checkpoint.json`` (the newest witnessed checkpoint),
  ``checkpoint`` (the same as a C2SP signed note, with the witnesses' cosignatures) and
  ``witnessed.jsonl`` (every checkpoint witnessed, one line each). A new checkpoint replaces the
  stored one only when a consistency proof from it verifies; otherwise nothing is written and
  the refusal is raised.
* ``VERN_AUDIT_WITNESS_URL``: a C2SP ``tlog-witness`` (``POST <url>/add-checkpoint`` with the old
  size, the consistency proof and the checkpoint note); its cosignature is checked against
  ``VERN_AUDIT_WITNESS_KEY`` when given. The witness refuses (409) a checkpoint smaller than the
  one it cosigned last, and (422) one that does not extend it.

After every append that signs a checkpoint the log hands the *newest* checkpoint in the database
to ``witness`` (newest, so two processes witnessing at once never look like a truncation).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, select

from vern.audit import note
from vern.audit.canonical import us_to_datetime
from vern.audit.merkle import verify_consistency
from vern.audit.models import AuditCheckpoint, AuditHead
from vern.audit.proofs import ProofUnavailable, path_between
from vern.audit.signing import Signer
from vern.core.config import AuditSettings, Settings, audit_settings
from vern.core.db import Database

log = logging.getLogger(__name__)
_FILE = "checkpoint.json"
_NOTE = "checkpoint"
_HISTORY = "witnessed.jsonl"
_local = threading.Lock()
_url_sizes: dict[str, int] = {}  # the size each tlog-witness cosigned last, as far as known


class WitnessError(RuntimeError):
    """A checkpoint a witness refused, or a witness that could not be reached."""


@dataclass(frozen=True)
class Witnessed:
    size: int
    root: bytes
    ts: int
    key_id: str
    signature: bytes
    note: str  # the C2SP note, with any cosignatures

    def json(self) -> dict[str, Any]:
        return {"size": self.size, "root": self.root.hex(), "ts": self.ts,
                "key_id": self.key_id, "signature": self.signature.hex(), "note": self.note}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Witnessed:
        return cls(int(data["size"]), bytes.fromhex(data["root"]), int(data["ts"]),
                   str(data["key_id"]), bytes.fromhex(data["signature"]), str(data["note"]))

    def when(self) -> str:
        return us_to_datetime(self.ts).strftime("%Y-%m-%d %H:%M:%S UTC")


def origin(settings: Settings, audit: AuditSettings | None = None) -> str:
    return note.origin_of((audit or audit_settings()).origin, settings.base_url)


def newest_checkpoint(conn: Connection) -> Any:
    return conn.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc())
                        .limit(1)).first()


class WitnessDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def latest(self) -> Witnessed | None:
        try:
            data = json.loads((self.path / _FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise WitnessError(f"{self.path / _FILE}: cannot be read: {exc}") from exc
        try:
            return Witnessed.of(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise WitnessError(f"{self.path / _FILE}: not a witnessed checkpoint: {exc}") from exc

    def store(self, found: Witnessed) -> None:
        """Replace the stored checkpoint (write, sync, rename) and add it to the history."""
        for name, body in ((_FILE, json.dumps(found.json(), indent=1) + "\n"),
                           (_NOTE, found.note)):
            tmp = self.path / f".{name}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / name)
        with open(self.path / _HISTORY, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(found.json()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _b64(path: list[bytes]) -> str:
    return "".join(base64.b64encode(p).decode() + "\n" for p in path)


def add_checkpoint(url: str, old: int, proof: list[bytes], signed_note: str,
                   timeout: float) -> tuple[int, str]:
    """``POST <url>/add-checkpoint`` (C2SP tlog-witness): ``(status, body)``."""
    body = f"old {old}\n{_b64(proof)}\n{signed_note}"
    try:
        res = httpx.post(url.rstrip("/") + "/add-checkpoint", content=body.encode(),
                         timeout=timeout, headers={"Content-Type": "text/plain"})
    except httpx.HTTPError as exc:
        raise WitnessError(f"witness {url}: {exc}") from exc
    return res.status_code, res.text


def _to_url(conn: Connection, audit: AuditSettings, cp: Any, signed_note: str) -> str:
    """Cosignature lines of the tlog-witness at ``VERN_AUDIT_WITNESS_URL`` for ``cp``."""
    url = audit.witness_url
    old = min(_url_sizes.get(url, 0), cp.tree_size)
    for _attempt in range(3):
        proof = path_between(conn, old, cp.tree_size)
        status, body = add_checkpoint(url, old, proof, signed_note,
                                      audit.witness_timeout_seconds)
        if status == 409 and body.strip().isdigit():
            known = int(body.strip())
            if known > cp.tree_size:
                raise WitnessError(
                    f"witness {url} cosigned a tree of {known} records; the trail has only "
                    f"{cp.tree_size}: records {cp.tree_size}..{known - 1} are missing")
            if known == old:
                raise WitnessError(f"witness {url}: the checkpoint at size {known} differs "
                                   "from the one it cosigned (the trail was rewritten)")
            old = known
            continue
        if status != 200:
            what = {403: "the signature is not trusted (key or origin)",
                    404: "the origin is unknown to the witness",
                    422: "the consistency proof does not verify (the trail was rewritten)",
                    }.get(status, body.strip()[:200])
            raise WitnessError(f"witness {url}: refused with {status}: {what}")
        _url_sizes[url] = cp.tree_size
        cosig = "".join(line + "\n" for line in body.splitlines()
                        if line.startswith(note.DASH + " "))
        if audit.witness_key:
            verifier = note.Verifier.parse(audit.witness_key)
            try:
                ok = note.Note.parse(signed_note + cosig).verified_by(verifier)
            except note.NoteError as exc:
                raise WitnessError(f"witness {url}: {exc}") from exc
            if not ok:
                raise WitnessError(f"witness {url}: no cosignature of {verifier.name}")
        return cosig
    raise WitnessError(f"witness {url}: its size kept changing")


def witness(database: Database, settings: Settings, signer: Signer,
            audit: AuditSettings | None = None) -> Witnessed | None:
    """Hand the newest checkpoint to the configured witnesses (None when none is configured).
    Raises ``WitnessError`` when a witness refuses it: the trail is shorter than, or not
    consistent with, what was witnessed before."""
    audit = audit or audit_settings()
    if audit.witness_dir is None and not audit.witness_url:
        return None
    directory = WitnessDir(audit.witness_dir) if audit.witness_dir is not None else None
    lock = directory.locked() if directory is not None else contextlib.nullcontext()
    with _local, lock, database.engine.connect() as conn:
        cp = newest_checkpoint(conn)
        if cp is None:
            return None
        root = bytes(cp.root)
        if not signer.verify(cp.key_id, cp.tree_size, root, cp.ts, bytes(cp.signature)):
            raise WitnessError(f"checkpoint at size {cp.tree_size}: bad signature")
        signed_note = signer.note(origin(settings, audit), cp.tree_size, root)
        stored = directory.latest() if directory is not None else None
        if stored is not None:
            _check_extends(conn, stored, cp.tree_size, root, str(directory.path)
                           if directory is not None else "")
            if stored.size == cp.tree_size:
                return stored
        cosig = _to_url(conn, audit, cp, signed_note) if audit.witness_url else ""
        found = Witnessed(cp.tree_size, root, cp.ts, cp.key_id, bytes(cp.signature),
                          signed_note + cosig)
        if directory is not None:
            directory.store(found)
        return found


def _check_extends(conn: Connection, stored: Witnessed, size: int, root: bytes,
                   where: str) -> None:
    """Raise unless the tree of ``size`` and ``root`` extends the witnessed one."""
    if size < stored.size:
        raise WitnessError(
            f"the trail ends at {size} records, but a checkpoint of {stored.size} records "
            f"was witnessed in {where} at {stored.when()}: records {size}..{stored.size - 1} "
            f"and the checkpoint at size {stored.size} are missing (truncated)")
    try:
        path = path_between(conn, stored.size, size)
    except ProofUnavailable as exc:
        raise WitnessError(f"no consistency proof from the witnessed checkpoint at size "
                           f"{stored.size}: {exc.detail}") from exc
    if not verify_consistency(stored.size, size, stored.root, root, path):
        raise WitnessError(
            f"the trail is not consistent with the checkpoint of {stored.size} records "
            f"witnessed in {where} at {stored.when()}: records before {stored.size} were "
            "changed, removed or inserted (rewritten)")


def check_trail(  # noqa: PLR0911 - each finding returns at once
    database: Database, settings: Settings, signer: Signer,
    audit: AuditSettings | None = None,
) -> tuple[str | None, str | None]:
    """``(problem, note)`` of the trail against the newest checkpoint in the witness directory:
    a problem when the trail is shorter than it or not consistent with it."""
    audit = audit or audit_settings()
    if audit.witness_dir is None:
        return None, ("no witness directory (VERN_AUDIT_WITNESS_DIR): the newest records cut "
                      "together with their checkpoint would not be found here" + (
                          f"; the witness at {audit.witness_url} refuses such a trail at the "
                          "next checkpoint" if audit.witness_url else ""))
    directory = WitnessDir(audit.witness_dir)
    try:
        stored = directory.latest()
    except WitnessError as exc:
        return str(exc), None
    if stored is None:
        return None, f"nothing witnessed yet in {directory.path}"
    if not signer.verify(stored.key_id, stored.size, stored.root, stored.ts, stored.signature):
        return (f"the witnessed checkpoint in {directory.path} (size {stored.size}) has a bad "
                "signature"), None
    with database.engine.connect() as conn:
        cp = newest_checkpoint(conn)
        head = conn.execute(select(AuditHead.tree_size, AuditHead.retained_from)
                            .where(AuditHead.id == 1)).first()
        size = cp.tree_size if cp is not None else 0
        tree_size = head.tree_size if head is not None else 0
        seen = f"was witnessed in {directory.path} at {stored.when()}"
        if tree_size < stored.size:
            return (f"the trail ends at {tree_size} records, but a checkpoint of {stored.size} "
                    f"records {seen}: records {tree_size}..{stored.size - 1} and the "
                    f"checkpoint at size {stored.size} are missing (truncated)"), None
        if size < stored.size:
            return (f"the newest checkpoint is at size {size}, but one at size {stored.size} "
                    f"{seen}: the checkpoint at size {stored.size} is missing (removed)"), None
        if head is not None and stored.size < head.retained_from:
            return None, (f"the witnessed checkpoint (size {stored.size}) is older than "
                          "retention kept; witness again (`vern audit witness`)")
        try:
            _check_extends(conn, stored, size, bytes(cp.root), str(directory.path))
        except WitnessError as exc:
            return str(exc), None
    return None, (f"consistent with the checkpoint of {stored.size} records witnessed at "
                  f"{stored.when()}")
