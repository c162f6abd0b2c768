"""Export scale benchmark: a platform of 20 studies (one holding half the records) in a
PostgreSQL record store, exported by 1 and then 2 `dutydesk worker` processes on RabbitMQ.

The store is generated once per size into the PostgreSQL database `bench_scale_<records>`
(kept for the next invocation; not part of the figures). For each worker count a fresh desk
(ops database on PostgreSQL, its own broker queue, a local warehouse in a scratch folder)
runs `dutydesk export run --queue` over the whole window; the figures are

- records/s: the run's `numTotal` over the time from queueing the run to its end;
- peak RSS per worker: the largest sum of resident memory of a worker's process tree (the
  Celery main process and its pool process), sampled every 0.1 s from /proc;
- the scaling from 1 to 2 workers: records/s with 2 over records/s with 1;
- how many of the machine's cores were busy on average during the run (from /proc/stat:
  the workers, PostgreSQL and anything else), which bounds what more workers on the same
  machine can gain.

Each worker runs one study job at a time (`DUTYDESK_WORKER_CONCURRENCY=1`), its DuckDB capped
by `DUTYDESK_EXPORT_MEMORY_LIMIT` (default 1GiB), with a DuckDB thread per core unless
`--export-threads N` sets `DUTYDESK_EXPORT_THREADS` for the workers. Needs PostgreSQL and
RabbitMQ on this machine (`--postgres`, `--amqp`). Run from the repository root:
`.venv/bin/python bench/export_scale.py --records 1000000` (the issue's size is 10,000,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dutydesk.db import build_engine
from dutydesk.records.generate import generate
from dutydesk.records.store import records_session_factory, upgrade_records

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parent.parent
DUTYDESK = [str(ROOT / ".venv" / "bin" / "dutydesk")]
SEED = 20261207
STUDIES = 20  # one of them holds half the records
DAYS = 50
END_DATE = dt.date(2026, 11, 20)
START = "2026-01-01T00:00:00.000Z"
END = "2026-12-01T00:00:00.000Z"
PARTICIPANTS = 100  # per study
PAGE = 4096


def admin_url(postgres: str, database: str) -> str:
    return (
        make_url(postgres)
        .set(drivername="postgresql+psycopg", database=database)
        .render_as_string(hide_password=False)
    )


def fresh_database(postgres: str, name: str, *, keep: bool = False) -> tuple[str, bool]:
    """The URL of database `name`, created if missing (dropped first unless `keep`); and
    whether it existed."""
    engine = create_engine(admin_url(postgres, "postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = bool(
            connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
        )
        if exists and not keep:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if not exists or not keep:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url(postgres, name), exists and keep


def record_store(postgres: str, records: int) -> str:
    """The store of `records` records: half in study `big`, the rest over 19 others."""
    name = f"bench_scale_{records}"
    url, existed = fresh_database(postgres, name, keep=True)
    if existed:
        engine = build_engine(url)
        with engine.connect() as connection:
            count = (
                connection.execute(  # an earlier generation may have stopped early
                    text("SELECT CASE WHEN to_regclass('records') IS NULL THEN -1 END")
                ).scalar()
                or connection.execute(text("SELECT count(*) FROM records")).scalar()
            )
        engine.dispose()
        if count == records:
            print(f"store: {name} ({records:,} records, kept from an earlier run)", flush=True)
            return url
        url, _ = fresh_database(postgres, name)
    others = STUDIES - 1
    # The 19 small studies share half the records in whole days; the big study takes the
    # rest (10,000,000 gives it 5,000,150: 100,003 a day).
    per_other = (records - records // 2) // others // DAYS * DAYS
    big = records - per_other * others
    if big % DAYS or per_other < DAYS:
        raise SystemExit(f"--records must be a multiple of {DAYS} and at least {2 * others * DAYS}")
    print(f"store: generating {records:,} records into {name} ...", flush=True)
    started = time.perf_counter()
    upgrade_records(url)
    engine = build_engine(url)
    try:
        factory = records_session_factory(engine)
        common = {"seed": SEED, "participants": PARTICIPANTS, "days": DAYS, "attachment_share": 0.0}
        generate(
            factory,
            studies=1,
            records_per_day=big // DAYS,
            names=["big"],
            end_date=END_DATE,
            **common,
        )
        generate(
            factory,
            studies=others,
            records_per_day=per_other // DAYS,
            names=[f"study-{n:02d}" for n in range(others)],
            end_date=END_DATE,
            **common,
        )
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE studies SET project = coalesce(project, 'bench'), "
                    "data_access_team = coalesce(data_access_team, '1')"
                )
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # Rows not yet marked visible get their hint bits written by the first scan: the
            # first export after a generation would pay for that.
            connection.execute(text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()
    print(f"store: generated in {time.perf_counter() - started:.0f} s (not part of the figures)")
    return url


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * PAGE
        except (OSError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def cpu_ticks() -> tuple[int, int]:
    """Busy and total CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields) - idle, sum(fields)


