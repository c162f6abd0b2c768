"""Healthchecks client habits against a real `dutydesk web`: curl pings as Healthchecks'
documentation writes them, an output body over the inbox limit, and the state shown by
`dutydesk integrations list`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_processes import healthy
from tests.test_worker import Processes, desk_env, free_port, run_dutydesk, wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-fsS", "-m", "10", "--retry", "5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(400)  # seven dutydesk commands and a web start, on a busy machine
def test_curl_pings_in_healthchecks_style_count_and_show_the_state(
    processes: Processes, home: Path, tmp_path: Path
) -> None:
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING", DUTYDESK_INBOX_MAX_BYTES="4096")
    assert run_dutydesk(env, "db", "upgrade").returncode == 0
    made = run_dutydesk(
        env,
        "integrations",
        "create",
        "--kind",
        "heartbeat",
        "--name",
        "backup",
        "--period",
        "3600",
        "--grace",
        "600",
    )
    assert made.returncode == 0, made.stderr
    found = re.search(r"url: \S+(/ping/\S+)", made.stdout)
    assert found is not None, made.stdout
    port = free_port()
    processes.start("web", ["web", "--port", str(port)], env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base), 60, "GET /health to answer 200")
    url = base + found.group(1)

    listed = run_dutydesk(env, "integrations", "list")
    assert re.search(r"backup .* new$", listed.stdout, re.M), listed.stdout

    started = curl("-o", "/dev/null", "-D", "-", f"{url}/start")
    assert started.returncode == 0, started.stderr
    assert re.search(r"^ping-body-limit: 4096\r?$", started.stdout, re.I | re.M), started.stdout
    assert curl("-o", "/dev/null", url).returncode == 0
    assert re.search(
        r"backup .* up until \S+ \S+ UTC$", run_dutydesk(env, "integrations", "list").stdout, re.M
    )

    failed = curl("--data-raw", "pg_dump: connection refused", f"{url}/1")
    assert (failed.returncode, failed.stdout) == (0, "OK"), failed.stderr
    assert re.search(r"backup .* down$", run_dutydesk(env, "integrations", "list").stdout, re.M)

    output = tmp_path / "run.log"
    output.write_bytes(b"".join(b"step %06d done\n" % n for n in range(20_000)))  # 320 kB
    big = curl("--data-binary", f"@{output}", url)
    assert (big.returncode, big.stdout) == (0, "OK"), big.stderr
    assert re.search(r"backup .* up until", run_dutydesk(env, "integrations", "list").stdout, re.M)
