"""S3 log query benchmark: 20,000 small gzip objects 50 ms away, dutydesk against download + awk.

Generates the objects of `bench/logs.py` (gzipped nginx `combined` logs, 100 folders) into a
temporary folder served as the bucket `bench-logs` by the minimal S3 server of
`bench/s3server.py` (GET, HEAD, ListObjectsV2), reached through the latency proxy of the same
file, which holds every request `--latency-ms` (50) before passing it on, as a bucket in
another region or a FUSE mount answers. Server and proxy run as `--servers` (2) and
`--proxies` (4) processes sharing one port each, each in its own session, so that on a busy
machine they do not take the CPU of the client measured (the kernel shares CPU by session).

First the servers alone, without the proxy: requests a second the minimal server answers (and
moto's server mode, when moto is installed), so that neither is what bounds a run. Then, in the
same run:

- the baselines a user has: `rclone copy` and `aws s3 cp --recursive` (each with its default
  concurrency, when installed) download the objects into a local folder (once each: they take
  minutes), then the three questions of `bench/logs.py` are answered there with
  `find | xargs zcat | grep -c` (a) and `... | awk` (b, c), best of `--repeat`;
- dutydesk answers (a), (b) and (c) directly from the bucket, each in a fresh process, cold
  (`--no-cache`: every object listed and fetched again), `--repeat` times; the median counts.
  Its peak RSS is printed (memory stays bounded however many objects there are).

How it counts: a baseline downloads once, then answers; for one question its time is the
fastest download plus that question's answer. dutydesk fetches the bucket for each question.
The speedup of a question is the baseline's time over dutydesk's (median); the last line is

    logs_s3_speedup=<float>

the smallest of the three. The totals for all three questions (download once, answer three
times; against dutydesk's three runs) are printed too. Every answer is checked against the
baseline's before any time counts. Run from the repository root:
`.venv/bin/python bench/logs_s3.py` (`--objects 2000` for a smoke check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logs as logs_bench
from dutydesk.logs._engine import S3Access
from dutydesk.logs._rest import Loop, S3Rest

BUCKET = "bench-logs"
TARGET = 5.0
HERE = Path(__file__).resolve().parent
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from dutydesk.logs import Query, run

    spec = json.loads(sys.argv[1])
    query = Query(
        tuple(spec["sources"]), format="nginx", where=tuple(spec.get("where", ())),
        group_by=tuple(spec.get("group_by", ())), top=spec.get("top"),
        percentiles=spec.get("percentiles"),
    )
    def cpu():
        used = resource.getrusage(resource.RUSAGE_SELF)
        return used.ru_utime + used.ru_stime

    began, cpu_began = time.perf_counter(), cpu()
    result = run(query, cache=False)
    seconds, cpu_seconds = time.perf_counter() - began, cpu() - cpu_began
    table = result.table
    if spec["kind"] == "a":
        answer = table.num_rows
    elif spec["kind"] == "b":
        answer = sorted(
            [row["hour"].strftime("%d/%b/%Y %H"), str(row["status"]), row["count"]]
            for row in table.to_pylist()
        )
    else:
        answer = [[row["count"], row["path"], row["p95"]] for row in table.to_pylist()]
    print(json.dumps({
        "seconds": seconds,
        "cpu": cpu_seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "files": result.report.files,
        "problems": len(result.report.problems),
        "answer": answer,
    }))
    """
)


def spawn(processes: int, *arguments: str) -> tuple[list[subprocess.Popen[str]], str]:
    """Start `bench/s3server.py` with `arguments` in `processes` processes serving one port
    (the kernel spreads the connections); (processes, endpoint)."""
    children: list[subprocess.Popen[str]] = []
    endpoint = ""
    for _ in range(processes):
        port = ["--port", endpoint.rsplit(":", 1)[1]] if endpoint else []
        child = subprocess.Popen(
            [sys.executable, str(HERE / "s3server.py"), *arguments, *port],
            stdout=subprocess.PIPE,
            text=True,
            # Its own session: with the kernel's autogroups, the CPU of a busy machine is
            # shared out by session, and the servers, standing in for a store elsewhere,
            # should not take theirs from the client measured.
            start_new_session=True,
        )
        assert child.stdout is not None
        endpoint = child.stdout.readline().strip()
        children.append(child)
    return children, endpoint