def run_with(
    workers: int, postgres: str, amqp: str, store: str, scratch: Path, threads: int = 0
) -> dict[str, float]:
    """One export run over `workers` workers in a fresh desk; its figures."""
    ops, _ = fresh_database(postgres, "bench_scale_ops")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")},
        "DUTYDESK_HOME": str(scratch / "home"),
        "DUTYDESK_DATABASE_URL": ops,
        "DUTYDESK_RECORDS_URL": store,
        "DUTYDESK_WAREHOUSE": str(scratch / "warehouse"),
        "DUTYDESK_BROKER_URL": amqp,
        "DUTYDESK_BROKER_QUEUE": f"bench-scale-{os.getpid()}-{workers}",
        "DUTYDESK_WORKER_CONCURRENCY": "1",
        "DUTYDESK_EXPORT_THREADS": str(threads),
    }
    subprocess.run([*DUTYDESK, "db", "upgrade"], env=env, check=True, capture_output=True)
    procs = [
        subprocess.Popen(
            [*DUTYDESK, "worker"],
            env=env,
            stdout=open(scratch / f"worker-{n}.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n in range(workers)
    ]
    engine = build_engine(ops)
    peaks = [0] * workers
    try:
        deadline = time.monotonic() + 60
        while not all(
            "ready." in (scratch / f"worker-{n}.log").read_text() for n in range(workers)
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not start: see {scratch}")
            time.sleep(0.2)
        started = time.perf_counter()
        busy_before, total_before = cpu_ticks()
        subprocess.run(
            [*DUTYDESK, "export", "run", "--start", START, "--end", END, "--queue"],
            env=env,
            check=True,
            capture_output=True,
        )
        state = "queued"
        while state in ("queued", "running", "finishing"):
            for n, proc in enumerate(procs):
                peaks[n] = max(peaks[n], tree_rss(proc.pid))
            time.sleep(0.1)
            with engine.connect() as connection:
                state = (
                    connection.execute(text("SELECT state FROM export_runs")).scalar() or "queued"
                )
        seconds = time.perf_counter() - started
        busy_after, total_after = cpu_ticks()
        busy_cores = (
            (busy_after - busy_before) / max(1, total_after - total_before) * (os.cpu_count() or 1)
        )
        with engine.connect() as connection:
            metrics = connection.execute(text("SELECT metrics FROM export_runs")).scalar()
            ran_on = connection.execute(
                text("SELECT count(DISTINCT worker) FROM jobs WHERE kind = 'export.study'")
            ).scalar()
        if state != "succeeded":
            raise SystemExit(f"the run ended {state}")
    finally:
        engine.dispose()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    records = int(metrics["counters"]["numTotal"])
    figures = {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "peak_rss_mib": max(peaks) / 2**20,
        "workers_used": int(ran_on or 0),
        "busy_cores": busy_cores,
    }
    print(
        f"workers={workers}: {records:,} records in {seconds:.1f} s = "
        f"{figures['records_per_s']:,.0f} records/s; peak RSS per worker "
        f"{', '.join(f'{p / 2**20:,.0f} MiB' for p in peaks)}; study jobs ran on "
        f"{figures['workers_used']} worker(s); the machine's cores busy on average "
        f"{busy_cores:.2f} of {os.cpu_count()} (workers, PostgreSQL and the rest)",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records in all")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, in order")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "DUTYDESK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--amqp",
        default=os.environ.get("DUTYDESK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    )
    parser.add_argument(
        "--export-threads",
        type=int,
        default=0,
        help="DUTYDESK_EXPORT_THREADS of every worker (0: a DuckDB thread per core)",
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"export scale benchmark: {args.records:,} records, {STUDIES} studies (one holding half), "
        f"workers {counts}, {os.cpu_count()} cores, DUTYDESK_EXPORT_THREADS="
        f"{args.export_threads}, load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        flush=True,
    )
    store = record_store(args.postgres, args.records)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, float]] = {}
    for workers in counts:
        scratch = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=OUT))
        try:
            results[workers] = run_with(
                workers, args.postgres, args.amqp, store, scratch, args.export_threads
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if 1 in results and 2 in results:
        scaling = results[2]["records_per_s"] / results[1]["records_per_s"]
        print(f"scaling 1 -> 2 workers: {scaling:.2f}x")
    worst = max(r["peak_rss_mib"] for r in results.values())
    print(f"peak RSS of any worker {worst:,.0f} MiB ({'under' if worst < 2048 else 'OVER'} 2 GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
