"""The package's import graph (docs/architecture.md, "Layers"): no cycle between modules or packages
beyond the ones listed below with their reasons, and imports at the top of their modules.

The graph is read from the source with ``ast``: every ``import vern…`` and ``from vern… import``,
at module level and inside functions (an import inside a function still closes a cycle, it only
hides it until the function runs). Imports under ``if TYPE_CHECKING:`` are left out: they never run.
The import-linter contracts in pyproject.toml (``make lint``) say which layer may import which;
this test says that nothing, whatever the layers, goes round in a circle.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import vern

PACKAGE = Path(vern.__file__).resolve().parent

# Module cycles, each with its reason: none. A new one fails (add it here only with a reason).
KNOWN_MODULE_CYCLES: dict[frozenset[str], str] = {}

# Packages that use each other's shared services both ways: accounts records its writes through
# vern.audit.service and sends mail through vern.notify.service, while audit's and notify's pages
# check access through vern.accounts.deps (and audit alerts by mail). No module cycle comes of it.
KNOWN_PACKAGE_CYCLES: dict[frozenset[str], str] = {
    frozenset({"access", "accounts", "audit", "notify"}):
        "access rules (accounts.deps) and audit recording / the outbox are used by every domain, "
        "including each other; accounts reads vendor staff's grants in force (access.grants)",
    frozenset({"retention", "rights"}):
        "a finished erasure erases the person in Vern (retention.erasure), which forgets the "
        "person's earlier requests and keys them as rights does (rights.expiry, rights.identities)",
    frozenset({"records", "trust"}):
        "the records console lists the files shared on the trust pages, which show the records",
}

# Function-local imports of Vern's own modules, per module, with the reason: none remain (an import
# inside a function hides a cycle until it runs).
LOCAL_IMPORT_REASONS: dict[str, str] = {}
MAX_LOCAL_IMPORTS = 0  # statements: 217 before the layers were drawn, none now


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return True
    return False


@functools.cache
def _graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Module → the Vern modules it imports; and every function-local import statement."""
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    local: list[tuple[str, int, str]] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "vern":
                wanted = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                          else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names if a.name.split(".")[0] == "vern"]
            else:
                continue
            if not wanted or _type_checking_only(node, parents):
                continue
            for target in {t for w in wanted if (t := _owner(w, modules)) and t != name}:
                edges[name].add(target)
            if _in_function(node, parents):
                local.append((name, node.lineno, ast.unparse(node)))
    return edges, local


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    nodes = set(edges) | {t for ts in edges.values() for t in ts}
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_is_read() -> None:
    edges, _local = _graph()
    assert "vern.core.db" in edges["vern.audit.service"]
    assert "vern.accounts.deps" in edges["vern.accounts.routes"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_no_module_cycle_beyond_the_known_ones() -> None:
    edges, _local = _graph()
    unexpected = [sorted(c) for c in _cycles(edges)
                  if not any(c <= known for known in KNOWN_MODULE_CYCLES)]
    assert unexpected == [], f"module import cycles: {unexpected}"


def test_no_package_cycle_beyond_the_shared_services() -> None:
    edges, _local = _graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for source, targets in edges.items():
        for target in targets:
            if _package(source) != _package(target) and _package(target) != "vern":
                packages[_package(source)].add(_package(target))
    unexpected = [sorted(c) for c in _cycles(packages)
                  if not any(c <= known for known in KNOWN_PACKAGE_CYCLES)]
    assert unexpected == [], f"package import cycles: {unexpected}"
    # the core, the console shell and the app wiring are in no cycle at all
    for cycle in _cycles(packages):
        assert not cycle & {"core", "console", "app"}, sorted(cycle)


def test_function_local_imports_are_few_and_have_a_reason() -> None:
    _edges, local = _graph()
    print(f"function-local imports of Vern modules: {len(local)}")
    without_reason = [f"{m}:{line}: {text}" for m, line, text in local if m not in LOCAL_IMPORT_REASONS]
    assert without_reason == [], "move these imports to the top of their module:\n" + "\n".join(
        without_reason)
    assert len(local) <= MAX_LOCAL_IMPORTS, f"{len(local)} function-local imports (> {MAX_LOCAL_IMPORTS})"
