"""The audit trail's per-record loops in C, when they are built (``vern/audit/_native.c``).

``lib`` is the compiled module, or None: when it could not be built (no compiler, no OpenSSL
headers) or when ``VERN_AUDIT_NATIVE=0`` is set, the pure-Python loops in ``vern.audit.chain``
and ``vern.audit.verify_fast`` run instead. Both give the same bytes - the Python loops are the
reference, and ``tests/audit/test_native.py`` compares the two on every build. What the C code
does and does not do:

* ``append``: per draft, the personal data sealed by the draft's AES-GCM object - the module's
  own ``Gcm`` (OpenSSL, the key schedule kept per key; ``KeyRing.cipher(key_id, make=Gcm)``)
  directly, any other (``cryptography``'s) through its ``encrypt`` - the canonical line, its
  RFC 9162 leaf hash and the frontier's node hashes (OpenSSL's SHA-256), the database row; the
  log's lock, statements and commit stay in Python.
* ``scan`` and ``drafts``: an ingest batch's checks and key subjects in one pass, and its drafts.
* ``walk``: the leaf and node hashes of record lines read back by ``vern audit verify``;
  ``joined``, ``copy_lines`` and ``lines``: those lines, from SQLite's JSON of a row's columns,
  from PostgreSQL's binary ``COPY`` and from a row's values.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("VERN_AUDIT_NATIVE", "1").strip() in ("0", "false", "no", "off"):
        return None
    try:
        return importlib.import_module("vern.audit._native")
    except ImportError:
        return None


lib: ModuleType | None = _load()


def describe() -> str:
    """For ``vern audit verify`` and the benchmark: which loops run."""
    return "C" if lib is not None else "Python"