def stop(child: subprocess.Popen[str]) -> None:
    child.terminate()
    child.wait(timeout=30)


def rest_for(endpoint: str, pool: int) -> S3Rest:
    access = S3Access(
        key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        session_token="",
        region="us-east-1",
        endpoint=endpoint.removeprefix("http://"),
        use_ssl=False,
    )
    return S3Rest(access, pool=pool)


def request_rate(endpoint: str, bucket: str, keys: list[str], concurrency: int) -> float:
    """GET requests a second the server at `endpoint` answers, `concurrency` at once (by the
    client dutydesk uses)."""
    rest = rest_for(endpoint, concurrency)
    loop = Loop()

    async def get_all(wanted: list[str]) -> None:
        await asyncio.gather(*(rest.get(bucket, key) for key in wanted))

    try:
        loop.run(get_all(keys[: concurrency * 2]))  # warm up: connections opened
        began = time.perf_counter()
        loop.run(get_all(keys))
        seconds = time.perf_counter() - began
        loop.run(rest.close())
    finally:
        loop.close()
    return len(keys) / seconds


def moto_rate(folder: Path, keys: list[str], concurrency: int) -> float | None:
    """The same for moto's server mode holding 200 of the objects; None without moto."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer  # noqa: F401  (only whether it is there)
    except ImportError:
        return None
    code = textwrap.dedent(
        """
        import time
        from moto.server import ThreadedMotoServer
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        print(f"http://{host}:{port}", flush=True)
        time.sleep(3600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a line per request
        text=True,
    )
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().strip()
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        client.create_bucket(Bucket="moto-bench")
        sample = keys[:200]
        for key in sample:
            client.put_object(
                Bucket="moto-bench", Key=key, Body=(folder / BUCKET / key).read_bytes()
            )
        wanted = (sample * 3)[:500]
        return request_rate(endpoint, "moto-bench", wanted, concurrency)
    finally:
        child.terminate()
        child.wait(timeout=30)


def timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def download_rclone(endpoint: str, target: Path) -> float | None:
    """Seconds `rclone copy` takes to fetch the bucket's folder (default concurrency)."""
    if not shutil.which("rclone"):
        print("  rclone is not installed (apt-get install rclone); left out")
        return None
    env = {
        **os.environ,
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
        "RCLONE_CONFIG": "/dev/null",
    }
    env.pop("AWS_CA_BUNDLE", None)  # plain HTTP on loopback; rclone refuses a bundle there
    return timed(["rclone", "copy", f"bench:{BUCKET}/logs", str(target)], env)


def download_awscli(endpoint: str, target: Path) -> float | None:
    """Seconds `aws s3 cp --recursive` takes (its default: 10 requests at once)."""
    aws = shutil.which("aws")
    if aws is None or subprocess.run([aws, "--version"], capture_output=True).returncode:
        print("  awscli is not installed (pip install awscli in a throwaway venv); left out")
        return None
    env = {**os.environ, **CREDENTIALS, "AWS_CONFIG_FILE": "/dev/null"}
    command = [aws, "s3", "cp", "--recursive", "--only-show-errors", "--no-progress"]
    return timed([*command, "--endpoint-url", endpoint, f"s3://{BUCKET}/logs", str(target)], env)


