"""What `--format auto` costs: the same grouped queries over 20,000 gzipped nginx files with
`--format nginx` and with `--format auto` (each file read in its own format), without the
parsed cache and through it.

Uses `bench/logs.py`'s generator (20,000 files, 500,000 lines by default). Each query runs
`--repeat` times (5), alternating the two formats, and the medians count: of wall seconds and
of the process's CPU seconds (every thread's), which a loaded machine disturbs less. It also
times what `auto` adds on one format by itself: telling the glob's format from its first
file. The last line is

    logs_auto_overhead_cold=<float> logs_auto_overhead_cached=<float>

each auto's median CPU seconds over the named format's, minus one (0.02 is 2 % more). Run from
the repository root: `.venv/bin/python bench/logs_auto.py` (`--files 2000` for a smoke check).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from dutydesk.logs import Query, run
from dutydesk.logs._auto import first_format, head_lines
from dutydesk.logs._files import FileList, Roots, list_local
from dutydesk.settings import get_settings
from logs import generate


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(query: Query, cache: bool) -> tuple[float, float, list[dict[str, object]]]:
    """(wall seconds, CPU seconds, answer) of one run."""
    started, started_cpu = time.perf_counter(), cpu()
    result = run(query, cache=cache)
    return time.perf_counter() - started, cpu() - started_cpu, result.table.to_pylist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dutydesk-logs-auto-") as temporary:
        root = Path(temporary)
        os.environ["DUTYDESK_HOME"] = str(root / "home")
        os.environ["DUTYDESK_LOG_ROOTS"] = str(root / "logs")
        get_settings.cache_clear()
        started = time.perf_counter()
        generate(root / "logs", args.files, args.lines)
        print(f"generated {args.files} files in {time.perf_counter() - started:.1f} s")
        source = (str(root / "logs"),)
        listed = FileList()
        list_local(source[0], Roots.parse(str(root / "logs")), listed)
        started = time.perf_counter()
        first_format(listed.files, head_lines)
        print(f"telling the format from the first file: {time.perf_counter() - started:.4f} s")
        overheads = {}
        for label, cache in (("cold", False), ("cached", True)):
            walls: dict[str, list[float]] = {"nginx": [], "auto": []}
            cpus: dict[str, list[float]] = {"nginx": [], "auto": []}
            answers = {}
            for name in ("nginx", "auto"):  # warm up (and fill the cache once)
                timed(Query(source, format=name, group_by=("hour", "status")), cache)
            for _ in range(args.repeat):
                for name in ("nginx", "auto"):
                    query = Query(source, format=name, group_by=("hour", "status"))
                    wall, used, answer = timed(query, cache)
                    walls[name].append(wall)
                    cpus[name].append(used)
                    answers[name] = answer
            assert answers["auto"] == answers["nginx"], "auto answered differently"
            wall = {name: statistics.median(values) for name, values in walls.items()}
            used = {name: statistics.median(values) for name, values in cpus.items()}
            overheads[label] = used["auto"] / used["nginx"] - 1
            print(
                f"{label}: nginx {wall['nginx']:.3f} s (cpu {used['nginx']:.3f} s), "
                f"auto {wall['auto']:.3f} s (cpu {used['auto']:.3f} s); "
                f"cpu overhead {overheads[label]:+.1%}; load {os.getloadavg()[0]:.1f}"
            )
    print(
        f"logs_auto_overhead_cold={overheads['cold']:.3f} "
        f"logs_auto_overhead_cached={overheads['cached']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
