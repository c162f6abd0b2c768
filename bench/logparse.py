"""Log-line parsing and counting through the file-scan path, on one core.

Writes a Java/Tomcat style log (90% INFO, 7% WARN, 3% ERROR, every 50th error with a
five-line stack trace; one day of timestamps) to a temporary folder, then runs the archive
scan's path on it in this one process: read the file, parse each event with the shared parser
(`dutydesk.logs.formats.parse_line`), count per (source, minute, level), group warnings and
errors by template, and store the counts in a migrated SQLite database. Best of three runs.

The last line is

    logparse_lines_per_s=<int> events_per_s=<int> lines=<int>

Run from the repository root: `.venv/bin/python bench/logparse.py [--lines N]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from dutydesk import migrations
from dutydesk.db import build_engine, utcnow
from dutydesk.intake.logs import scan_file
from dutydesk.registry import load_domains

MESSAGES = {
    "INFO": [
        "Finished processing request in {n} seconds",
        "Exporting record {n} of study study-{s}",
        "Uploaded table {n} rows to parquet",
    ],
    "WARN": [
        "Unable to parse sharing options for hc '{h}', sharing scope value=null",
        "Slow query took {n} ms on shard {s}",
    ],
    "ERROR": [
        "Timeout after {n} ms reading record {h}",
        "Failed to write table study-{s}.health_data: HTTP {n}",
    ],
}


def write_log(path: Path, lines: int, seed: int = 1) -> int:
    """Write about `lines` lines; returns the exact number of lines written."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    written = 0
    with path.open("w") as handle:
        n = 0
        while written < lines:
            roll = rng.random()
            level = "INFO" if roll < 0.9 else "WARN" if roll < 0.97 else "ERROR"
            at = start + dt.timedelta(milliseconds=n * 86_400_000 // lines)
            message = rng.choice(MESSAGES[level]).format(
                n=rng.randrange(10_000), s=rng.randrange(5), h=f"{rng.getrandbits(40):x}"
            )
            stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"
            handle.write(f"{stamp} {level} [worker-{n % 4}] org.sage.bridge.Worker - {message}\n")
            written += 1
            if level == "ERROR" and n % 50 == 0:
                handle.write("java.lang.RuntimeException: boom\n")
                handle.writelines(
                    f"\tat org.sage.bridge.Worker.run(Worker.java:{i})\n" for i in range(4)
                )
                written += 5
            n += 1
    return written


def main() -> None:
    """Run the benchmark and print the result line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    options = parser.parse_args()
    load_domains()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "bridge.log"
        lines = write_log(log, options.lines)
        url = f"sqlite:///{Path(folder) / 'ops.sqlite'}"
        migrations.upgrade(url)
        engine = build_engine(url)
        best = float("inf")
        events = 0
        for attempt in range(3):
            with Session(engine) as session:
                started = time.perf_counter()
                result = scan_file(session, f"bench-{attempt}", log, "java", now=utcnow())
                session.commit()
                best = min(best, time.perf_counter() - started)
                events = result["events"]
        engine.dispose()
    print(f"{lines} lines ({events} events) in {best:.2f} s on one core")
    print(
        f"logparse_lines_per_s={int(lines / best)} events_per_s={int(events / best)} lines={lines}"
    )


if __name__ == "__main__":
    main()
