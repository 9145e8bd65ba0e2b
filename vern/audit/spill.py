"""Request records the writer could not store before the process stopped: spilled to a file in
the audit log directory and taken in again by the next writer that starts.

A spill file is ``spill-<microseconds>-<pid>.jsonl``: one line per record, each the record's
fields as JSON sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the secret key -
the records hold the caller's address and user agent, which never lie in a file in clear. A
writer that starts renames a spill file to ``…jsonl.taken-<pid>`` before it reads it (so two
processes never take the same file), appends its records and then deletes it; a file taken by a
process that is gone is taken again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vern.audit.canonical import now_us

PREFIX = "spill-"
log = logging.getLogger("vern.audit")
_AD = b"vern-audit-spill/v1"


def _cipher(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vern-audit",
               info=b"request record spill v1").derive(secret)
    return AESGCM(key)


def write(directory: Path, secret: bytes, records: Sequence[dict[str, Any]]) -> Path:
    """Seal ``records`` into a new spill file (synced); returns its path. Raises ``OSError``."""
    directory.mkdir(parents=True, exist_ok=True)
    aead = _cipher(secret)
    lines = []
    for r in records:
        nonce = os.urandom(12)
        sealed = nonce + aead.encrypt(nonce, json.dumps(r, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"), _AD)
        lines.append(base64.b64encode(sealed) + b"\n")
    path = directory / f"{PREFIX}{now_us()}-{os.getpid()}.jsonl"
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"".join(lines))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)  # whole or not at all
    return path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(directory: Path) -> list[Path]:
    """The spill files this process now owns (renamed to ``.taken-<pid>``), oldest first."""
    if not directory.is_dir():
        return []
    taken = []
    for path in sorted(directory.glob(f"{PREFIX}*.jsonl*")):
        name = path.name
        if name.endswith(".partial"):
            continue
        if ".taken-" in name:
            owner = name.rsplit(".taken-", 1)[1]
            if owner.isdigit() and _alive(int(owner)) and int(owner) != os.getpid():
                continue
            base = name.rsplit(".taken-", 1)[0]
        else:
            base = name
        target = directory / f"{base}.taken-{os.getpid()}"
        if path != target:
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue  # taken by another process meanwhile
        taken.append(target)
    return taken


def read(path: Path, secret: bytes) -> Iterator[dict[str, Any]]:
    """The records of a spill file; a line that does not open is logged and skipped."""
    aead = _cipher(secret)
    with open(path, "rb") as fh:
        for n, raw_line in enumerate(fh, 1):
            line = raw_line.strip()
            if not line:
                continue
            try:
                raw = base64.b64decode(line, validate=True)
                data = aead.decrypt(raw[:12], raw[12:], _AD)
                yield json.loads(data.decode("utf-8", "surrogatepass"))
            except Exception:  # noqa: BLE001 - one bad line does not stop the rest
                log.error("audit spill %s: line %d does not open (another secret key?); "
                          "skipped", path.name, n)


def done(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
