"""Inclusion proofs (one record is in the signed tree) and consistency proofs (a later signed tree
extends an earlier one: nothing was rewritten), RFC 9162, computed from the stored tiles and the
records themselves. A proof is checked against a signed checkpoint, so nothing read here has to be
trusted."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from vern.audit.canonical import FIELDS, canonical
from vern.audit.merkle import (
    Frontier,
    consistency_path,
    inclusion_path,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from vern.audit.models import AuditCheckpoint, AuditEvent, AuditHead, AuditTile
from vern.audit.signing import Signer
from vern.core.config import Settings
from vern.core.db import Database
from vern.core.errors import NotFound


class ProofUnavailable(NotFound):
    code = "proof-unavailable"
    title = "No proof can be made for this range"


@dataclass
class _Nodes:
    conn: Connection
    anchor: dict[tuple[int, int], bytes]

    def __post_init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.leaves: dict[int, bytes] = {}
        for h, idx, value in self.conn.execute(select(AuditTile.height, AuditTile.idx,
                                                      AuditTile.hash)):
            self.tiles[(h, idx)] = bytes(value)

    def _load_leaves(self, start: int, end: int) -> None:
        rows = self.conn.execute(
            select(*[getattr(AuditEvent, f) for f in FIELDS])
            .where(AuditEvent.seq >= start, AuditEvent.seq < end)
            .order_by(AuditEvent.seq)
        ).all()
        for row in rows:
            self.leaves[row[0]] = leaf_hash(canonical(row))

    def leaf(self, i: int) -> bytes:
        if i not in self.leaves:
            self._load_leaves(i - i % 256, i - i % 256 + 256)
        try:
            return self.leaves[i]
        except KeyError:
            raise ProofUnavailable(detail=f"record {i} is no longer kept") from None

    def mth(self, start: int, end: int) -> bytes:
        found = self.anchor.get((start, end))
        if found is not None:
            return found
        n = end - start
        if n == 1:
            return self.leaf(start)
        if n & (n - 1) == 0 and start % n == 0:
            h = n.bit_length() - 1
            tile = self.tiles.get((h, start >> h))
            if tile is not None:
                return tile
        k = largest_power_of_two_below(n)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))


def _checkpoint(conn: Connection, size: int | None) -> Any:
    query = select(AuditCheckpoint)
    query = (query.where(AuditCheckpoint.tree_size == size) if size is not None
             else query.order_by(AuditCheckpoint.tree_size.desc()).limit(1))
    cp = conn.execute(query).first()
    if cp is None:
        raise NotFound(detail=f"checkpoint at size {size}: not found" if size else
                       "no checkpoint yet")
    return cp


def _anchor(conn: Connection) -> dict[tuple[int, int], bytes]:
    """Subtree hashes of the retention anchor (records before it are gone)."""

    first = conn.scalar(select(AuditHead.retained_from).where(AuditHead.id == 1))
    if not first:
        return {}
    cp = conn.execute(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == first)).first()
    if cp is None or cp.frontier is None:
        return {}
    frontier = Frontier.decode(cp.tree_size, cp.frontier)
    return {(s, e): h for s, e, h in frontier.ranges()}


def checkpoint_json(cp: Any) -> dict[str, Any]:
    return {
        "tree_size": cp.tree_size,
        "root": base64.b64encode(bytes(cp.root)).decode(),
        "timestamp_us": cp.ts,
        "key_id": cp.key_id,
        "signature": base64.b64encode(bytes(cp.signature)).decode(),
    }


def inclusion(database: Database, *, seq: int | None = None, record_id: str | None = None,
              tree_size: int | None = None) -> dict[str, Any]:
    """Proof that one record is in the tree of a checkpoint (the latest by default)."""
    with database.engine.connect() as conn:
        query = select(*[getattr(AuditEvent, f) for f in FIELDS])
        query = (query.where(AuditEvent.id == record_id) if record_id is not None
                 else query.where(AuditEvent.seq == seq))
        row = conn.execute(query).first()
        if row is None or row[0] is None:
            raise NotFound(detail="record: not found or not sealed yet")
        cp = _checkpoint(conn, tree_size)
        if row[0] >= cp.tree_size:
            raise ProofUnavailable(detail="record: newer than the checkpoint; try again later")
        nodes = _Nodes(conn, _anchor(conn))
        line = canonical(row)
        path = inclusion_path(row[0], cp.tree_size, nodes.mth)
    return {
        "seq": row[0],
        "record_id": row[1],
        "leaf_data": line.decode(),
        "leaf_hash": base64.b64encode(leaf_hash(line)).decode(),
        "checkpoint": checkpoint_json(cp),
        "path": [base64.b64encode(p).decode() for p in path],
    }


def consistency(database: Database, *, old: int, new: int | None = None) -> dict[str, Any]:
    """Proof that the checkpoint at size ``new`` (latest by default) extends the one at ``old``."""
    with database.engine.connect() as conn:
        old_cp = _checkpoint(conn, old)
        new_cp = _checkpoint(conn, new)
        if old_cp.tree_size > new_cp.tree_size:
            raise ProofUnavailable(detail="old: larger than new")
        nodes = _Nodes(conn, _anchor(conn))
        path = (consistency_path(old_cp.tree_size, new_cp.tree_size, nodes.mth)
                if old_cp.tree_size != new_cp.tree_size else [])
    return {
        "old": checkpoint_json(old_cp),
        "new": checkpoint_json(new_cp),
        "path": [base64.b64encode(p).decode() for p in path],
    }


def path_between(conn: Connection, old: int, new: int) -> list[bytes]:
    """The RFC 9162 consistency path from a tree of size ``old`` to one of size ``new``
    (any sizes, not only those of stored checkpoints: a witness's or a customer's)."""
    if not 0 <= old <= new:
        raise ProofUnavailable(detail="old: larger than new")
    if old in (0, new):
        return []
    return consistency_path(old, new, _Nodes(conn, _anchor(conn)).mth)


def check_inclusion(proof: dict[str, Any], signer: Signer | None = None) -> bool:
    """What a customer runs: leaf from the data, path to the root, signature on the root."""
    cp = proof["checkpoint"]
    root = base64.b64decode(cp["root"])
    leaf = leaf_hash(proof["leaf_data"].encode())
    if base64.b64encode(leaf).decode() != proof["leaf_hash"]:
        return False
    path = [base64.b64decode(p) for p in proof["path"]]
    ok = verify_inclusion(proof["seq"], cp["tree_size"], leaf, path, root)
    if signer is not None:
        ok = ok and _signed(signer, cp)
    return ok


def check_consistency(proof: dict[str, Any], signer: Signer | None = None) -> bool:
    old, new = proof["old"], proof["new"]
    path = [base64.b64decode(p) for p in proof["path"]]
    ok = verify_consistency(old["tree_size"], new["tree_size"], base64.b64decode(old["root"]),
                            base64.b64decode(new["root"]), path)
    if signer is not None:
        ok = ok and _signed(signer, old) and _signed(signer, new)
    return ok


def _signed(signer: Signer, cp: dict[str, Any]) -> bool:
    return signer.verify(cp["key_id"], cp["tree_size"], base64.b64decode(cp["root"]),
                         cp["timestamp_us"], base64.b64decode(cp["signature"]))


def signer_for(settings: Settings) -> Signer:
    return Signer(settings)
