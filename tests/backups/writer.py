"""A writer for the kill -9 test: inserts one metric point into the ops database every
`interval` seconds and prints `id time` once each commit returned (an acknowledged write)."""

from __future__ import annotations

import sqlite3
import sys
import time


def main() -> None:
    """Write until killed."""
    path, interval = sys.argv[1], float(sys.argv[2])
    connection = sqlite3.connect(path, timeout=15, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=15000")
    while True:
        now = time.time()
        cursor = connection.execute(
            "INSERT INTO metric_points (series, at, value, source) VALUES (?, ?, ?, ?)",
            ("backup.test.writes", time.strftime("%Y-%m-%d %H:%M:%S"), now, "writer"),
        )
        print(cursor.lastrowid, now, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
