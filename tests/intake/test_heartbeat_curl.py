"""Healthchecks client habits against a real `dutydesk web`: curl pings as Healthchecks'
documentation writes them, an output body over the inbox limit, and the state shown by
`dutydesk integrations list`.

The `dutydesk` commands run in this process (Typer's runner, on the same DUTYDESK_HOME as the
web process): the same command code and output as a fresh `dutydesk`, without paying a Python
start and the desk's imports for each of them; only the web is a process of its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from tests.test_processes import healthy
from tests.test_worker import Processes, desk_env, free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def dutydesk(*args: str) -> Result:
    """Run one `dutydesk` command in this process, on the test's DUTYDESK_HOME."""
    return CliRunner().invoke(app, list(args))


def listed_state() -> str:
    """What `dutydesk integrations list` prints."""
    listed = dutydesk("integrations", "list")
    assert listed.exit_code == 0, listed.output
    return listed.stdout


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-fsS", "-m", "10", "--retry", "5", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(400)  # a web start and curl's retries, on a busy machine
def test_curl_pings_in_healthchecks_style_count_and_show_the_state(
    processes: Processes, home: Path, tmp_path: Path
) -> None:
    env = desk_env(home, DUTYDESK_LOG_LEVEL="WARNING", DUTYDESK_INBOX_MAX_BYTES="4096")
    assert dutydesk("db", "upgrade").exit_code == 0
    made = dutydesk(
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
    assert made.exit_code == 0, made.output
    found = re.search(r"url: \S+(/ping/\S+)", made.stdout)
    assert found is not None, made.stdout
    port = free_port()
    processes.start("web", ["web", "--port", str(port)], env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(base), 60, "GET /health to answer 200")
    url = base + found.group(1)

    listed = listed_state()
    assert re.search(r"backup .* new$", listed, re.M), listed

    started = curl("-o", "/dev/null", "-D", "-", f"{url}/start")
    assert started.returncode == 0, started.stderr
    assert re.search(r"^ping-body-limit: 4096\r?$", started.stdout, re.I | re.M), started.stdout
    assert curl("-o", "/dev/null", url).returncode == 0
    assert re.search(r"backup .* up until \S+ \S+ UTC$", listed_state(), re.M)

    failed = curl("--data-raw", "pg_dump: connection refused", f"{url}/1")
    assert (failed.returncode, failed.stdout) == (0, "OK"), failed.stderr
    assert re.search(r"backup .* down$", listed_state(), re.M)

    output = tmp_path / "run.log"
    output.write_bytes(b"".join(b"step %06d done\n" % n for n in range(20_000)))  # 320 kB
    big = curl("--data-binary", f"@{output}", url)
    assert (big.returncode, big.stdout) == (0, "OK"), big.stderr
    assert re.search(r"backup .* up until", listed_state(), re.M)
