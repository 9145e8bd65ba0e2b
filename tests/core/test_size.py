"""Code a reviewer can hold in mind: no module of ``vern/`` over 600 lines, no function over 60
lines and no block above radon's grade C (cyclomatic complexity over 20), except the few listed
below, each with the reason it is better as it is. An entry that no longer exceeds its limit must
be removed, so the lists only shrink. Alembic migrations are generated schema and not counted."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[2]
MODULE_LINES = 600
FUNCTION_LINES = 60
COMPLEXITY = 20  # radon's grade C ends at 20

LONG_MODULES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}
COMPLEX_BLOCKS: dict[str, str] = {}


def _sources() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "vern").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if not relative.startswith("vern/migrations/versions/"):
            yield relative, path.read_text(encoding="utf-8")


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")


@functools.cache
def _measured() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Measured once per process, when a test first asks (not at collection, which every
    worker does for every module)."""
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    blocks: dict[str, int] = {}
    for name, source in _sources():
        lines = len(source.splitlines())
        if lines > MODULE_LINES:
            modules[name] = lines
        for qualname, node in _functions(ast.parse(source)):
            length = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
            if length > FUNCTION_LINES:
                functions[f"{name}::{qualname}"] = length
        for block in cc_visit(source):
            inner = [block, *getattr(block, "methods", ()), *getattr(block, "closures", ())]
            for part in inner:
                if part.complexity > COMPLEXITY:
                    qualname = (f"{part.classname}.{part.name}"
                                if getattr(part, "classname", None) else part.name)
                    blocks[f"{name}::{qualname}"] = part.complexity
    return modules, functions, blocks



def _compare(found: dict[str, int], allowed: dict[str, str], limit: str) -> None:
    over = [f"{key}: {value} ({limit})" for key, value in sorted(found.items()) if key not in allowed]
    stale = sorted(set(allowed) - set(found))
    assert not over, "over the limit without a stated reason:\n" + "\n".join(over)
    assert not stale, f"listed but within the limit now, remove from the list: {stale}"
    assert all(len(reason) > 20 for reason in allowed.values()), "every exception states its reason"


def test_no_module_over_600_lines() -> None:
    _compare(_measured()[0], LONG_MODULES, f"lines > {MODULE_LINES}")


def test_no_function_over_60_lines() -> None:
    _compare(_measured()[1], LONG_FUNCTIONS, f"lines > {FUNCTION_LINES}")


def test_no_block_above_radon_grade_c() -> None:
    _compare(_measured()[2], COMPLEX_BLOCKS, f"cyclomatic complexity > {COMPLEXITY}")


def test_the_measure_finds_what_it_should() -> None:
    source = "def f(x):\n" + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(31))
    assert len(source.splitlines()) > FUNCTION_LINES
    (block,) = cc_visit(source)
    assert block.complexity > COMPLEXITY
    assert [name for name, _ in _functions(ast.parse(source))] == ["f"]
