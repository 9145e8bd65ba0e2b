"""What is wrong with a data map, and where: each problem names its dotted place in the map and,
when the YAML has it, the line. ``Reader`` collects them while the parts of a map are read, with
the checks every part shares (a mapping, no unknown keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    place: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.place}: {self.message}"


class MapError(ValueError):
    """The map cannot be used; ``problems`` names each place that is wrong."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"the data map {source} has {len(problems)} problem(s):\n{lines}")


class Reader:
    """Collects the problems of one map (every one, not only the first) with their lines."""

    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def fail(self, place: str, message: str) -> None:
        line = self.lines.get(place)
        probe = place
        while line is None and "." in probe:
            probe = probe.rsplit(".", 1)[0]
            line = self.lines.get(probe)
        self.problems.append(Problem(place, message, line))

    def mapping(self, value: Any, place: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(place, f"must be a mapping, got {type(value).__name__}")
            return {}
        return {str(k): v for k, v in value.items()}

    def unknown_keys(self, value: dict[str, Any], allowed: set[str], place: str) -> None:
        for key in sorted(set(value) - allowed):
            self.fail(f"{place}.{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
