"""The export's property test, run long: many drawn studies, every cell against the reference.

Runs `tests/export/test_export_properties.py` with `--examples` examples per record-store
backend (SQLite always; PostgreSQL too when DUTYDESK_TEST_POSTGRES_URL is set), each a study
of every field type with hostile values, exported by the engine and compared cell by cell and
file by file with the reference (`_values`, `_cells`). Hypothesis' statistics give the number
of cases each backend ran. The last line is

    export_property_cases=<int> failures=<int> seconds=<float>

Run from the repository root: `.venv/bin/python bench/export_properties.py --examples 2000`.
pytest's whole output is kept in `bench/out/export_properties.log`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/export/test_export_properties.py"


def main() -> int:
    """Run the property test long and print how many cases passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="cases per backend")
    args = parser.parse_args()
    env = os.environ | {
        "EXPORT_PROPERTY_EXAMPLES": str(args.examples),
        # A database name of its own, apart from any test run on the same server.
        "PYTEST_XDIST_WORKER": f"bench_props_{os.getpid()}",
    }
    started = time.perf_counter()
    completed = subprocess.run(
        [
            str(ROOT / ".venv/bin/pytest"),
            "-q",
            "-n",
            "0",
            "-p",
            "no:randomly",
            # A long run is long: the suite's 300 s per test would stop it part-way.
            "--timeout",
            "0",
            "--hypothesis-show-statistics",
            TEST,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    log = ROOT / "bench" / "out" / "export_properties.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(output)  # the whole pytest output, failures in full
    # Per phase: "- 1000 passing, 0 failing, and 12 invalid test cases".
    passing = sum(int(n) for n in re.findall(r"(\d+) passing, \d+ failing", output))
    failing = sum(int(n) for n in re.findall(r"(\d+) failing, and", output))
    for line in output.splitlines():
        if re.search(r"::test_|during \w+ phase|passing, |Typical runtimes| passed| failed", line):
            print(line)
    if completed.returncode != 0:  # the assertion and the failing case, as pytest gave them
        for line in output.splitlines():
            if line.startswith(("E ", ">", "case = ")):
                print(line[:2000], file=sys.stderr)
    failures = failing or (1 if completed.returncode != 0 else 0)
    print(f"export_property_cases={passing} failures={failures} seconds={seconds:.1f}")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
