"""Keeping Vern honest from the outside: the newest checkpoint a customer has seen, kept in a
file of their own, and a consistency proof from it to every newer one.

    from vern.sdk.checkpoints import CheckpointKeeper

    keeper = CheckpointKeeper("https://vern.example.com", token="vt_…",
                              path="/var/lib/product/vern-checkpoint.json",
                              public_key="…")  # from `vern audit public-key`
    keeper.check()   # e.g. hourly; raises TrailError when the trail was cut or rewritten

``check`` fetches the newest signed checkpoint (``GET /api/v1/audit/checkpoint``), checks its
Ed25519 signature against the pinned public key, and - when a checkpoint was kept before - asks
for the consistency proof from the kept one (``GET /api/v1/audit/proofs/consistency``) and checks
it against the two roots it already trusts (the proof's own copy of the roots is not used). Only
then is the new checkpoint written to the file (atomically). A smaller tree than the kept one, a
different root at the same size or a proof that does not verify raise ``TrailError`` and leave
the file as it was, so the evidence stays. Needs the ``cryptography`` package (Ed25519); the
token needs the ``audit.read`` permission.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from vern.audit.merkle import verify_consistency

Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]
"""``fetch(url, headers) -> (status, body)`` of a GET."""


class TrailError(Exception):
    """The trail is not what the kept checkpoint says it was: cut, rewritten or unverifiable."""


def urllib_fetch(timeout: float) -> Fetch:
    def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - configured URL
        try:
            # S310 is wrong here: the vendor's configured https URL
            with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310
                return int(res.status), res.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    return get


def checkpoint_message(size: int, root: bytes, ts: int) -> bytes:
    """What Vern signs for a checkpoint (``vern.audit.chain.checkpoint_message``)."""
    return f"vern-audit-checkpoint/v1\n{size}\n{base64.b64encode(root).decode()}\n{ts}\n".encode()


class CheckpointKeeper:
    def __init__(self, base_url: str, token: str, path: str | os.PathLike[str], *,
                 public_key: str | None = None, timeout: float = 10.0,
                 fetch: Fetch | None = None) -> None:
        self.base = base_url.rstrip("/") + "/api/v1/audit"
        self.path = Path(path)
        self.public_key = public_key
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "User-Agent": "vern-sdk-python/1"}
        self._fetch = fetch or urllib_fetch(timeout)

    def kept(self) -> dict[str, Any] | None:
        """The checkpoint kept in the file (None before the first ``check``)."""
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TrailError(f"{self.path}: cannot read the kept checkpoint: {exc}") from exc
        return data

    def _get(self, path: str) -> dict[str, Any]:
        status, body = self._fetch(self.base + path, self._headers)
        if status != 200:
            raise TrailError(f"GET {path}: {status} {body[:200].decode(errors='replace')}")
        found: dict[str, Any] = json.loads(body)
        return found

    def _verify_signature(self, public_key: str, cp: dict[str, Any]) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        message = checkpoint_message(int(cp["tree_size"]), base64.b64decode(cp["root"]),
                                     int(cp["timestamp_us"]))
        try:
            key.verify(base64.b64decode(cp["signature"]), message)
        except InvalidSignature:
            raise TrailError(f"the checkpoint at size {cp['tree_size']}: its signature does "
                             "not verify with the pinned public key") from None

    def check(self) -> dict[str, Any]:
        """Check the newest checkpoint against the kept one and keep it; returns it."""
        kept = self.kept()
        answer = self._get("/checkpoint")
        new = answer.get("checkpoint")
        if new is None:
            raise TrailError("Vern has no signed checkpoint yet")
        public_key = self.public_key or (kept or {}).get("public_key") or answer["public_key"]
        self._verify_signature(public_key, new)
        if kept is not None:
            old = kept["checkpoint"]
            self._check_extends(old, new)
        self._keep({"checkpoint": new, "public_key": public_key})
        return dict(new)

    def _check_extends(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_size, new_size = int(old["tree_size"]), int(new["tree_size"])
        old_root, new_root = base64.b64decode(old["root"]), base64.b64decode(new["root"])
        if new_size < old_size:
            raise TrailError(f"the trail has {new_size} records, but a checkpoint of {old_size} "
                             f"was seen before: records {new_size}..{old_size - 1} are missing")
        if new_size == old_size:
            if new_root != old_root:
                raise TrailError(f"the checkpoint at size {old_size} has another root than the "
                                 "one seen before: the trail was rewritten")
            return
        proof = self._get("/proofs/consistency?" + urlencode({"old": old_size,
                                                               "new": new_size}))
        path = [base64.b64decode(p) for p in proof["path"]]
        if not verify_consistency(old_size, new_size, old_root, new_root, path):
            raise TrailError(f"the checkpoint at size {new_size} does not extend the one at size "
                             f"{old_size} seen before: the trail was rewritten")

    def _keep(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
