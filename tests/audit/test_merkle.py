"""RFC 9162 hashing and proofs, checked against a direct implementation of the definitions."""

from __future__ import annotations

from hashlib import sha256

from hypothesis import given
from hypothesis import strategies as st

from vern.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    inclusion_path,
    leaf_hash,
    mth_from_leaves,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def reference_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"record {i}".encode()) for i in range(n)]


def test_leaves_and_nodes_are_domain_separated() -> None:
    assert leaf_hash(b"a") == sha256(b"\x00a").digest()
    assert node_hash(b"l", b"r") == sha256(b"\x01lr").digest()
    assert root_of([]) == EMPTY_ROOT


@given(st.integers(0, 300))
def test_the_frontier_root_is_the_rfc_9162_tree_hash(n: int) -> None:
    assert root_of(leaves(n)) == reference_mth(leaves(n))


@given(st.integers(1, 200), st.data())
def test_every_inclusion_proof_verifies_and_a_wrong_leaf_does_not(n: int, data: st.DataObject) -> None:
    ls = leaves(n)
    i = data.draw(st.integers(0, n - 1))
    root = root_of(ls)
    path = inclusion_path(i, n, mth_from_leaves(ls))
    assert verify_inclusion(i, n, ls[i], path, root)
    assert not verify_inclusion(i, n, leaf_hash(b"forged"), path, root)
    if n > 1:
        assert not verify_inclusion((i + 1) % n, n, ls[i], path, root)


@given(st.integers(1, 200), st.data())
def test_consistency_proofs_verify_and_a_rewritten_history_does_not(n: int, data: st.DataObject) -> None:
    ls = leaves(n)
    m = data.draw(st.integers(1, n))
    path = consistency_path(m, n, mth_from_leaves(ls))
    assert verify_consistency(m, n, root_of(ls[:m]), root_of(ls), path)
    rewritten = [leaf_hash(b"changed"), *ls[1:m]]
    assert not verify_consistency(m, n, root_of(rewritten), root_of(ls), path)


@given(st.integers(0, 100), st.integers(0, 100))
def test_a_frontier_survives_encoding_and_keeps_appending(a: int, b: int) -> None:
    ls = leaves(a + b)
    f = Frontier()
    for leaf in ls[:a]:
        f.append(leaf)
    g = Frontier.decode(a, f.encode())
    for leaf in ls[a:]:
        g.append(leaf)
    assert g.root() == reference_mth(ls)


def test_completed_subtrees_are_reported_for_tiles() -> None:
    seen: list[tuple[int, int, bytes]] = []
    f = Frontier(watch=frozenset({8}), on_node=lambda h, i, n: seen.append((h, i, n)))
    ls = leaves(600)
    for leaf in ls:
        f.append(leaf)
    assert [(h, i) for h, i, _ in seen] == [(8, 0), (8, 1)]
    assert seen[1][2] == reference_mth(ls[256:512])
