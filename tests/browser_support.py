"""Running the real desk (`dutydesk up --demo`) as a subprocess for the browser tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MISSING_CHROMIUM = (
    f"Chromium is not at {CHROMIUM}. The browser tests use Debian's Chromium only; install it "
    "with `apt-get update && apt-get install -y chromium chromium-driver` "
    "(never `playwright install`)."
)
START_TIMEOUT_SECONDS = 60.0
# The demo desk the browser modules that read the demo share (the `demo_desk` fixture): one
# start instead of one a module; its tests run on one worker (`make test` uses
# `--dist loadgroup`).
DEMO_PASSWORD = "browser-demo-password-1"
DEMO_DESK_GROUP = pytest.mark.xdist_group("demo-desk")
DEMO_START_TIMEOUT_SECONDS = 480.0  # the demo month is seeded first: slow on a busy machine
# `up` gives its children 15 s to stop before killing them; allow for that and some.
STOP_TIMEOUT_SECONDS = 30.0
CHILD_PID = re.compile(r"started (\w+) \(pid (\d+)\)")


@dataclass
class Desk:
    """A running `dutydesk up --demo` and where to reach it."""

    process: subprocess.Popen[bytes]
    home: Path
    base_url: str
    password: str
    log_path: Path
    log_file: IO[bytes]

    def output(self) -> str:
        """Everything the desk and its children have printed so far."""
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def desk_env(home: Path, password: str) -> dict[str, str]:
    """This environment minus every DUTYDESK_ setting, plus the desk's home and demo password."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DUTYDESK_")}
    env.update(
        DUTYDESK_HOME=str(home),
        DUTYDESK_DEMO_PASSWORD=password,
        DUTYDESK_SMTP_PORT=str(free_port()),  # `up` starts an SMTP listener too
        PYTHONUNBUFFERED="1",
    )
    return env


def start_desk(home: Path, password: str, timeout: float = START_TIMEOUT_SECONDS) -> Desk:
    """Start `dutydesk up --demo` on a free port and return once /health answers 200 (within
    `timeout` seconds)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / "desk-output.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dutydesk", "up", "--demo", "--port", str(port)],
        env=desk_env(home, password),
        cwd=home,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    desk = Desk(process, home, f"http://127.0.0.1:{port}", password, log_path, log_file)
    try:
        wait_until_healthy(desk, timeout)
    except BaseException:
        stop_desk(desk)
        raise
    return desk


def wait_until_healthy(desk: Desk, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Poll GET /health until it answers 200; fail with the desk's output on exit or timeout."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if desk.process.poll() is not None:
            raise AssertionError(
                f"the desk exited with status {desk.process.returncode} before it was healthy:\n"
                f"{desk.output()}"
            )
        try:
            answer = httpx.get(f"{desk.base_url}/health", timeout=2.0)
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        time.sleep(0.25)
    raise AssertionError(
        f"the desk was not healthy within {timeout:.0f}s (last: {last}):\n{desk.output()}"
    )


def stop_desk(desk: Desk) -> str:
    """SIGTERM the desk and wait; kill it (and its web, worker, beat) if it lingers.

    Returns a note on how it stopped, for the test's output.
    """
    process = desk.process
    note = "the desk had already exited"
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
            note = f"the desk stopped on SIGTERM with status {process.returncode}"
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            note = f"the desk ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f}s and was killed"
    orphans = kill_orphaned_children(desk)
    if orphans:
        note += f"; killed its leftover children: {', '.join(orphans)}"
    desk.log_file.close()
    return note


def kill_orphaned_children(desk: Desk) -> list[str]:
    """Kill the web, worker and beat processes `up` started, if they outlived it."""
    marker = f"DUTYDESK_HOME={desk.home}".encode() + b"\0"
    killed = []
    for name, pid_text in CHILD_PID.findall(desk.output()):
        pid = int(pid_text)
        try:  # a pid is only ours if the process still runs with this desk's home
            ours = marker in Path(f"/proc/{pid}/environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(f"{name} (pid {pid})")
    return killed


# A page answers in well under a second alone; a full test run beside disk-heavy tests has
# stalled one navigation past 10 s.
EXPECT_TIMEOUT_MS = 30_000


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright; fails (never skips) when missing."""
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def desk_context(browser: Browser, desk: Desk) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) on the desk; prints the desk's output afterwards
    (pytest shows it only when the test fails)."""
    context = browser.new_context(base_url=desk.base_url)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
        print(f"---- output of the desk at {desk.base_url} ----\n{desk.output()}")
