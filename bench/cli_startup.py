"""Start-up of the `dutydesk` command: `dutydesk --help` and a small `dutydesk logs query`.

Each command runs as a fresh process (`python -m dutydesk ...`, as an operator's shell runs it)
`--repeat` times (15); the median wall time counts, as the machine is shared. The median CPU
time of the process (user + system) is printed too: on a loaded machine it moves less than the
wall time. The commands:

- `dutydesk --help`: lists every command; imports none of the domains.
- `dutydesk logs query 'DIR/*.log' --format nginx` on a two-line nginx access log written to a
  temporary folder (which is also DUTYDESK_HOME and the allowed log root): the engine's start-up
  (DuckDB, Arrow) without the web app, the database models, Celery or apprise.

The small query is answered without DuckDB and Arrow (`logs/_small.py`). Its imports are also
measured with `python -X importtime` (the sum of the top-level imports' cumulative times, one
run): what start-up costs before the command does anything.

The issue measured `dutydesk --help` at 1.4 s before its commands loaded lazily, and a small
`logs query` took about 1.5 s; those are the baselines unless `--against REV` names a commit
whose `src/` is then extracted (`git archive`) and timed the same way, on this machine. The
target of both is under 0.3 s. The last line is

    help_s=<float> logs_query_s=<float> logs_query_import_s=<float> target_s=0.30
    logs_query_vs_target=<float> baseline_help_s=<float> help_speedup=<float>
    baseline_logs_query_s=<float> logs_query_speedup=<float>
    help_cpu_s=<float> logs_query_cpu_s=<float>
    [baseline_help_cpu_s=<float> baseline_logs_query_cpu_s=<float>]

`*_speedup` = baseline / now and `logs_query_vs_target` = logs_query_s / target_s (wall
times). Run from the repository root:
`.venv/bin/python bench/cli_startup.py [--repeat N] [--against REV]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ISSUE_BASELINE_HELP_S = 1.4
BASELINE_LOGS_QUERY_S = 1.5
TARGET_S = 0.3
ACCESS_LOG = (
    '127.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8"\n'
    '10.0.0.2 - - [24/Nov/2026:10:01:00 +0000] "GET /api/x HTTP/1.1" 404 0 "-" "Firefox/120"\n'
)


def environment(home: Path, source: Path | None) -> dict[str, str]:
    """This process's environment without DUTYDESK_*, the home set, `source` first on the path."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DUTYDESK_")}
    env.update({"DUTYDESK_HOME": str(home), "DUTYDESK_LOG_ROOTS": str(home)})
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def median_seconds(args: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """The median wall and CPU time of `python -m dutydesk ARGS`, run `repeat` times."""
    command = [sys.executable, "-m", "dutydesk", *args]
    subprocess.run(command, env=env, capture_output=True, check=True)  # warms the file cache
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def import_seconds(args: list[str], env: dict[str, str]) -> float:
    """Seconds `python -X importtime -m dutydesk ARGS` reports for its top-level imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dutydesk", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    total_us = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # a top-level import; nested ones are inside it
            total_us += int(cumulative)
    return total_us / 1e6


def extract_source(revision: str, into: Path) -> Path:
    """`src/` as it was at `revision`, written under `into`; returns the folder to import from."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src"], capture_output=True, check=True
    ).stdout
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    """Time both commands and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also time `--help` at this commit")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        (home / "access.log").write_text(ACCESS_LOG)
        env = environment(home, None)
        help_s, help_cpu = median_seconds(["--help"], env, options.repeat)
        print(f"dutydesk --help: median {help_s:.3f} s wall, {help_cpu:.3f} s CPU")
        query = ["logs", "query", str(home / "*.log"), "--format", "nginx"]
        query_s, query_cpu = median_seconds(query, env, options.repeat)
        print(f"dutydesk logs query (2 lines): median {query_s:.3f} s wall, {query_cpu:.3f} s CPU")
        query_import_s = import_seconds(query, env)
        print(f"dutydesk logs query: {query_import_s:.3f} s of imports (python -X importtime)")
        print(f"target {TARGET_S:.2f} s: logs query at {query_s / TARGET_S:.2f} x the target")
        baseline_s, baseline_query_s = ISSUE_BASELINE_HELP_S, BASELINE_LOGS_QUERY_S
        cpu_figures = f"help_cpu_s={help_cpu:.2f} logs_query_cpu_s={query_cpu:.2f}"
        if options.against:
            old = environment(home, extract_source(options.against, home))
            baseline_s, baseline_cpu = median_seconds(["--help"], old, options.repeat)
            baseline_query_s, baseline_query_cpu = median_seconds(query, old, options.repeat)
            print(
                f"at {options.against}: dutydesk --help median {baseline_s:.3f} s wall, "
                f"{baseline_cpu:.3f} s CPU; logs query median {baseline_query_s:.3f} s wall, "
                f"{baseline_query_cpu:.3f} s CPU"
            )
            cpu_figures += (
                f" baseline_help_cpu_s={baseline_cpu:.2f}"
                f" baseline_logs_query_cpu_s={baseline_query_cpu:.2f}"
            )
        else:
            print(
                f"baselines: the issue's {baseline_s:.2f} s for dutydesk --help, "
                f"{baseline_query_s:.2f} s for a small logs query"
            )
    print(
        f"help_s={help_s:.2f} logs_query_s={query_s:.2f} logs_query_import_s={query_import_s:.2f} "
        f"target_s={TARGET_S:.2f} logs_query_vs_target={query_s / TARGET_S:.2f} "
        f"baseline_help_s={baseline_s:.2f} help_speedup={baseline_s / help_s:.1f} "
        f"baseline_logs_query_s={baseline_query_s:.2f} "
        f"logs_query_speedup={baseline_query_s / query_s:.1f} {cpu_figures}"
    )


if __name__ == "__main__":
    main()
