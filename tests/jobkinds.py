"""Job kinds for tests that run real workers, loaded with DUTYDESK_EXTRA_MODULES=tests.jobkinds.

Each kind leaves its traces in files under the folder named by its `dir` argument, so a test
(in another process than the worker) can see what ran and how often.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from dutydesk import registry


def _append_line(path: Path, line: str) -> int:
    """Append `line` to `path` and return how many lines it holds now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(line + "\n")
    return len(path.read_text().splitlines())


def read_lines(folder: Path, name: str, suffix: str) -> list[str]:
    """The lines a job kind recorded in `folder/name.suffix` (empty when it never ran)."""
    path = folder / f"{name}.{suffix}"
    return path.read_text().splitlines() if path.exists() else []


@registry.job_kind("test.touch")
def touch(_session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Create the marker file `dir/name.touched` (again: no change) and echo the args back."""
    marker = Path(args["dir"]) / f"{args['name']}.touched"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return {"touched": args["name"], "pid": os.getpid()}


@registry.job_kind("test.sleep")
def sleep(_session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Record a start, sleep, record a finish: `seconds` on the first run, `retry_seconds` after.

    `dir/name.started` gets one line per run that began and `dir/name.done` one per run that
    finished, so a test can tell a killed run from a completed one and count duplicates.
    """
    folder = Path(args["dir"])
    run = _append_line(folder / f"{args['name']}.started", f"pid {os.getpid()}")
    seconds = float(args["seconds"] if run == 1 else args.get("retry_seconds", args["seconds"]))
    time.sleep(seconds)
    _append_line(folder / f"{args['name']}.done", f"run {run} pid {os.getpid()}")
    return {"run": run, "slept": seconds}


@registry.job_kind("test.fail_once")
def fail_once(_session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """Fail on the first run (leaving `dir/name.failed`), succeed on every later one."""
    marker = Path(args["dir"]) / f"{args['name']}.failed"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"failed once in pid {os.getpid()}\n")
        raise RuntimeError("test.fail_once fails on its first run, as asked")
    return {"recovered": args["name"]}
