"""The access log report in a real Chromium: the HTML file `dutydesk logs report` writes, and
the console page of a running `dutydesk web`, draw their charts (SVG with bars of some
height) at 1366 and 390 px wide without page-wide horizontal scrolling; screenshots kept under
tmp_path."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from typer.testing import CliRunner

from dutydesk.cli import app
from tests.browser_support import (
    Desk,
    desk_context,
    desk_env,
    free_port,
    launched_chromium,
    stop_desk,
    wait_until_healthy,
)
from tests.logs.test_report_html import write_timed_logs
from tests.test_browser import sign_in

VIEWER_PASSWORD = "log-report-viewer-password-1"
ADD_VIEWER = ["users", "add", "reader", "--role", "viewer", "--password-stdin"]
WIDTHS = ((1366, 900), (390, 844))
# Each chart's bars: how many have a height above zero.
BARS_DRAWN = """svg => Array.from(svg.querySelectorAll("rect > title"))
  .map(title => title.parentElement)
  .filter(bar => bar.getBoundingClientRect().height > 0).length"""
PAGE_WIDTH = "() => document.documentElement.scrollWidth"


def check_charts(page: Page, width: int) -> None:
    charts = page.locator("svg.chart")
    expect(charts.first).to_be_visible()
    assert charts.count() == 2, "the report should draw requests and bytes over time"
    for index in range(charts.count()):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert box is not None and 0 < box["width"] <= width and box["height"] > 0
        assert chart.evaluate(BARS_DRAWN) > 0, f"chart {index} has no bar at {width} px"
    assert page.evaluate(PAGE_WIDTH) <= width, f"the page scrolls sideways at {width} px"


@pytest.mark.browser
def test_the_report_file_draws_its_charts_offline(log_root: Path, tmp_path: Path) -> None:
    write_timed_logs(log_root, files=3, lines=80)
    target = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["logs", "report", str(log_root), "--html", str(target)])
    assert result.exit_code == 0, result.output
    browser: Browser
    with launched_chromium() as browser:
        context = browser.new_context()
        # Self-contained: any request beyond the file itself is refused and fails the test.
        fetched: list[str] = []

        def only_the_file(route: Route) -> None:
            fetched.append(route.request.url)
            if route.request.url == target.as_uri():
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_the_file)
        page = context.new_page()
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            page.goto(target.as_uri())
            check_charts(page, width)
            page.screenshot(path=tmp_path / f"log-report-file-{width}.png", full_page=True)
        context.close()
    assert fetched == [target.as_uri()] * len(WIDTHS)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """`dutydesk web` alone on a migrated home with one viewer (no demo to seed: quicker on a
    busy machine); its default log root is `$DUTYDESK_HOME/logs`."""
    home = tmp_path_factory.mktemp("desk") / "home"
    home.mkdir()
    env = desk_env(home, VIEWER_PASSWORD)
    env["DUTYDESK_SECRET_KEY"] = secrets.token_hex(32)
    dutydesk = [sys.executable, "-m", "dutydesk"]
    for args, given in ((["db", "upgrade"], ""), (ADD_VIEWER, VIEWER_PASSWORD + "\n")):
        done = subprocess.run(
            [*dutydesk, *args], env=env, cwd=home, input=given, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    log_path = home.parent / "desk-output.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [*dutydesk, "web", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Desk(process, home, f"http://127.0.0.1:{port}", VIEWER_PASSWORD, log_path, log_file)
    try:
        wait_until_healthy(running, timeout=240.0)
        yield running
    finally:
        print(stop_desk(running))


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_the_console_report_draws_its_charts_at_desk_and_phone_widths(
    desk: Desk, tmp_path: Path
) -> None:
    logs = desk.home / "logs"
    write_timed_logs(logs, files=3, lines=80)
    browser: Browser
    with launched_chromium() as browser, desk_context(browser, desk) as context:
        page = context.new_page()
        page.goto("/login")
        sign_in(page, "reader", desk.password)
        page.goto("/logs")
        form = page.locator("#report-link form")
        form.get_by_label("Access logs").fill(str(logs))
        form.get_by_role("button", name="Make report").click()
        expect(page.get_by_role("heading", name="Log report", level=1)).to_be_visible()
        url = page.url
        for width, height in WIDTHS:
            page.set_viewport_size({"width": width, "height": height})
            page.goto(url)
            check_charts(page, width)
            page.screenshot(path=tmp_path / f"log-report-page-{width}.png", full_page=True)
