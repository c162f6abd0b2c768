"""The export dashboard in a real Chromium on the demo desk: its charts are drawn (a canvas that
is not blank) at 1366 and 390 px wide, without page-wide horizontal scrolling; screenshots kept
under the test's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser_support import (
    DEMO_DESK_GROUP,
    Desk,
    desk_context,
    launched_chromium,
)
from tests.test_browser import CANVAS_DRAWN, sign_in

pytestmark = DEMO_DESK_GROUP  # one worker runs every test on the shared demo desk


@pytest.fixture
def desk(demo_desk: Desk) -> Desk:
    """The demo desk these browser modules share (see `demo_desk`)."""
    return demo_desk


@pytest.fixture
def page(desk: Desk) -> Iterator[Page]:
    """A fresh browser context on the desk, in Debian's headless Chromium."""
    browser: Browser
    with launched_chromium() as browser, desk_context(browser, desk) as context:
        yield context.new_page()


@pytest.mark.browser
def test_the_export_dashboard_draws_its_charts_at_desk_and_phone_widths(
    page: Page, desk: Desk, tmp_path: Path
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    page.get_by_role("navigation").get_by_role("link", name="Dashboards", exact=True).click()
    page.get_by_role("link", name="export", exact=True).click()
    expect(page.get_by_role("heading", name="export", level=1)).to_be_visible()
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        canvases = page.locator("div.chart canvas")
        expect(canvases.first).to_be_visible()
        assert canvases.count() >= 2, "the export dashboard should draw at least two charts"
        for index in range(canvases.count()):
            canvas = canvases.nth(index)
            box = canvas.bounding_box()
            assert box is not None and 0 < box["width"] <= width
            assert canvas.evaluate(CANVAS_DRAWN), f"chart {index} is blank at {width} px"
        page.screenshot(path=tmp_path / f"dashboard-export-{width}.png", full_page=True)
