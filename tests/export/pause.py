"""Loaded into real workers with DUTYDESK_EXTRA_MODULES by the kill test: the first table file a
worker is about to move into place, it leaves as a temporary file and hangs instead, once.

`DUTYDESK_TEST_PAUSE_DIR` names a folder; the pause writes `paused` there (with its pid) and
then sleeps until the test kills the process. Any later process sees `paused` and goes on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dutydesk.export.warehouse import Warehouse

FOLDER = os.environ.get("DUTYDESK_TEST_PAUSE_DIR")

if FOLDER:
    marker = Path(FOLDER) / "paused"
    original_move = Warehouse._move

    def _move_or_hang(self: Warehouse, source: str, target: str) -> None:
        if target.endswith(".parquet") and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{os.getpid()} {source}\n")
            while True:
                time.sleep(1)
        original_move(self, source, target)

    Warehouse._move = _move_or_hang  # type: ignore[method-assign]
