"""RFC 9162 Merkle tree hashing: leaves ``H(0x00 || d)``, nodes ``H(0x01 || l || r)``, SHA-256.

The log keeps only a *frontier* (the roots of the perfect subtrees covering the leaves so far,
largest first) to append and to compute the root; proofs are computed from a ``NodeSource`` that
can give the hash of any leaf range. Everything here is pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """Append-only compact range: ``nodes[i]`` is a perfect subtree of height ``heights[i]``.

    ``on_node(height, index, hash)`` is called whenever a perfect subtree of a watched height is
    completed (used to store tiles for fast proofs)."""

    __slots__ = ("heights", "nodes", "on_node", "size", "watch")

    def __init__(
        self,
        size: int = 0,
        nodes: Sequence[tuple[int, bytes]] = (),
        *,
        watch: frozenset[int] = frozenset(),
        on_node: Callable[[int, int, bytes], None] | None = None,
    ) -> None:
        self.size = size
        self.heights = [h for h, _ in nodes]
        self.nodes = [n for _, n in nodes]
        if sum(1 << h for h in self.heights) != size:
            raise ValueError("frontier does not cover the stated size")
        self.watch = watch
        self.on_node = on_node

    def copy(self) -> Frontier:
        return Frontier(self.size, list(zip(self.heights, self.nodes, strict=True)))

    def append(self, leaf: bytes) -> None:
        heights = self.heights
        nodes = self.nodes
        h = 0
        node = leaf
        size = self.size
        while heights and heights[-1] == h:
            node = node_hash(nodes.pop(), node)
            heights.pop()
            h += 1
            if h in self.watch and self.on_node is not None:
                self.on_node(h, size >> h, node)
        heights.append(h)
        nodes.append(node)
        self.size = size + 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def encode(self) -> bytes:
        return b"".join(bytes([h]) + n for h, n in zip(self.heights, self.nodes, strict=True))

    @classmethod
    def decode(cls, size: int, blob: bytes | None) -> Frontier:
        blob = bytes(blob or b"")
        nodes = [(blob[i], blob[i + 1 : i + 33]) for i in range(0, len(blob), 33)]
        return cls(size, nodes)

    def ranges(self) -> list[tuple[int, int, bytes]]:
        """The frontier's subtrees as ``(start, end, hash)``."""
        out = []
        start = 0
        for h, n in zip(self.heights, self.nodes, strict=True):
            out.append((start, start + (1 << h), n))
            start += 1 << h
        return out


def root_of(leaves: Sequence[bytes]) -> bytes:
    f = Frontier()
    for leaf in leaves:
        f.append(leaf)
    return f.root()


# -- proofs ------------------------------------------------------------------------------------

RangeHash = Callable[[int, int], bytes]
"""``mth(start, end)``: the Merkle tree hash of leaves ``[start, end)`` (RFC 9162 MTH)."""


def inclusion_path(index: int, size: int, mth: RangeHash) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[0:n]) with subtree hashes taken from ``mth``."""
    if not 0 <= index < size:
        raise ValueError("index outside the tree")

    def path(m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return [*path(m, start, k), mth(start + k, start + n)]
        return [*path(m - k, start + k, n - k), mth(start, start + k)]

    return path(index, 0, size)


def consistency_path(old: int, new: int, mth: RangeHash) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[0:n])."""
    if not 0 < old <= new:
        raise ValueError("sizes must satisfy 0 < old <= new")

    def subproof(m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [mth(start, start + n)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*subproof(m, start, k, complete), mth(start + k, start + n)]
        return [*subproof(m - k, start + k, n - k, False), mth(start, start + k)]

    return subproof(old, 0, new, True)


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2."""
    if old == new:
        return old_root == new_root and not path
    if old == 0 or old > new:
        return False
    proof = list(path)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        proof.insert(0, old_root)
    if not proof:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def mth_from_leaves(leaves: Sequence[bytes]) -> RangeHash:
    """A ``RangeHash`` over an in-memory list of leaf hashes (tests, small trees)."""

    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n == 1:
            return leaves[start]
        k = largest_power_of_two_below(n)
        return node_hash(mth(start, start + k), mth(start + k, end))

    return mth