def dutydesk(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One cold dutydesk run of `spec` in a fresh process: its figures and answer."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def baseline_answers(folder: Path, repeat: int) -> dict[str, tuple[float, Any]]:
    """Each question answered on the downloaded folder: (best seconds, answer)."""
    find = logs_bench.FIND.format(root=folder)
    answers: dict[str, tuple[float, Any]] = {}
    seconds, text = logs_bench.best_of(
        "(a) find | xargs zcat | grep -c",
        repeat,
        lambda: logs_bench.shell(f"{find} | {logs_bench.GREP_A}"),
    )
    answers["a"] = (seconds, int(text))
    seconds, text = logs_bench.best_of(
        "(b) find | xargs zcat | awk",
        repeat,
        lambda: logs_bench.shell(f"{find} | {logs_bench.AWK_B}"),
    )
    rows = sorted([f"{d} {h}", s, int(c)] for d, h, s, c in (x.split() for x in text.splitlines()))
    answers["b"] = (seconds, rows)
    seconds, text = logs_bench.best_of(
        "(c) find | xargs zcat | awk | sort",
        repeat,
        lambda: logs_bench.shell(f"{find} | {logs_bench.AWK_C}"),
    )
    top = [[int(c), p, float(q)] for c, p, q in (x.split() for x in text.splitlines())]
    answers["c"] = (seconds, top)
    return answers


def agree(kind: str, ours: Any, theirs: Any) -> None:
    if kind == "c":
        assert [r[:2] for r in ours] == [r[:2] for r in theirs], (kind, ours, theirs)
        for mine, other in zip(ours, theirs, strict=True):
            assert abs(mine[2] - other[2]) <= 1e-6 * max(1.0, other[2]), (mine, other)
    else:
        assert ours == theirs, (kind, ours, theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=0, help="DUTYDESK_LOG_S3_CONCURRENCY")
    parser.add_argument("--servers", type=int, default=2, help="server processes")
    parser.add_argument("--proxies", type=int, default=4, help="proxy processes")
    parser.add_argument("--skip-awscli", action="store_true", help="leave awscli out")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--served", type=Path, help="a folder kept by --keep: its objects instead of new ones"
    )
    args = parser.parse_args(argv)

    temporary = Path(tempfile.mkdtemp(prefix="dutydesk-bench-logs-s3-"))
    served = temporary / "served"
    children: list[subprocess.Popen[str]] = []
    print(f"load average at the start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        began = time.perf_counter()
        if args.served:  # objects generated by an earlier run, kept
            served = args.served
            lines = args.lines
        else:
            lines = logs_bench.generate(served / BUCKET / "logs", args.objects, args.lines)
        keys = sorted(
            path.relative_to(served / BUCKET).as_posix() for path in (served / BUCKET).rglob("*.gz")
        )
        size = sum((served / BUCKET / key).stat().st_size for key in keys)
        print(
            f"generated {len(keys):,} objects, {lines:,} lines, {size / 1e6:.1f} MB gzipped "
            f"in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        servers, origin = spawn(args.servers, str(served))
        children += servers
        print(
            f"the servers alone, without the proxy (GET of small objects, 64 at once; "
            f"{args.servers} server and {args.proxies} proxy processes on one port each)"
        )
        ours = request_rate(origin, BUCKET, keys[:4000], 64)
        print(f"  minimal S3 server (bench/s3server.py)  {ours:8.0f} requests/s")
        moto = moto_rate(served, keys, 64)
        if moto is None:
            print("  moto is not installed; left out")
        else:
            print(f"  moto's server mode                     {moto:8.0f} requests/s")
        proxies, endpoint = spawn(
            args.proxies, "--proxy", origin, "--latency-ms", str(args.latency_ms)
        )
        children += proxies
        through = request_rate(endpoint, BUCKET, keys[:2000], 256)
        print(
            f"  through the {args.latency_ms:g} ms proxy, 256 at once: {through:.0f} requests/s "
            f"(at most {256 / (args.latency_ms / 1000):.0f})",
            flush=True,
        )

        print("baselines: download the bucket's folder, then answer locally", flush=True)
        downloads: dict[str, float] = {}
        local: Path | None = None
        for name, download in (("rclone copy", download_rclone), ("aws s3 cp", download_awscli)):
            if name == "aws s3 cp" and args.skip_awscli:
                continue
            target = temporary / name.split()[0]
            seconds = download(endpoint, target)
            if seconds is None:
                continue
            count = sum(1 for _ in target.rglob("*.gz"))
            assert count == len(keys), f"{name} fetched {count} of {len(keys)} objects"
            downloads[name] = seconds
            print(f"  {name:<12} {seconds:8.2f} s for {count:,} objects", flush=True)
            local = target
        assert local is not None, "no baseline tool: install rclone or awscli"
        fastest = min(downloads, key=downloads.__getitem__)
        answers = baseline_answers(local, args.repeat)

        print(f"dutydesk from the bucket, cold (--no-cache), median of {args.repeat}")
        env = {
            **os.environ,
            **CREDENTIALS,
            "DUTYDESK_HOME": str(temporary / "home"),
            "DUTYDESK_LOG_ROOTS": f"s3://{BUCKET}/logs",
            "DUTYDESK_LOG_S3_ENDPOINT": endpoint,
        }
        if args.concurrency:
            env["DUTYDESK_LOG_S3_CONCURRENCY"] = str(args.concurrency)
        source = [f"s3://{BUCKET}/logs/"]
        specs: dict[str, dict[str, Any]] = {
            "a": {
                "where": [f"path~{logs_bench.PATH_REGEX}", f"user_agent~{logs_bench.AGENT_REGEX}"]
            },
            "b": {"group_by": ["hour", "status"]},
            "c": {"group_by": ["path"], "top": 20, "percentiles": "bytes"},
        }
        ours_seconds: dict[str, float] = {}
        peak = 0.0
        for kind, spec in specs.items():
            runs = [
                dutydesk({"kind": kind, "sources": source, **spec}, env) for _ in range(args.repeat)
            ]
            for run in runs:
                assert run["files"] == len(keys) and run["problems"] == 0, run
                agree(kind, run["answer"], answers[kind][1])
            times = [run["seconds"] for run in runs]
            ours_seconds[kind] = statistics.median(times)
            peak = max(peak, *(run["rss_mb"] for run in runs))
            print(
                f"  ({kind}) median {ours_seconds[kind]:6.2f} s  runs "
                f"{' '.join(f'{t:.2f}' for t in times)}  (cpu "
                f"{statistics.median(run['cpu'] for run in runs):.2f} s)  peak RSS "
                f"{max(run['rss_mb'] for run in runs):.0f} MB; answer agrees",
                flush=True,
            )
        concurrency = args.concurrency or 64
        floor = len(keys) * args.latency_ms / 1000 / concurrency
        print(
            f"  ({len(keys):,} objects x {args.latency_ms:g} ms / {concurrency} at once = "
            f"{floor:.2f} s of waiting at the least; peak RSS of all runs {peak:.0f} MB)"
        )

        speedups = {}
        for kind in "abc":
            theirs = downloads[fastest] + answers[kind][0]
            speedups[kind] = theirs / ours_seconds[kind]
            print(
                f"({kind}) {fastest} + answer {theirs:7.2f} s, dutydesk {ours_seconds[kind]:6.2f} "
                f"s: speedup {speedups[kind]:.2f}"
            )
        theirs_all = downloads[fastest] + sum(answers[kind][0] for kind in "abc")
        ours_all = sum(ours_seconds.values())
        print(
            f"all three: {fastest} once + three answers {theirs_all:.2f} s, dutydesk three "
            f"times from the bucket {ours_all:.2f} s: {theirs_all / ours_all:.2f}"
        )
        verdict = "meets" if min(speedups.values()) >= TARGET else "misses"
        print(f"smallest speedup {min(speedups.values()):.2f} ({verdict} the target {TARGET})")
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        for child in children:
            stop(child)
        if args.keep:
            print(f"kept {temporary}", file=sys.stderr)
        else:
            shutil.rmtree(temporary, ignore_errors=True)
    print(f"logs_s3_speedup={min(speedups.values()):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
