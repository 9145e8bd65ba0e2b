"""A rule of the linters is switched off for a line only with the reason it is wrong there:
``# noqa: CODE - why`` on the line, or ``# CODE is wrong here: why`` on the line above."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "vern"
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z0-9, ]+))?(?P<rest>.*)$")


def test_every_noqa_in_vern_names_its_codes_and_its_reason() -> None:
    bare: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            found = NOQA.search(line)
            if found is None:
                continue
            codes = (found.group("codes") or "").strip()
            above = lines[number - 2].strip() if number > 1 else ""
            explained = found.group("rest").strip().startswith("-") and len(found.group("rest")) > 4
            explained = explained or (bool(codes) and above.startswith(f"# {codes} is wrong here:"))
            if not codes or not explained:
                bare.append(f"{path.relative_to(ROOT.parent)}:{number}: {line.strip()}")
    assert bare == [], "noqa without its codes or reason:\n" + "\n".join(bare)
