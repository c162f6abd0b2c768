"""Demo start-up benchmark: how long from `dutydesk up --demo` to a console that answers fast.

Starts `.venv/bin/dutydesk up --demo` on an empty temporary DUTYDESK_HOME and a free port, as
`make demo` does on an existing venv, and polls until the sign-in page answers. Then, signed in
as the demo admin, it loads every console page it can reach (the navigation's pages and the
first links of each: a ticket, an export run, a table, a rule...) once per round, timing each
answer, until a whole round has every page under the target. It prints each page's time in
that round and the pages that show something red (failed, dead letters, errors), then stops
the desk (SIGTERM to the process group it started) and waits for it.

The last line is

    demo_usable_s=<seconds from start to the end of the first fast round> pages_max_ms=<ms>

Run from the repository root: `.venv/bin/python bench/demo_start.py [--keep SECONDS]`
(`--keep` leaves the desk running that long after the measurement, to look around).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
DUTYDESK = ROOT / ".venv" / "bin" / "dutydesk"
TARGET_MS = 300.0
GIVE_UP_S = 300.0
PASSWORD = "demo password for the benchmark"
LINKS_PER_PAGE = 3
MAX_PAGES = 60
SKIP = ("/logout", "/download", "/static/", "/api/", "/metrics", "/healthz", "/openapi")
# What a page shows when something is wrong: a failed, partial or dead row, an error line, a
# failing self-check. (A "0 failed" filter link is not red.)
RED = re.compile(
    r'<td class="state-(failed|dead|partial)"|<p class="error"|Self-check: <strong>failing'
)


class Links(HTMLParser):
    """The href of every <a> on a page, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.found.append(href)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def links_of(base: str, page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    paths = []
    for href in parser.found:
        url = urlsplit(urljoin(base, href))
        if url.netloc != urlsplit(base).netloc or any(part in url.path for part in SKIP):
            continue
        path = url.path + (f"?{url.query}" if url.query else "")
        if path not in paths:
            paths.append(path)
    return paths


def sign_in(client: httpx.Client) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the sign-in page"
    answer = client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": "admin", "password": PASSWORD, "next": "/"},
    )
    assert answer.status_code == 303, f"sign-in answered {answer.status_code}: {answer.text[:300]}"


def discover(client: httpx.Client, base: str) -> list[str]:
    """The navigation's pages, then the first few links of each (detail pages)."""
    nav = [path for path in links_of(base, client.get("/").text) if path != "/"]
    pages = ["/", *nav]
    for path in nav:
        for link in links_of(base, client.get(path).text)[: LINKS_PER_PAGE + len(nav) + 2]:
            if link not in pages and len(pages) < MAX_PAGES and link not in nav:
                pages.append(link)
                if sum(1 for p in pages if p.startswith(path)) > LINKS_PER_PAGE:
                    break
    return pages


def timed_round(client: httpx.Client, pages: list[str]) -> dict[str, tuple[float, int, bool]]:
    """Each page's (ms, status, shows red) in one pass."""
    result = {}
    for path in pages:
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        result[path] = (elapsed, answer.status_code, bool(RED.search(answer.text)))
    return result


def wait_for_console(client: httpx.Client, desk: subprocess.Popen[bytes], started: float) -> None:
    while time.monotonic() - started < GIVE_UP_S:
        if desk.poll() is not None:
            sys.exit(f"dutydesk up exited with {desk.returncode}")
        try:
            if client.get("/login").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("the console did not answer in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, default=0.0, help="Seconds to keep the desk up.")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dutydesk-demo-") as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DUTYDESK_")},
            "DUTYDESK_HOME": home,
            "DUTYDESK_DEMO_PASSWORD": PASSWORD,
            "DUTYDESK_SMTP_PORT": str(free_port()),
        }
        log = Path(home) / "up.log"
        started = time.monotonic()
        with log.open("wb") as output:
            desk = subprocess.Popen(
                [str(DUTYDESK), "up", "--demo", "--port", str(port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
                wait_for_console(client, desk, started)
                answered = time.monotonic() - started
                print(f"console answered after {answered:.1f} s")
                sign_in(client)
                pages = discover(client, base)
                rounds = 0
                while True:
                    rounds += 1
                    times = timed_round(client, pages)
                    slowest = max(ms for ms, _status, _red in times.values())
                    if slowest < TARGET_MS or time.monotonic() - started > GIVE_UP_S:
                        break
                usable = time.monotonic() - started
                for path, (ms, status, red) in times.items():
                    flag = "  RED" if red else ""
                    print(f"{ms:8.1f} ms  {status}  {path}{flag}")
                bad = [path for path, (_ms, status, _red) in times.items() if status >= 400]
                red = [path for path, (_ms, _status, shows) in times.items() if shows]
                print(f"{len(pages)} pages, {rounds} rounds; not ok: {bad or 'none'}")
                print(f"pages showing red: {red or 'none'}")
                if args.keep:
                    print(f"desk at {base}/ for {args.keep:.0f} s more (admin / {PASSWORD})")
                    time.sleep(args.keep)
        finally:
            os.killpg(desk.pid, signal.SIGTERM)
            try:
                desk.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(desk.pid, signal.SIGKILL)
                desk.wait()
            (ROOT / "bench" / "out").mkdir(exist_ok=True)
            (ROOT / "bench" / "out" / "demo_start.log").write_bytes(log.read_bytes())
    print(f"demo_usable_s={usable:.1f} pages_max_ms={slowest:.0f}")


if __name__ == "__main__":
    main()
