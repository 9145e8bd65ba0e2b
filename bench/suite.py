"""How long ``make test`` takes: the whole suite as CI runs it (every service required, one worker
per core, each test file in one worker), timed from the outside.

    python bench/suite.py            # every test (minutes)
    python bench/suite.py --quick    # a few fast files, to try the benchmark itself (< 1 minute)

The last line is one JSON object: the wall time, the tests run, the time the workers spent in
tests (setup, call and teardown, summed over all workers), the part of the wall time the workers
were busy, the slowest files, and the machine (cores, load average before the run: the figure
means something only on a quiet machine).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["tests/core/test_errors.py", "tests/core/test_crypto.py", "tests/audit/test_canonical.py",
         "tests/accounts/test_sessions.py"]


def run(paths: list[str], jobs: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="vern-bench-suite-") as folder:
        report = Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-n", jobs, "--dist", "loadfile", "-q",
                   "-p", "no:cacheprovider", f"--junitxml={report}", *paths]
        env = {**os.environ, "VERN_REQUIRE_SERVICES": os.environ.get("VERN_REQUIRE_SERVICES", "1")}
        load = os.getloadavg()
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - started
        if not report.exists():
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"pytest wrote no report (exit code {done.returncode})")
        tree = ET.parse(report)  # noqa: S314 - the report pytest just wrote here, not outside input
    per_file: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    for case in tree.iter("testcase"):
        per_file[case.get("classname") or "?"] += float(case.get("time") or 0)
        outcome = next((child.tag for child in case
                        if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[outcome] += 1
    busy = sum(per_file.values())
    workers = (os.cpu_count() or 1) if jobs == "auto" else int(jobs)
    return {
        "suite": "quick" if paths else "all",
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        "tests": sum(outcomes.values()),
        "passed": outcomes["passed"],
        "failed": outcomes["failure"] + outcomes["error"],
        "skipped": outcomes["skipped"],
        "workers": workers,
        "test_time_s": round(busy, 1),
        "workers_busy_share": round(busy / (wall * workers), 3) if wall else 0.0,
        "slowest_files_s": {name: round(seconds, 1) for name, seconds in per_file.most_common(10)},
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few fast test files only")
    parser.add_argument("--jobs", default="auto", help="pytest-xdist workers (default: one per core)")
    args = parser.parse_args()
    result = run(QUICK if args.quick else [], args.jobs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
